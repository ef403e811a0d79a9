"""The large-deviation derivation: kernels, weight correlation, rates, envelope detection.

Each closed form is compared with an independent computation: 2-D numerical quadrature
(scipy), Price's theorem, sampling of the weights, or a numerical Legendre transform.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, optimize

from netderive.derivations import ModelError, derive, parse_model
from netderive.derivations.activation import ACTIVATION_VARIABLE as X
from netderive.derivations.activation import parse_activation
from netderive.derivations.gaussian import C, activation_kernels, price_derivative
from netderive.derivations.ir import PathSaddle
from netderive.derivations.large_deviation import (
    KAPPA,
    Q_PREV,
    Q,
    line_envelope,
    relu_tilted_mgf,
    sign_one_layer_rate,
    weight_correlation,
)
from netderive.runtime.families.large_deviation.reference import (
    weight_correlation as sampled_correlation,
)


def pair_expectation(f, c: float) -> float:
    """E[f(u, v)] for unit normals with correlation c, by 2-D adaptive quadrature, split at
    the kinks u = 0 and v = 0 (v = c z1 + s z2 = 0 is a line in the (z1, z2) plane)."""
    s = math.sqrt(1 - c * c)

    def g(z2: float, z1: float) -> float:
        return f(z1, c * z1 + s * z2) * math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)

    total = 0.0
    for lo1, hi1 in ((-30.0, 0.0), (0.0, 30.0)):
        def kink(z1: float) -> float:
            return -c * z1 / s
        total += integrate.dblquad(g, lo1, hi1, lambda z1: -30.0, kink, epsabs=1e-12)[0]
        total += integrate.dblquad(g, lo1, hi1, kink, lambda z1: 30.0, epsabs=1e-12)[0]
    return total


ACTIVATIONS = {
    "sign": lambda t: math.copysign(1.0, t) if t != 0 else 0.0,
    "relu": lambda t: max(t, 0.0),
    "abs(x)": abs,
    "max(x, 0.1*x)": lambda t: max(t, 0.1 * t),
    "relu(x)**2": lambda t: max(t, 0.0) ** 2,
}


@pytest.mark.parametrize("text", sorted(ACTIVATIONS))
def test_closed_form_kernels_match_quadrature(text) -> None:
    k = activation_kernels(parse_activation(text))
    phi = ACTIVATIONS[text]
    for c in (-0.7, 0.0, 0.35, 0.9):
        want = pair_expectation(lambda u, v: phi(u) * phi(v), c)
        assert float(k.kernel.subs(C, c)) == pytest.approx(want, abs=1e-9)
        want_xx = pair_expectation(lambda u, v: phi(u) ** 2 * phi(v) ** 2, c)
        assert float(k.xx.subs(C, c)) == pytest.approx(want_xx, abs=1e-8)
        want_xy = pair_expectation(lambda u, v: phi(u) ** 3 * phi(v), c)
        assert float(k.xy.subs(C, c)) == pytest.approx(want_xy, abs=1e-8)
    second = integrate.quad(lambda z: phi(z) ** 2 * math.exp(-z * z / 2), -40, 40,
                            points=[0.0])[0] / math.sqrt(2 * math.pi)
    assert float(k.second_moment) == pytest.approx(second, rel=1e-10)


def test_price_theorem_on_sign_and_relu() -> None:
    r"""dK/dc = E[phi'(u) phi'(v)]: for sign phi' = 2 delta, so dK/dc = 4 p(0, 0) =
    2 / (pi sqrt(1 - c^2)); for ReLU phi' = Heaviside, E = 1/4 + asin(c) / (2 pi)."""
    sign = activation_kernels(parse_activation("sign")).kernel
    assert sp.simplify(sp.diff(sign, C) - 2 / (sp.pi * sp.sqrt(1 - C**2))) == 0
    relu = activation_kernels(parse_activation("relu")).kernel
    assert sp.simplify(sp.diff(relu, C) - (sp.Rational(1, 4) + sp.asin(C) / (2 * sp.pi))) == 0
    assert price_derivative(sp.sign(X)) == 2 * sp.DiracDelta(X)


def test_no_closed_form_for_smooth_activations() -> None:
    assert activation_kernels(parse_activation("tanh(x)")) is None
    assert activation_kernels(parse_activation("erf(x)")) is None


@pytest.mark.parametrize("perturbation,p", [("dilution", 0.1), ("dilution", 0.6),
                                            ("binarization", 0.0)])
def test_weight_correlation_matches_sampled_weights(perturbation, p) -> None:
    rho, _ = weight_correlation(perturbation)
    value = float(rho.subs(sp.Symbol("p", nonnegative=True), p))
    sampled = sampled_correlation(perturbation, p, 400_000, np.random.default_rng(5))
    assert value == pytest.approx(sampled, abs=3e-3)
    assert value == pytest.approx(math.sqrt(1 - p) if perturbation == "dilution"
                                  else math.sqrt(2 / math.pi), rel=1e-14)


def test_sign_rate_is_the_numerical_legendre_transform() -> None:
    m = sp.Symbol("mu_test", real=True)
    rate = sp.lambdify((Q, m), sign_one_layer_rate(m))
    for q, mu in ((0.3, -0.2), (-0.8, 0.5), (0.95, 0.1), (0.0, 0.0)):
        best = optimize.minimize_scalar(
            lambda th, q=q, mu=mu: -(th * q - math.log(math.cosh(th) + mu * math.sinh(th))),
            bounds=(-30, 30), method="bounded", options={"xatol": 1e-12})
        assert rate(q, mu) == pytest.approx(-best.fun, abs=1e-9)
    assert rate(1.0, 0.3) == pytest.approx(-math.log(1.3 / 2), rel=1e-14)  # 0 log 0 = 0


