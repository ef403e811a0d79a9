"""``netderive check``: generated kernels against independent references.

Generic: the rows and the report that the command line prints, and :func:`run_check`, which
finds the model family's check in the registry (:mod:`netderive.runtime.families`) and runs
it.  The checks and references themselves live in ``runtime/families/<family>/`` (plain
numpy/scipy references that never call generated code).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .progress import format_seconds, status
from .session import Build, UsageError, format_value

#: Monte Carlo draws of a check when none are given (``--draws``).
DEFAULT_DRAWS = 200_000
#: Relative tolerance of a comparison with a deterministic reference given no uncertainty.
EXACT_TOLERANCE = 1e-12
#: Standard errors a Monte Carlo value may be off by default.
STANDARD_ERRORS = 3.0


@dataclass(frozen=True)
class CheckRow:
    """One comparison: netderive's value, the reference's, and the tolerance used."""

    quantity: str
    netderive: float
    reference: float
    uncertainty: float  # standard error (Monte Carlo) or 0 for deterministic references
    method: str
    agree: bool
    criterion: str

    @property
    def deviation(self) -> str:
        diff = abs(self.netderive - self.reference)
        if self.uncertainty > 0:
            return f"{diff / self.uncertainty:.2f} se"
        return f"{diff:.2e}"


@dataclass
class CheckReport:
    """The rows of a model's check, what its family adds after them, and the ``--set``
    values it was run at."""

    model: str
    rows: list[CheckRow] = field(default_factory=list)
    appendix: str = ""  # further output of the family's check, printed after the verdict
    settings: str = ""  # the values given on the command line (--set), as text

    @property
    def all_agree(self) -> bool:
        return all(r.agree for r in self.rows)

    def table(self) -> str:
        width = max([len("quantity"), *(len(r.quantity) for r in self.rows)])
        head = (f"{'quantity':{width}s} {'netderive':>16s} {'reference':>16s} {'+-':>10s} "
                f"{'deviation':>10s}  agree  method; criterion")
        title = f"check of {self.model}" + (f" at {self.settings}" if self.settings else "")
        lines = [title, head, "-" * len(head)]
        for r in self.rows:
            unc = f"{r.uncertainty:.2e}" if r.uncertainty > 0 else "exact"
            lines.append(f"{r.quantity:{width}s} {r.netderive:16.10g} {r.reference:16.10g} "
                         f"{unc:>10s} {r.deviation:>10s}  {'yes' if r.agree else 'NO ':3s}    "
                         f"{r.method}; {r.criterion}")
        verdict = "all agree" if self.all_agree else "DISAGREEMENT"
        lines.append(f"{sum(r.agree for r in self.rows)}/{len(self.rows)} agree: {verdict}")
        if self.appendix:
            lines += ["", self.appendix]
        return "\n".join(lines)


def within_se(name: str, value: float, mean: float, se: float, method: str,
              k: float = STANDARD_ERRORS) -> CheckRow:
    """A row that agrees when ``|value - mean| <= k se`` (exactly, to rounding, if se = 0)."""
    agree = abs(value - mean) <= k * se if se > 0 else abs(value - mean) <= EXACT_TOLERANCE * (
        1 + abs(mean))
    return CheckRow(name, value, mean, se, method, agree, f"|diff| <= {k:g} se")


def within_tol(name: str, value: float, ref: float, tol: float, method: str) -> CheckRow:
    """A row that agrees when ``|value - ref| <= tol (1 + |ref|)``."""
    agree = abs(value - ref) <= tol * (1 + abs(ref))
    return CheckRow(name, value, ref, 0.0, method, agree, f"|diff| <= {tol:g} (1+|ref|)")


def run_check(build: Build, fixed: Mapping[str, float], *, draws: int = DEFAULT_DRAWS,
              starts: int | None = None, seed: int = 0) -> CheckReport:
    """The check of the model's family at its defaults updated by ``fixed``.

    ``starts`` (multi-start minimisations) is for families whose check minimises; None
    takes the family's default, and a family without minimisation refuses it."""
    from .evaluate import Request, check_constraints
    from .families import CheckOptions, family_runtime
    from .session import check_value

    family = family_runtime(build.spec.family)
    if family.starts is None and starts is not None:
        raise UsageError(f"--starts {starts}: the check of family {build.spec.family} runs no "
                         "minimisation; allowed: --draws, --seed, --set (no --starts)")
    if starts is None and family.starts is not None:
        starts = family.starts.default
    values = build.defaults
    values.update({n: check_value(build, n, v, f"--set {n}") for n, v in fixed.items()})
    check_constraints(build, Request([], values, {}), given=fixed)
    options = CheckOptions(draws, starts, np.random.default_rng(seed))
    start = time.perf_counter()
    result = family.check(build, values, options)
    status(f"check: {len(result.rows)} comparisons in "
           f"{format_seconds(time.perf_counter() - start)}")
    settings = ", ".join(f"{n} = {format_value(build, n, v)}" for n, v in fixed.items())
    return CheckReport(build.spec.source, list(result.rows), result.appendix, settings)
