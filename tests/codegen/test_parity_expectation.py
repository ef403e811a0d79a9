"""Expectation kernels (generated loop nests) vs the IR interpreter of the same FormulaSet.

The interpreter runs each ArrayProgram statement as one vectorised numpy evaluation over
its index grid (tests/ir_interpreter.py), not the generated loops: every public kernel,
scalar and grid versions, at seeded random (step, test point, eta, sigma), relative 1e-10.
Models: a tanh net with one hidden layer and a softplus net with two hidden layers of
different widths, orders 1 and 2, both noise scalings.  First compilation costs ~15-50 s
per model (numba, loop nests), so the default run checks the two-layer order-2 model and
the slow run the other three.
"""

from __future__ import annotations

import numpy as np
import pytest
from ir_interpreter import evaluate

from netderive.codegen import compile_formulas
from netderive.derivations import derive, parse_model

DATA = {"train_inputs": [[-1.0, 0.5], [0.0, -1.0], [1.0, 1.0]],
        "train_targets": [-0.5, 0.2, 0.9], "test_inputs": [[0.3, 0.8], [-0.8, -0.6]]}
MODELS = {
    "tanh_order1": ("tanh(x)", [3], 1, "eta"),
    "tanh_order2": ("tanh(x)", [3], 2, "sqrt_eta"),
    "softplus_deep_order1": ("log(1 + exp(x))", [3, 2], 1, "sqrt_eta"),
    "softplus_deep_order2": ("log(1 + exp(x))", [3, 2], 2, "eta"),
}


#: all in the slow run: first compilation costs 15-50 s per model; the default run checks
#: the same generated code end to end against the notes' case A
#: (tests/reference/test_expectation_values.py, scalar and grid kernels)
DEFAULT_RUN: set[str] = set()


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=() if name in DEFAULT_RUN else pytest.mark.slow)
    for name in sorted(MODELS)])
def model(request, kernel_cache_dir):
    activation, widths, order, scaling = MODELS[request.param]
    raw = {"family": "expectation", "activation": activation, "widths": widths,
           "learning_rate": 0.1, "noise_std": 0.3, "noise_scaling": scaling, "order": order,
           "steps": 5, "data": DATA, "init": {"seed": 3}}
    fs = derive(parse_model(raw, f"parity_{request.param}.toml"))
    return request.param, fs, compile_formulas(fs)


def test_output_kernels_match_the_interpreter(model) -> None:
    _check(model, ("mean_output", "output_variance"), ("_grid",))


@pytest.mark.slow
def test_every_kernel_matches_the_interpreter(model) -> None:
    _check(model, None, ("_grid", "_grid_serial"))


def _check(model, quantities, suffixes) -> None:
    name, fs, kernels = model
    rng = np.random.default_rng(5)
    points = [{"step": float(rng.integers(0, 8)), "test_point": float(rng.integers(0, 2)),
               "learning_rate": float(rng.uniform(0.02, 0.2)),
               "noise_std": float(rng.uniform(0.0, 0.5))} for _ in range(3)]
    for quantity in quantities or fs.quantities:
        args = fs.arguments(quantity)
        want = [float(evaluate(fs, quantity, p)) for p in points]
        got = [getattr(kernels, quantity)(*(p[a] for a in args)) for p in points]
        assert got == pytest.approx(want, rel=1e-10, abs=1e-14), (name, quantity, points)
        columns = [np.array([p[a] for p in points]) for a in args]
        for suffix in suffixes if args else ():
            grid = getattr(kernels, quantity + suffix)(*columns)
            assert grid == pytest.approx(want, rel=1e-10, abs=1e-14), (name, quantity, suffix)
