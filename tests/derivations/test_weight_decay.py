"""Symbolic identities of the weight-decay derivation, each against an independent route."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from netderive.derivations import parse_model
from netderive.derivations.ir import Formula, Root
from netderive.derivations.weight_decay import (
    EY2,
    GAMMA,
    SIGMA2,
    derive,
    eigen_directions,
    hessian_at_origin,
    isotropic_thresholds,
    noise_averaged_loss,
    noise_averaged_loss_by_expansion,
    stationary_points,
    weight_symbols,
)
from netderive.runtime.families.weight_decay import reference as ref


def _symmetric(d: int) -> sp.Matrix:
    return sp.Matrix(d, d, lambda i, j: sp.Symbol(f"A_{min(i, j)}{max(i, j)}", real=True))


@pytest.mark.parametrize("input_dim, widths", [(2, [2]), (1, [2, 2]), (2, [2, 1]), (1, [1, 1, 1])])
def test_moment_recursion_equals_brute_force_noise_average(input_dim, widths):
    weights = weight_symbols(input_dim, widths)
    a0 = _symmetric(input_dim)
    exy = sp.Matrix(input_dim, 1, lambda i, j: sp.Symbol(f"e_{i}", real=True))
    gammas = sp.symbols(f"g0:{len(widths) + 1}", positive=True)
    recursion = noise_averaged_loss(weights, a0, exy, EY2, SIGMA2, gammas)
    brute = noise_averaged_loss_by_expansion(weights, a0, exy, EY2, SIGMA2, gammas)
    assert sp.expand(recursion - brute) == 0


def test_moment_recursion_matches_numpy_reference_at_random_weights():
    rng = np.random.default_rng(3)
    widths, d = [3, 2], 2
    weights = weight_symbols(d, widths)
    m = rng.normal(size=(d, d))
    a0 = m @ m.T + np.eye(d)
    exy, ey2, sigma2, gamma = rng.normal(size=d), 3.0, 0.7, 0.2
    loss = noise_averaged_loss(weights, sp.Matrix(a0), sp.Matrix(exy), ey2, sigma2,
                               [gamma] * 3)
    numeric = [rng.normal(size=tuple(w.shape)) for w in weights]
    subs = {s: v for w, nv in zip(weights, numeric, strict=True)
            for s, v in zip(w, nv.ravel(), strict=True)}
    data = ref.DataMoments(a0, exy, ey2)
    expected = ref.exact_loss([*numeric[:-1], numeric[-1].ravel()], data, sigma2, gamma)
    assert float(loss.subs(subs)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("depth", [1, 2])
def test_all_stationary_points_of_width_one_networks(depth):
    """Exact solutions vs roots of m b^(D-1) = s^2 a b^(2D) + gamma found by numpy."""
    a, m = sp.Symbol("a", positive=True), sp.Symbol("m", positive=True)
    values = {a: sp.Rational(1), m: sp.Rational(1), SIGMA2: sp.Rational(1, 4),
              GAMMA: sp.Rational(1, 5), EY2: sp.Integer(2)}
    points = stationary_points(depth, values)
    k = 1.25**depth  # s^2 a = (1 + sigma^2)^D with widths 1
    poly = np.zeros(2 * depth + 1)
    poly[0] += k
    poly[2 * depth - (depth - 1)] -= 1.0
    poly[-1] += 0.2
    b_roots = sorted(r.real for r in np.roots(poly) if abs(r.imag) < 1e-12 and r.real > 0)
    sign_patterns = 2**depth  # signs with a positive product of the D+1 weights
    assert len(points) == 1 + sign_patterns * len(b_roots)
    norms = sorted({round(float(abs(next(iter(p.values())))), 10) for p in points})
    assert norms[0] == 0.0
    np.testing.assert_allclose(norms[1:], b_roots, rtol=1e-9)
    for p in points:
        mags = {round(float(abs(v)), 10) for v in p.values()}
        assert len(mags) == 1, "balance: every layer has the same norm"


def test_hessian_at_origin():
    m = sp.Symbol("m", positive=True)
    h1 = hessian_at_origin(1)
    assert set(h1.eigenvals()) == {2 * GAMMA - 2 * m, 2 * GAMMA + 2 * m}
    for depth in (2, 3):
        assert hessian_at_origin(depth) == 2 * GAMMA * sp.eye(depth + 1)


def test_hessian_at_origin_numerically_for_a_wide_network():
    """Finite-difference Hessian of the numpy reference loss: min eigenvalue 2(gamma - m)."""
    rng = np.random.default_rng(0)
    d, gamma = 3, 0.3  # one hidden layer of width 3
    m_ = rng.normal(size=(d, d))
    data = ref.DataMoments(m_ @ m_.T + np.eye(d), np.array([0.5, -0.4, 0.2]), 2.0)
    shapes = [(3, 3), (3,)]
    n = 12
    h = 1e-4

    def grad(x):
        return ref.exact_loss_and_gradient(x, shapes, data, 0.5, gamma)[1]

    hess = np.array([(grad(h * e) - grad(-h * e)) / (2 * h) for e in np.eye(n)])
    m = np.linalg.norm(data.input_output_covariance)
    assert np.linalg.eigvalsh((hess + hess.T) / 2).min() == pytest.approx(2 * (gamma - m),
                                                                          rel=1e-6)


@pytest.mark.parametrize("depth", [2, 3, 4, 5, 6])
def test_isotropic_thresholds_match_the_closed_forms_of_the_notes(depth):
    gamma_c, gamma_sp, _ = isotropic_thresholds(depth)
    k, m = sp.symbols("k m", positive=True)
    rng = np.random.default_rng(depth)
    for kv, mv in rng.uniform(0.2, 3.0, size=(4, 2)):
        notes_c = (mv ** (2 * depth) * (depth - 1) ** (depth - 1)
                   / (depth ** (2 * depth) * kv ** (depth - 1))) ** (1 / (depth + 1))
        b_sp = ((depth - 1) * mv / (2 * depth * kv)) ** (1 / (depth + 1))
        notes_sp = (depth + 1) * mv / (2 * depth) * b_sp ** (depth - 1)
        assert float(gamma_c.subs({k: kv, m: mv})) == pytest.approx(notes_c, rel=1e-13)
        assert float(gamma_sp.subs({k: kv, m: mv})) == pytest.approx(notes_sp, rel=1e-13)


def test_critical_decay_depth_one_is_m():
    gamma_c, gamma_sp, _ = isotropic_thresholds(1)
    assert gamma_c == sp.Symbol("m", positive=True) == gamma_sp


def _spec(**over):
    raw = {"family": "weight_decay", "depth": 2, "widths": [4, 4], "noise_variance": 1.0,
           "weight_decay": 0.2,
           "data": {"input_covariance": [[1.0, 0.0], [0.0, 0.25]],
                    "input_output_covariance": [0.8, 0.3], "output_variance": 1.0}}
    raw.update(over)
    return parse_model(raw, "test.toml")


def test_formula_set_structure():
    fs = derive(_spec())
    for name in ("b_star", "loss_at_minimum", "critical_weight_decay"):
        assert name in fs.quantities
    assert isinstance(fs.item("b_star"), Root)
    assert isinstance(fs.item("critical_weight_decay"), Root)  # anisotropic: a root solve
    iso = derive(_spec(data={"input_covariance": [[2.0, 0.0], [0.0, 2.0]],
                             "input_output_covariance": [0.0, 1.5], "output_variance": 3.0}))
    assert isinstance(iso.item("critical_weight_decay"), Formula)
    assert iso.param("a").default == pytest.approx(2.0)
    assert iso.param("m").default == pytest.approx(1.5)


def test_per_layer_decay_reduces_to_the_geometric_mean():
    fs = derive(_spec(weight_decay=[0.1, 0.2, 0.4]))
    assert fs.param("weight_decay").default == pytest.approx(0.2)
    assert any("geometric mean" in n for n in fs.notes)


def test_eigen_directions_merge_and_drop():
    pairs = eigen_directions([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]],
                             [0.6, 0.8, 0.0])
    assert pairs == [(pytest.approx(2.0), pytest.approx(1.0))]


@pytest.mark.parametrize("decays", [[0.1, 0.2, 0.3], [0.3, 0.05, 0.2]])
def test_origin_hessian_with_per_layer_decays_is_that_of_the_model_weights(decays):
    """D >= 2: the Hessian at 0 is diag(2 gamma_i), so its smallest eigenvalue is 2 min gamma_i
    (not 2 x the geometric mean that the reduction uses)."""
    fs = derive(_spec(weight_decay=decays))
    expr = fs.item("origin_hessian_min_eigenvalue").expr
    gamma_bar = fs.param("weight_decay").default
    assert float(expr.subs(GAMMA, gamma_bar)) == pytest.approx(2 * min(decays), rel=1e-12)


def test_origin_hessian_depth_one_with_unequal_decays():
    """Notes section 4: (gamma_u + gamma_w) - sqrt((gamma_u - gamma_w)^2 + 4 m^2)."""
    fs = derive(_spec(depth=1, widths=[4], weight_decay=[0.1, 0.4]))
    expr = fs.item("origin_hessian_min_eigenvalue").expr
    m = np.hypot(0.8, 0.3)
    values = {GAMMA: fs.param("weight_decay").default}
    values.update({p.symbol: p.default for p in fs.params if p.name.startswith("c_")})
    expected = 0.5 - np.sqrt(0.3**2 + 4 * m**2)
    assert float(expr.subs(values)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("widths", [[2], [2, 3], [1, 2, 1]])
def test_loss_terms_are_homogeneous_of_their_degree(widths):
    from netderive.derivations.weight_decay import loss_by_degree

    weights = weight_symbols(2, widths)
    unknowns = [s for w in weights for s in w]
    terms = loss_by_degree(weights, _symmetric(2), sp.Matrix([sp.Symbol("e0"), sp.Symbol("e1")]),
                           EY2, SIGMA2, [GAMMA] * (len(widths) + 1))
    for degree, term in terms.items():
        poly = sp.Poly(sp.expand(term), *unknowns)
        assert {sum(mon) for mon in poly.monoms()} == {degree}
