"""Model -> cached build -> loaded kernels, with the parameter table of the build.

The fast path (an unchanged model) reads the TOML, hashes it and finds the cached build
without importing sympy or numba.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from netderive.codegen.cache import Artifacts
from netderive.derivations.domain import Domain
from netderive.derivations.model import ModelError, ModelSpec, load_model

if TYPE_CHECKING:
    import numpy as np


class UsageError(ModelError):
    """Bad command-line (or Python API) input: ``<argument>: <problem>; allowed: <what>``
    (one line).  A :class:`ModelError`, so that ``except netderive.ModelError`` catches every
    bad input."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message.replace("\r", "\\r").replace("\n", "\\n"))
        self.source, self.key, self.problem, self.allowed = "", "", message, ""


#: Environment variable: the number of threads that parallel (``_grid``) kernels use (at most
#: numba's ``NUMBA_NUM_THREADS``); 1 makes every sweep use the single-core kernels.
THREADS_ENV = "NETDERIVE_THREADS"


def kernel_threads() -> int | None:
    """The thread count asked for by ``NETDERIVE_THREADS`` (None when unset); applied to numba
    when the kernels are loaded.  A value that is not a positive integer is a UsageError."""
    import os

    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{THREADS_ENV}={text!r}: not a thread count; allowed: a whole "
                         "number >= 1")
    return int(text)


def _apply_threads() -> None:
    """Set numba's thread count from ``NETDERIVE_THREADS`` (capped at the pool's size)."""
    threads = kernel_threads()
    if threads is not None:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def resolve_model(name: str, cross_checks: bool = False) -> ModelSpec:
    """A model file path, or the name of a bundled model (as ``netderive models`` lists them).

    Cross-key checks are deferred by default: :func:`build` runs them unless an intact
    build of the same canonical model exists (which proves they passed).
    """
    path = Path(name)
    if path.exists() or path.suffix == ".toml" or "/" in name:
        return load_model(path, cross_checks)
    from netderive.models import bundled_model, bundled_model_paths

    try:
        return load_model(bundled_model(name), cross_checks)
    except FileNotFoundError:
        from netderive.derivations.model import did_you_mean

        stems = [p.stem for p in bundled_model_paths()]
        raise ModelError(name, "model", "no such file or bundled model"
                         + did_you_mean(name, stems),
                         f"a path to a .toml file or one of: {', '.join(stems)}",
                         show_value=False) from None


