"""The run-time part of every family: its independent reference, its check, its demo figures.

A family ``F`` of the registry (``FAMILIES`` in :mod:`netderive.derivations.families`) has the
package ``runtime/families/F/``, whose ``__init__`` exports ``RUNTIME``, a
:class:`FamilyRuntime`; it is found by that convention (:func:`family_runtime`), and the
generic modules (``check``, ``demo``, ...) iterate the registry and name no family.  Its
modules:

- ``reference.py`` (and ``reference_*.py``): the independent reference, plain numpy/scipy
  written from the notes.  It imports nothing of netderive but :mod:`netderive.runtime.progress`
  and :mod:`netderive.runtime.activation`: never ``derivations``, ``codegen``, generated code
  or sympy (a test checks it);
- ``check.py``: ``check(build, values, options) -> FamilyCheck``, the kernels (called by name)
  against the reference;
- ``figures.py``: the demo's figures, each with the models it draws, made from its own settings;
- ``report.py`` where the check and the figures share tables of kernels against the reference.

May import: numpy, scipy, matplotlib, the generic runtime modules, and model files through
``netderive.derivations.model`` (no sympy); the runtime does no algebra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from netderive.derivations.families import FAMILIES

from ..check import CheckRow
from ..session import UsageError

if TYPE_CHECKING:
    import numpy as np

    from netderive.derivations.model import ModelSpec

    from ..session import Build


@dataclass(frozen=True)
class CheckOptions:
    """How much work a check does: Monte Carlo ``draws``, multi-start ``starts`` (None for a
    family without minimisation) and the random generator of the references."""

    draws: int
    starts: int | None
    rng: np.random.Generator


@dataclass(frozen=True)
class FamilyCheck:
    """What a family's check returns: its rows (the generic table prints them) and text
    printed after the verdict (e.g. a convergence table)."""

    rows: tuple[CheckRow, ...]
    appendix: str = ""


@dataclass(frozen=True)
class Starts:
    """Multi-start minimisation starts of a family's check: by default and in ``demo --quick``."""

    default: int
    quick: int


@dataclass(frozen=True)
class Section:
    """A subsection of the demo report: a title, a Markdown body (links relative to the
    model's folder) and the numbers its text states, by name (for tests and readers)."""

    title: str
    body: str
    numbers: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FigureInput:
    """What a figure is drawn from: the build of the model whose section shows it, the builds
    of the models it declared (:attr:`Figure.models`, by its keys), the folder for its
    files, and whether the demo is ``--quick``."""

    host: Build
    builds: Mapping[str, Build]
    folder: Path
    quick: bool


def no_models(spec: ModelSpec) -> dict[str, ModelSpec]:
    """No further models."""
    return {}


@dataclass(frozen=True)
class Figure:
    """A figure of the demo report.

    ``shows(spec)``: whether the section of that model shows it; ``models(spec)``: every model
    it draws, by key (made from the figure's own settings, or variants of the shown model),
    derived and validated before the demo's long work starts; ``draw`` writes its files and
    returns its report subsections."""

    name: str
    shows: Callable[[ModelSpec], bool]
    draw: Callable[[FigureInput], list[Section]]
    models: Callable[[ModelSpec], Mapping[str, ModelSpec]] = no_models


@dataclass(frozen=True)
class FamilyRuntime:
    """The run-time part of a family (``RUNTIME`` of ``runtime/families/<family>/``).

    ``check`` compares a build's kernels with the family's independent reference;
    ``check_models(spec)`` are the further models it builds (e.g. other orders), validated
    first by the demo; ``starts`` is None when the check runs no minimisation (``--starts``
    is refused); ``figures`` are the demo's figures of the family."""

    family: str
    check: Callable[[Build, Mapping[str, float], CheckOptions], FamilyCheck]
    figures: tuple[Figure, ...] = ()
    starts: Starts | None = None
    check_models: Callable[[ModelSpec], Mapping[str, ModelSpec]] = no_models


@cache
def family_runtime(family: str) -> FamilyRuntime:
    """``RUNTIME`` of ``runtime/families/<family>/`` for a family of the registry."""
    if family not in FAMILIES:
        raise UsageError(f"family {family!r}: not in the registry; allowed: "
                         + ", ".join(FAMILIES))
    runtime = import_module(f"{__name__}.{family}").RUNTIME
    if not isinstance(runtime, FamilyRuntime) or runtime.family != family:
        raise TypeError(f"{__name__}.{family}.RUNTIME: expected a FamilyRuntime of {family!r}")
    return runtime


def registry() -> dict[str, FamilyRuntime]:
    """The run-time part of every family, in the registry's order."""
    return {family: family_runtime(family) for family in FAMILIES}


__all__ = ["CheckOptions", "FamilyCheck", "FamilyRuntime", "Figure", "FigureInput", "Section",
           "Starts", "family_runtime", "no_models", "registry"]