def test_line_envelope_detection() -> None:
    a, b = sp.symbols("a b", positive=True)
    rate = (Q - a * Q_PREV) ** 2 / (2 * b) + sp.log(1 + Q_PREV**2)
    envelope = line_envelope(rate, Q, Q_PREV)
    assert envelope is not None
    offset, abscissa, slope, intercept = envelope
    assert sp.simplify(offset + abscissa * slope + intercept - rate) == 0
    assert Q_PREV not in (offset + abscissa).free_symbols
    assert Q not in (slope + intercept).free_symbols
    # not affine in one function of q at fixed q': no envelope
    assert line_envelope(sp.exp(Q * Q_PREV) + Q**2, Q, Q_PREV) is None
    assert line_envelope(Q * Q_PREV + Q**2 * Q_PREV**2, Q, Q_PREV) is None


@pytest.mark.parametrize("r,c,kappa", [(0.5, 0.9, 0.6), (0.8, 0.6, -1.2), (0.95, 0.95, 5.0),
                                       (0.3, 0.2, -0.5), (0.7, 0.5, 0.0)])
def test_relu_tilted_mgf_matches_quadrature(r, c, kappa) -> None:
    """Quadrant closed form (both arccos and arccosh branches) vs 2-D quadrature, inside the
    domain -1/(rD) < kappa < 1/((1 - r)(1 + c)) where the MGF is finite."""
    expr = relu_tilted_mgf(sp.Float(r), sp.Float(c), sp.Float(kappa))
    got = sp.lambdify((), expr, modules="math")()  # only the selected branch is evaluated

    def integrand(u: float, v: float) -> float:
        a, b = max(u, 0.0), max(v, 0.0)
        return math.exp(kappa * (a * b - r / 2 * (a * a + b * b)))

    assert got == pytest.approx(pair_expectation(integrand, c), rel=1e-8)


def test_relu_tilted_mgf_near_the_series_branch() -> None:
    """F(t) near t = 1 (Taylor branch) is continuous with the arccos/arccosh branches."""
    t = sp.Symbol("t_test", real=True)
    import mpmath

    from netderive.derivations.large_deviation import quadrant_integral_ratio

    f = sp.lambdify(t, quadrant_integral_ratio(t), modules="math")
    for eps in (2e-3, 1.5e-3, 1.001e-3, 9.99e-4, 1e-6, 0.0):
        for side in (1, -1):
            value = 1 + side * eps
            with mpmath.workdps(40):
                v = mpmath.mpf(value)
                exact = (1 if v == 1 else mpmath.acos(v) / mpmath.sqrt(1 - v**2) if v < 1
                         else mpmath.acosh(v) / mpmath.sqrt(v**2 - 1))
            # double-precision branches lose ~1e-16 / eps to cancellation near t = 1
            assert f(value) == pytest.approx(float(exact), rel=1e-13 + 1e-17 / max(eps, 1e-3))
    assert KAPPA.name == "kappa"


BASE = {"family": "large_deviation", "activation": "sign", "perturbation": "dilution",
        "p": 0.1, "depth": 3}


@pytest.mark.parametrize("change,needle", [
    ({"perturbation": "pruning"}, "perturbation"),
    ({"p": 1.0}, "p = 1"),
    ({"p": None}, "p: missing"),
    ({"depth": 0}, "depth"),
    ({"input_overlap": 1.5}, "input_overlap"),
    ({"grid_size": 2}, "grid_size"),
    ({"activation": "x**"}, "activation"),
    ({"activation": "__import__('os')"}, "activation"),
])
def test_bad_model_files_are_one_line_errors(change, needle) -> None:
    raw = {**BASE, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ModelError) as info:
        parse_model(raw, "bad.toml")
    message = str(info.value)
    assert "\n" not in message and needle in message


def test_routes_by_activation() -> None:
    """Sign, ReLU and Gauss-Hermite routes; every route has activation_bound = sup |phi|."""
    sets = {a: derive(parse_model({**BASE, "activation": a}, "m.toml"))
            for a in ("3*sign(x)", "relu", "tanh(x)")}
    sign = sets["3*sign(x)"]
    assert "scgf" in sign.quantities and sign.item("rate_function").envelope is not None
    relu = sets["relu"]
    assert "overlap_variance" in relu.quantities
    assert relu.item("rate_function").envelope is None and relu.item("rate_function").lower == 0
    assert isinstance(relu.item("rate_function_legendre"), PathSaddle)
    assert relu.item("scgf").mode == "tilt"
    tanh = sets["tanh(x)"]
    assert {"typical_overlap", "rate_function", "scgf"} <= set(tanh.quantities)
    rate = tanh.item("rate_function")
    assert isinstance(rate, PathSaddle) and len(rate.state) == 3  # (q, Q, Q-hat)
    assert "grid_size" not in {p.name for p in tanh.params}
    # sup |phi| on every route: a public Formula without arguments (it does not depend on the
    # weight variance), its reason in the notes
    for text, want in (("3*sign(x)", 3), ("relu", sp.oo), ("tanh(x)", 1)):
        fs = sets[text]
        assert "activation_bound" in fs.quantities and fs.arguments("activation_bound") == ()
        assert fs.item("activation_bound").expr == want
        note = next(n for n in fs.notes if n.startswith("sup |phi| = "))
        assert ("unbounded" in note) == (want == sp.oo), note

