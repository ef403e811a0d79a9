"""The registry of families: one line each.

A family named ``F`` (the ``family`` key of its model files) has

- ``derivations/schemas/F.py``: ``SCHEMA``, its model-file schema (no sympy: loading a model
  stays fast);
- ``derivations/F.py``: ``derive(spec) -> FormulaSet``, mathematics only (no I/O, no cache);
- ``runtime/families/F/``: its independent reference (plain numpy), its check and its demo
  figures (see :mod:`netderive.runtime.families`);
- bundled models in ``models/`` and tests in ``tests/``.

Each layer finds its part by this convention; nothing else lists the families.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ir import FormulaSet
    from .model import ModelSpec
    from .schema import Schema

FAMILIES: tuple[str, ...] = (
    "weight_decay",
    "large_deviation",
    "expectation",
)


@cache
def schema_of(family: str) -> Schema:
    """The model-file schema of ``family`` (``derivations/schemas/<family>.py``)."""
    return import_module(f"{__package__}.schemas.{family}").SCHEMA


def derivation_of(family: str) -> Callable[[ModelSpec], FormulaSet]:
    """``derive`` of ``family`` (``derivations/<family>.py``; imports sympy)."""
    return import_module(f"{__package__}.{family}").derive
