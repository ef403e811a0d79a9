"""Intervals of allowed parameter values (no sympy: the runtime checks input with them)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    r"""An interval of allowed values, optionally integers only: e.g. :math:`[0, \infty)`."""

    lower: float = -math.inf
    upper: float = math.inf
    lower_closed: bool = True
    upper_closed: bool = True
    integer: bool = False

    def contains(self, value: float) -> bool:
        if not isinstance(value, int | float) or math.isnan(value):
            return False
        if self.integer and float(value) != int(value):
            return False
        lo_ok = value >= self.lower if self.lower_closed else value > self.lower
        hi_ok = value <= self.upper if self.upper_closed else value < self.upper
        return lo_ok and hi_ok

    def __str__(self) -> str:
        lo = "-inf" if self.lower == -math.inf else f"{self.lower:g}"
        hi = "inf" if self.upper == math.inf else f"{self.upper:g}"
        left = "[" if self.lower_closed and self.lower != -math.inf else "("
        right = "]" if self.upper_closed and self.upper != math.inf else ")"
        kind = "integers in " if self.integer else ""
        return f"{kind}{left}{lo}, {hi}{right}"


REAL = Domain()
POSITIVE = Domain(lower=0.0, lower_closed=False)
NONNEGATIVE = Domain(lower=0.0)
POSITIVE_INTEGER = Domain(lower=1.0, integer=True)
NONNEGATIVE_INTEGER = Domain(lower=0.0, integer=True)
