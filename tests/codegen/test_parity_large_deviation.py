"""Large-deviation kernels vs the independent mpmath interpreter of the same FormulaSet.

Every public kernel at a random point (small DP grids: the interpreter's min-plus loop is
plain mpmath over all pairs).  Closed forms, recurrences and roots: relative 1e-10 (the
saddle-point shooting is ill-conditioned in the first tilt, so 1e-8 there);
Gauss-Hermite items (tanh): 1e-6 against the exact Gaussian integrals.
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
    "sign_dilution": ("sign", "dilution"),
    "relu_binarization": ("relu", "binarization"),
    "tanh_dilution": ("tanh(x)", "dilution"),
}
RANGES = {"p": (0.05, 0.6), "input_overlap": (0.3, 1.0), "q_prev": (-0.9, 0.95),
          "tilt": (-0.5, 0.5), "first_tilt": (-0.5, 0.5)}  # tilt: inside the ReLU MGF domain
TOLERANCE = {"rate_function_legendre": 1e-8, "scgf": 1e-8,
             # ReLU: Newton on the saddle-point system vs the interpreter's nested scipy
             # minimisation (a different algorithm, float64)
             ("relu_binarization", "rate_function_legendre"): 1e-6,
             ("relu_binarization", "scgf"): 1e-6}


#: relu_binarization (23 s: the Chernoff root in every DP cell) runs in the slow run; its
#: kernels are checked against the notes' ReLU tables in the default run
DEFAULT_RUN = {"sign_dilution", "tanh_dilution"}


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=() if name in DEFAULT_RUN else pytest.mark.slow)
    for name in sorted(MODELS)])
def model(request, kernel_cache_dir):
    activation, perturbation = MODELS[request.param]
    raw = {"family": "large_deviation", "activation": activation,
           "perturbation": perturbation, "p": 0.2, "depth": 2, "grid_size": 7}
    fs = derive(parse_model(raw, f"parity_{request.param}.toml"))
    return request.param, fs, compile_formulas(fs)


#: (model, quantity) whose interpretation takes minutes: the 30-digit scan of 2 x 4000 cells
#: of the saddle-point shooting, and 2-D mpmath quadrature per layer (slow run only)
HEAVY = {("sign_dilution", "rate_function_legendre"), ("sign_dilution", "scgf"),
         ("tanh_dilution", "typical_overlap")}
#: 28 tilted moments by 2-D quadrature in every stage of every Newton step: not interpreted
#: (tests/reference/test_large_deviation_sampling.py checks them against an independent
#: nested minimisation and against sampling)
SKIPPED = {("tanh_dilution", "rate_function"), ("tanh_dilution", "scgf")}


def test_every_kernel_matches_the_mpmath_interpreter(model) -> None:
    _check(model, lambda key: key not in HEAVY | SKIPPED)


@pytest.mark.slow
def test_heavy_kernels_match_the_mpmath_interpreter(model) -> None:
    _check(model, lambda key: key in HEAVY)


def _check(model, selected) -> None:
    name, fs, kernels = model
    rng = np.random.default_rng(11)
    values = {p.name: p.default for p in fs.params}
    values.update({k: float(rng.uniform(*r)) for k, r in RANGES.items()})
    values["q"] = float(rng.uniform(0.25, 0.9))
    for quantity in fs.quantities:
        if not selected((name, quantity)):
            continue
        got = getattr(kernels, quantity)(*(values[a] for a in fs.arguments(quantity)))
        want = evaluate(fs, quantity, values)
        if mpmath.isnan(want):
            assert math.isnan(got), (quantity, values)
            continue
        rel = 1e-6 if name == "tanh_dilution" else TOLERANCE.get(
            (name, quantity), TOLERANCE.get(quantity, 1e-10))
        assert got == pytest.approx(float(want), rel=rel, abs=1e-12), (quantity, values)


@pytest.mark.slow
def test_saddle_stage_derivatives_are_the_stage_derivatives(model) -> None:
    """The gradient and Hessian fields of every PathSaddle stage (written by hand for the
    Gauss-Hermite route: ratios of 28 tilted moments) against central finite differences of
    the compiled stage value and gradient, at points off the typical path."""
    import inspect

    from netderive.derivations.ir import PathSaddle

    name, fs, kernels = model
    saddles = [i for i in fs.items if isinstance(i, PathSaddle)]
    if not saddles:
        pytest.skip(f"{name} has no path saddle")
    item = saddles[0]
    d = len(item.state)
    stage = next(getattr(kernels, a) for a in dir(kernels)
                 if a.startswith("_saddle_") and a.endswith("_stage"))
    solve = getattr(kernels, stage.__name__.removesuffix("_stage") + "_solve")
    # stage(theta, m, m', params): params are the trailing arguments of the compiled solve
    names = list(inspect.signature(solve.py_func).parameters)[5:]
    values = {p.name: p.default for p in fs.params}
    extra = tuple(float(values[n]) for n in names)
    rng = np.random.default_rng(5)
    if d == 1:  # ReLU: (kappa, r, r') inside the kappa domain
        points = [np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.3, 0.9),
                            rng.uniform(0.3, 0.95)]) for _ in range(4)]
    else:  # (theta, m, m') with m' a feasible (q', Q', Q-hat')
        points = [np.concatenate([rng.uniform(-0.6, 0.6, 3), rng.uniform(0.2, 0.6, 3),
                                  [rng.uniform(0.2, 0.4)], rng.uniform(0.45, 0.6, 2)])
                  for _ in range(3)]
    step = 1e-5
    for x in points:
        value, gradient, hessian = stage(*np.split(x, 3), extra)
        for a in range(3 * d):
            e = np.zeros(3 * d)
            e[a] = step
            up, g_up, _ = stage(*np.split(x + e, 3), extra)
            down, g_down, _ = stage(*np.split(x - e, 3), extra)
            assert gradient[a] == pytest.approx((up - down) / (2 * step), rel=1e-6, abs=1e-8)
            np.testing.assert_allclose(hessian[a], (g_up - g_down) / (2 * step), rtol=1e-5,
                                       atol=1e-7)


@pytest.mark.parametrize(("text", "want"), [("x/(1+abs(x))", 1.0), ("x**3", math.inf),
                                            ("x*exp(-x**2)", math.exp(-0.5) / math.sqrt(2))])
def test_activation_bound_kernel(kernel_cache_dir, text: str, want: float) -> None:
    """The activation_bound item compiles to a kernel without arguments; +oo prints as
    math.inf."""
    from netderive.derivations.activation import activation_bound, parse_activation
    from netderive.derivations.ir import Formula, FormulaSet

    value = activation_bound(parse_activation(text)).value
    fs = FormulaSet("bound", "large_deviation", "bound.toml", (), (
        Formula("activation_bound", value, "sup_x |phi(x)|", "test"),))
    assert compile_formulas(fs).activation_bound() == pytest.approx(want, rel=1e-15)