@dataclass
class Build:
    """A model's build: its cached artifacts, whether it was just made, how long it took."""

    spec: ModelSpec
    artifacts: Artifacts
    rebuilt: bool
    seconds: float
    _module: ModuleType | None = None

    @property
    def directory(self) -> Path:
        return self.artifacts.directory

    @property
    def manifest(self) -> dict:
        return self.artifacts.manifest

    @property
    def latex_path(self) -> Path:
        return self.artifacts.latex_path

    @property
    def markdown_path(self) -> Path:
        return self.artifacts.markdown_path

    @property
    def params(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.manifest["params"]}

    @property
    def inputs(self) -> list[str]:
        """The parameters that some quantity takes (the others are internal variables of the
        derivation, e.g. the state of a saddle point, and cannot be set)."""
        used = {a for i in self.manifest["items"] if not i["internal"] for a in i["arguments"]}
        return [n for n in self.params if n in used]

    @property
    def quantities(self) -> list[str]:
        return [i["name"] for i in self.manifest["items"] if not i["internal"]]

    def item(self, name: str) -> dict:
        for i in self.manifest["items"]:
            if i["name"] == name:
                return i
        raise KeyError(name)

    @property
    def defaults(self) -> dict[str, float]:
        """Default value of every parameter that has one."""
        return {n: p["default"] for n, p in self.params.items() if p["default"] is not None}

    def call(self, name: str, values: Mapping[str, float]) -> float:
        """The scalar kernel ``name`` with its arguments taken from ``values`` by name."""
        kernel = getattr(self.kernels(), name)
        return float(kernel(*self._scalars(name, self.item(name)["arguments"], values)))

    def grid(self, name: str, columns: Mapping[str, np.ndarray],
             values: Mapping[str, float] | None = None, parallel: bool = False) -> np.ndarray:
        """The grid kernel of ``name`` (``name_grid`` if ``parallel``, else
        ``name_grid_serial``) at the points ``columns``: argument name -> 1-D array, all of one
        length; the other arguments are taken from ``values`` by name.  A column that is no
        argument of ``name``, columns of different lengths and a missing argument are errors."""
        import numpy as np

        args = self.item(name)["arguments"]
        unknown = sorted(set(columns) - set(args))
        if unknown:
            raise KeyError(f"{name}: {unknown[0]!r} is not an argument; its arguments: "
                           + ", ".join(args))
        arrays = {a: np.ascontiguousarray(c, dtype=float).ravel() for a, c in columns.items()}
        lengths = {a.size for a in arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"{name}: columns of different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 1
        fixed = dict(zip([a for a in args if a not in arrays],
                         self._scalars(name, [a for a in args if a not in arrays], values or {}),
                         strict=True))
        kernel = getattr(self.kernels(), name + ("_grid" if parallel else "_grid_serial"))
        return np.asarray(kernel(*[arrays[a] if a in arrays else np.full(n, fixed[a])
                                   for a in args]))

    def curves(self, name: str, values: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """``(grid, rows)`` of a kernel that computes whole curves in one variable (the
        ``curve_variable`` of the manifest: ``name_curves``), the other arguments taken from
        ``values`` by name: the curve's grid and one row per step (``I_1 .. I_K``)."""
        import numpy as np

        item = self.item(name)
        variable = item.get("curve_variable")
        kernel = getattr(self.kernels(), name + "_curves", None) if variable else None
        if kernel is None:
            raise KeyError(f"{name}: not a curve kernel (no {name}_curves)")
        args = [a for a in item["arguments"] if a != variable]
        grid, rows = kernel(*self._scalars(name, args, values))
        return np.asarray(grid), np.atleast_2d(np.asarray(rows))

    @staticmethod
    def _scalars(name: str, args: list[str], values: Mapping[str, float]) -> list[float]:
        """``values`` of ``args`` as floats, in the kernel's order; a missing one an error."""
        missing = [a for a in args if a not in values]
        if missing:
            raise KeyError(f"{name}: no value for argument {missing[0]!r}")
        return [float(values[a]) for a in args]

    def kernels(self) -> ModuleType:
        """The generated module (imports numba; kernels compile on first call)."""
        if self._module is None:
            from netderive.codegen.cache import load_kernels

            _apply_threads()
            self._module = load_kernels(self.artifacts)
        return self._module


def build(spec: ModelSpec, on_derive: Callable[[ModelSpec], None] | None = None) -> Build:
    """Derive and generate the model's kernels unless an intact build is cached.

    ``on_derive`` is called before a derivation starts (e.g. to say so on stderr).
    """
    from netderive.codegen.cache import lookup

    start = time.perf_counter()
    text = spec.canonical()
    found = lookup(spec.stem, text)
    if found is not None:
        return Build(spec, found, False, time.perf_counter() - start)
    from netderive.codegen.cache import ensure_built, version_dir
    from netderive.derivations import derive

    spec = spec.with_cross_checks()
    version_dir().mkdir(parents=True, exist_ok=True)  # an unusable cache: an error, not news
    if on_derive is not None:
        on_derive(spec)
    artifacts, rebuilt = ensure_built(spec.stem, text, lambda: derive(spec), spec.source)
    return Build(spec, artifacts, rebuilt, time.perf_counter() - start)


def format_value(build_: Build, name: str, value: Any) -> str:
    """``value`` of parameter ``name`` for messages: whole values of an integer parameter as
    integers (``step = 200``), other numbers in full precision (``repr``)."""
    p = build_.params.get(name)
    if isinstance(value, float | int) and not isinstance(value, bool):
        if p is not None and p["integer"] and math.isfinite(value) and float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    return str(value)


def check_value(build_: Build, name: str, value: float, label: str) -> float:
    """``value`` if it is finite and lies in parameter ``name``'s domain, else a UsageError."""
    p = build_.params[name]
    domain = Domain(p["lower"], p["upper"], p["lower_closed"], p["upper_closed"], p["integer"])
    if not (isinstance(value, float | int) and math.isfinite(value)
            and domain.contains(value)):
        raise UsageError(f"{label}: {name} = {format_value(build_, name, value)} is outside "
                         f"the domain of {name}; allowed: {domain}")
    return float(value)


def parse_number(text: str, label: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{label}: {text!r} is not a number; allowed: a finite number") from None
    if not math.isfinite(value):
        raise UsageError(f"{label}: {text!r} is not finite; allowed: a finite number")
    return value


def apply_structural(spec: ModelSpec, overrides: Mapping[str, Any], label: str) -> ModelSpec:
    """Re-validated model with top-level model keys replaced (a new derivation)."""
    if not overrides:
        return spec
    try:
        return spec.with_values(overrides, source=f"{spec.source} ({label})")
    except ModelError as exc:
        raise UsageError(str(exc)) from None
