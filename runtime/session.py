"""Model -> cached build -> loaded kernels, with the parameter table of the build.

The fast path (an unchanged model) reads the TOML, hashes it and finds the cached build
without importing sympy or numba.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from derivations.model import ModelError, ModelSpec, load_model


class UsageError(Exception):
    """Bad command-line input: ``<argument>: <problem>; allowed: <what>`` (one line)."""


def resolve_model(name: str) -> ModelSpec:
    """A model file path, or the name of a bundled model (``weight_decay``)."""
    path = Path(name)
    if path.exists() or path.suffix == ".toml" or "/" in name:
        return load_model(path)
    from models import bundled_model, bundled_model_paths

    try:
        return load_model(bundled_model(name))
    except FileNotFoundError:
        names = ", ".join(p.stem for p in bundled_model_paths())
        raise ModelError(name, "model", "no such file or bundled model",
                         f"a path to a .toml file or one of: {names}",
                         show_value=False) from None


@dataclass
class Build:
    """A model's build: where its files are, whether it was just made, its manifest."""

    spec: ModelSpec
    directory: Path
    manifest: dict
    rebuilt: bool
    seconds: float
    _module: ModuleType | None = None

    @property
    def params(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.manifest["params"]}

    @property
    def quantities(self) -> list[str]:
        return [i["name"] for i in self.manifest["items"] if not i["internal"]]

    def item(self, name: str) -> dict:
        for i in self.manifest["items"]:
            if i["name"] == name:
                return i
        raise KeyError(name)

    def kernels(self) -> ModuleType:
        """The generated module (imports numba; kernels compile on first call)."""
        if self._module is None:
            from codegen.cache import Artifacts, load_kernels

            self._module = load_kernels(Artifacts(self.directory, self.manifest))
        return self._module

    @property
    def latex_path(self) -> Path:
        return self.directory / "formulas.tex"

    @property
    def markdown_path(self) -> Path:
        return self.directory / "formulas.md"


def build(spec: ModelSpec) -> Build:
    """Derive and generate the model's kernels unless an intact build is cached."""
    from codegen.cache import lookup

    start = time.perf_counter()
    text = spec.canonical()
    found = lookup(spec.stem, text)
    if found is not None:
        return Build(spec, found.directory, found.manifest, False, time.perf_counter() - start)
    from codegen.cache import ensure_built
    from derivations import derive

    artifacts, rebuilt = ensure_built(spec.stem, text, lambda: derive(spec), spec.source)
    return Build(spec, artifacts.directory, artifacts.manifest, rebuilt,
                 time.perf_counter() - start)


def check_value(build_: Build, name: str, value: float, label: str) -> float:
    """``value`` if it lies in parameter ``name``'s domain, else a UsageError."""
    p = build_.params[name]
    ok = isinstance(value, float | int) and math.isfinite(value)
    if ok:
        lo, hi = p["lower"], p["upper"]
        ok = (value >= lo if p["lower_closed"] else value > lo) and (
            value <= hi if p["upper_closed"] else value < hi)
        if p["integer"] and float(value) != int(value):
            ok = False
    if not ok:
        raise UsageError(f"{label}: {name} = {value!r} is outside the domain of {name}; "
                         f"allowed: {p['domain']}")
    return float(value)


def moment_pairs(build_: Build) -> list[tuple[str, str]]:
    """(eigenvalue, projection) parameter pairs of a weight-decay build: (a, m) or (a_k, c_k)."""
    names = build_.params
    if "a" in names and "m" in names:
        return [("a", "m")]
    return [(n, "c_" + n[2:]) for n in names if n.startswith("a_") and "c_" + n[2:] in names]


def check_consistency(build_: Build, values: Mapping[str, Any], grid: Mapping[str, Any],
                      given: Mapping[str, Any] | None = None) -> None:
    """E[y^2] >= sum_k c_k^2 / a_k at every point (else the data moments are impossible and
    the "loss" goes negative).  ``values``: fixed values; ``grid``: axes (Cartesian)."""
    import numpy as np

    pairs = moment_pairs(build_)
    if build_.spec.family != "weight_decay" or not pairs or "output_variance" not in build_.params:
        return
    names = ["output_variance", *[n for pair in pairs for n in pair]]
    axes = [n for n in grid if n in names]
    mesh = dict(zip(axes, np.meshgrid(*[np.asarray(grid[n], float) for n in axes],
                                      indexing="ij"), strict=True)) if axes else {}

    def column(n: str):
        if n in mesh:
            return mesh[n]
        return float(values[n] if n in values else build_.params[n]["default"])

    explained = sum(column(c) ** 2 / column(a) for a, c in pairs)
    ey2 = column("output_variance")
    bad = np.asarray(ey2 < explained * (1 - 1e-12))
    if not bad.any():
        return
    index = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
    at_ey2 = float(np.asarray(ey2)[index] if np.ndim(ey2) else ey2)
    at_explained = float(np.asarray(explained)[index] if np.ndim(explained) else explained)
    given = values if given is None else given
    options = [f"--grid {n}" if n in grid else f"--set {n}" for n in names
               if n in grid or n in given] or [build_.spec.source]
    raise UsageError(f"{', '.join(options)}: output_variance = {at_ey2!r} < "
                     f"E[xy]^T A0^-1 E[xy] = {at_explained:.6g}: inconsistent data moments; "
                     f"allowed: output_variance >= {at_explained:.6g}")


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
    values = dict(overrides)
    if "depth" in values and "widths" not in values:
        widths = spec.get("widths")
        if widths and len(set(widths)) == 1:
            values["widths"] = [widths[0]] * int(values["depth"])
    decay = spec.get("weight_decay")
    if "depth" in values and isinstance(decay, tuple) and "weight_decay" not in values:
        raise UsageError(f"{label}: depth: the model has per-layer weight decays; "
                         "allowed: change depth in the model file")
    try:
        return spec.with_values(values, source=f"{spec.source} ({label})")
    except ModelError as exc:
        raise UsageError(str(exc)) from None


def manifest_summary(b: Build) -> str:
    return json.dumps({"directory": str(b.directory), "rebuilt": b.rebuilt}, indent=1)
