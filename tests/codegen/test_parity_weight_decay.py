"""Weight-decay kernels vs the independent mpmath interpreter of the same FormulaSet.

Random points of the parameter space; every public kernel; relative 1e-12.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from ir_interpreter import evaluate

from netderive.codegen import compile_formulas
from netderive.derivations import derive, parse_model

MODELS = {
    "iso_D2": (2, [3, 5], {"input_covariance": [[2.0, 0.0], [0.0, 2.0]],
                           "input_output_covariance": [0.6, 0.8], "output_variance": 3.0}),
    "iso_D3": (3, [4, 4, 4], {"input_covariance": [[1.5]], "input_output_covariance": [1.2],
                              "output_variance": 2.0}),
    "aniso_D1": (1, [6], {"input_covariance": [[1.0, 0.2], [0.2, 0.5]],
                          "input_output_covariance": [0.7, -0.4], "output_variance": 2.0}),
    "aniso_D2": (2, [4, 4], {"input_covariance": [[1.0, 0.0], [0.0, 0.25]],
                             "input_output_covariance": [0.8, 0.3], "output_variance": 1.0}),
}


#: the default run checks one isotropic and one anisotropic model; the slow run all four
DEFAULT_RUN = {"iso_D2", "aniso_D1"}


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=() if name in DEFAULT_RUN else pytest.mark.slow)
    for name in sorted(MODELS)])
def model(request, kernel_cache_dir):
    depth, widths, data = MODELS[request.param]
    raw = {"family": "weight_decay", "depth": depth, "widths": widths,
           "noise_variance": 0.5, "weight_decay": 0.2, "data": data}
    fs = derive(parse_model(raw, f"{request.param}.toml"))
    return fs, compile_formulas(fs)


def random_points(fs, rng, count):
    """Parameters around the model's defaults, with E[y^2] kept consistent and b in [0, 2]."""
    points = []
    for _ in range(count):
        values = {}
        for p in fs.params:
            if p.name == "b":
                values[p.name] = float(rng.uniform(0.0, 2.0))
            elif p.name == "noise_variance":
                values[p.name] = float(rng.uniform(0.0, 2.0))
            elif p.name == "weight_decay":
                values[p.name] = float(rng.uniform(0.02, 1.0))
            else:
                values[p.name] = float(p.default * rng.uniform(0.7, 1.4))
        explained = sum(values[c] ** 2 / values[a] for a, c in _pairs(fs))
        values["output_variance"] = max(values["output_variance"], explained * 1.1)
        points.append(values)
    return points


def _pairs(fs):
    names = [p.name for p in fs.params]
    if "a" in names:
        return [("a", "m")]
    return [(n, "c_" + n[2:]) for n in names if n.startswith("a_")]


def _check_parity(fs, kernels, seed: int, count: int) -> None:
    rng = np.random.default_rng(seed)
    for values in random_points(fs, rng, count):
        for name in fs.quantities:
            args = [values[a] for a in kernels.KERNEL_ARGUMENTS[name]]
            got = getattr(kernels, name)(*args)
            want = evaluate(fs, name, values)
            if mpmath.isnan(want):
                assert math.isnan(got), (name, values)
                continue
            assert got == pytest.approx(float(want), rel=1e-12, abs=1e-13), (name, values)


def test_every_kernel_matches_the_mpmath_interpreter(model):
    """One random point per model (the interpreter's 30-digit root scans take ~15 s)."""
    fs, kernels = model
    _check_parity(fs, kernels, seed=len(fs.items), count=1)


@pytest.mark.slow
def test_every_kernel_matches_the_mpmath_interpreter_at_more_points(model):
    fs, kernels = model
    _check_parity(fs, kernels, seed=100 + len(fs.items), count=6)


def test_grid_kernels_equal_scalar_kernels(model):
    fs, kernels = model
    rng = np.random.default_rng(1)
    points = random_points(fs, rng, 50)
    for name in ("b_star", "loss_at_minimum", "critical_weight_decay"):
        args = kernels.KERNEL_ARGUMENTS[name]
        arrays = [np.array([p[a] for p in points]) for a in args]
        scalar = [getattr(kernels, name)(*[p[a] for a in args]) for p in points]
        np.testing.assert_array_equal(getattr(kernels, name + "_grid_serial")(*arrays), scalar)
        np.testing.assert_array_equal(getattr(kernels, name + "_grid")(*arrays), scalar)
