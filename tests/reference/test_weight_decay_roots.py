"""b* and the barrier b_s of isotropic weight-decay models in the hard places, against an
independent computation: every positive root of the stationarity polynomial
P(b) = k b^(2D) - m b^(D-1) + gamma, located by numpy and polished at 40 digits (mpmath's
``polyroots`` where two roots nearly merge), and the choice among 0 and those roots by the
reduced loss L(b) - L(0) = -m^2 b^(2D) / (k b^(2D) + gamma) + gamma D b^2 (ziyin2022,
sections 3-4), with gamma_c found by bisection on that loss gap.

Hard places: gamma next to gamma_c (where b* jumps to 0), gamma within 1e-7 (relative) of
the spinodal gamma_sp (where the two positive roots merge), and depths up to 20.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from netderive.derivations import parse_model
from netderive.runtime.session import build

mpmath.mp.dps = 40
#: numpy's roots with |imaginary part| below this count as real (then polished), and real
#: roots closer than NEAR_DOUBLE are left to mpmath's polyroots.
NEAR_REAL, NEAR_DOUBLE = 1e-6, 1e-3
#: depth, noise variance, |E[xy]| (m), eigenvalue a: k = s^2 a with s^2 = (1 + sigma^2/4)^D
#: (D = 3, 5, 13 in the slow run)
CASES = [(2, 0.0, 1.0, 1.0), pytest.param((3, 0.5, 1.3, 0.7), marks=pytest.mark.slow),
         pytest.param((5, 0.2, 0.8, 2.0), marks=pytest.mark.slow), (8, 0.1, 1.0, 1.0),
         pytest.param((13, 0.05, 1.1, 0.9), marks=pytest.mark.slow), (20, 0.0, 1.0, 1.0)]
WIDTH = 4
#: bisection steps for gamma_c: 2^-50 of the spinodal gamma, far below the 1e-7 of the test
CRITICAL_BISECTIONS = 50
#: b* agrees to this (relative): the kernels stop Newton at 1e-14; where two roots merge
#: (gamma within 1e-7 of gamma_sp) a root moves by sqrt(rounding of P) ~ 1e-8.
RTOL = 1e-12
MERGING_RTOL = 1e-6


def positive_roots(depth: int, k: mpmath.mpf, m: mpmath.mpf, gamma: mpmath.mpf) -> list:
    """The real roots b > 0 of P(b) = k b^(2D) - m b^(D-1) + gamma, increasing: located by
    numpy's companion-matrix roots, polished by Newton at 40 digits; by mpmath's polyroots
    where two of them are close (a near-double root, which double precision cannot split)."""
    coefficients = [mpmath.mpf(0)] * (2 * depth + 1)  # highest degree first
    coefficients[0] = k
    coefficients[2 * depth - (depth - 1)] = -m
    coefficients[-1] += gamma
    located = np.roots([float(c) for c in coefficients])
    near_real = np.sort(located[(np.abs(located.imag) < NEAR_REAL) & (located.real > 0)].real)
    if near_real.size > 1 and np.min(np.diff(near_real)) < NEAR_DOUBLE:
        roots = mpmath.polyroots(coefficients, maxsteps=400, extraprec=400)
        return sorted(mpmath.re(r) for r in roots
                      if abs(mpmath.im(r)) < mpmath.mpf(10) ** -25 and mpmath.re(r) > 0)

    def polynomial(b):
        return mpmath.polyval(coefficients, b)

    return sorted(mpmath.findroot(polynomial, mpmath.mpf(r)) for r in near_real
                  if abs(float(polynomial(mpmath.mpf(r)))) < NEAR_REAL)


def loss_gap(depth: int, k, m, gamma, b):
    """L(b) - L(0)."""
    b2d = b ** (2 * depth)
    return -m**2 * b2d / (k * b2d + gamma) + gamma * depth * b**2


def expected_b_star(depth: int, k, m, gamma) -> mpmath.mpf:
    best, best_gap = mpmath.mpf(0), mpmath.mpf(0)
    for r in positive_roots(depth, k, m, gamma):
        gap = loss_gap(depth, k, m, gamma, r)
        if gap < best_gap:
            best, best_gap = r, gap
    return best


def spinodal_gamma(depth: int, k, m) -> mpmath.mpf:
    """gamma at which P(b_sp) = 0, P'(b_sp) = 0: the two positive roots merge."""
    b_sp = ((depth - 1) * m / (2 * depth * k)) ** (mpmath.mpf(1) / (depth + 1))
    return m * b_sp ** (depth - 1) - k * b_sp ** (2 * depth)


def critical_gamma(depth: int, k, m) -> mpmath.mpf:
    """gamma_c: the largest gamma with a root below the loss of b = 0 (bisection)."""
    lo, hi = mpmath.mpf(0) + mpmath.mpf(10) ** -6, spinodal_gamma(depth, k, m)
    for _ in range(CRITICAL_BISECTIONS):
        mid = (lo + hi) / 2
        if expected_b_star(depth, k, m, mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"D{c[0]}" if isinstance(c, tuple)
                else str(c))
def case(request, kernel_cache_dir):
    depth, noise, m, a = request.param
    raw = {"family": "weight_decay", "depth": depth, "widths": [WIDTH] * depth,
           "noise_variance": noise, "weight_decay": 0.1,
           "data": {"input_covariance": [[a]], "input_output_covariance": [m],
                    "output_variance": 10.0}}
    model = build(parse_model(raw, f"roots_D{depth}.toml"))
    k = (1 + mpmath.mpf(noise) / WIDTH) ** depth * mpmath.mpf(a)
    return depth, model, k, mpmath.mpf(m)


def kernel_values(model, name: str, gammas: list) -> np.ndarray:
    """The grid kernel (serial and parallel agree) at the gammas, other arguments default."""
    kernels = model.kernels()
    args = kernels.KERNEL_ARGUMENTS[name]
    defaults = {n: p["default"] for n, p in model.params.items()}
    columns = [np.array([float(g) for g in gammas]) if a == "weight_decay"
               else np.full(len(gammas), float(defaults[a])) for a in args]
    parallel = getattr(kernels, name + "_grid")(*columns)
    serial = getattr(kernels, name + "_grid_serial")(*columns)
    np.testing.assert_array_equal(parallel, serial)
    scalar = [getattr(kernels, name)(*(c[i] for c in columns)) for i in range(len(gammas))]
    np.testing.assert_array_equal(parallel, scalar)
    return parallel


def test_b_star_at_random_gammas(case) -> None:
    depth, model, k, m = case
    rng = np.random.default_rng(depth)
    gammas = sorted(mpmath.mpf(g) for g in rng.uniform(1e-3, 1.2, 40)
                    * float(spinodal_gamma(depth, k, m)))
    got = kernel_values(model, "b_star", gammas)
    want = [float(expected_b_star(depth, k, m, g)) for g in gammas]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)
    assert any(w > 0 for w in want) and any(w == 0 for w in want)


def test_b_star_next_to_the_critical_gamma(case) -> None:
    depth, model, k, m = case
    gamma_c = critical_gamma(depth, k, m)
    gammas = [gamma_c * (1 - mpmath.mpf(10) ** -7), gamma_c * (1 + mpmath.mpf(10) ** -7)]
    below, above = kernel_values(model, "b_star", gammas)
    assert below == pytest.approx(float(expected_b_star(depth, k, m, gammas[0])), rel=RTOL)
    assert below > 0 and above == 0.0


def test_barrier_next_to_the_spinodal(case) -> None:
    """Within 1e-7 of gamma_sp the barrier b_s (the smaller root) is still found; past it
    there is none (NaN)."""
    depth, model, k, m = case
    if depth == 1:
        pytest.skip("D = 1 has no barrier")
    gamma_sp = spinodal_gamma(depth, k, m)
    gammas = [gamma_sp * (1 - mpmath.mpf(10) ** -7), gamma_sp * (1 - mpmath.mpf(10) ** -4),
              gamma_sp * (1 + mpmath.mpf(10) ** -7)]
    got = kernel_values(model, "barrier_b", gammas)
    roots = [positive_roots(depth, k, m, g) for g in gammas]
    assert len(roots[0]) == 2 and len(roots[2]) == 0
    assert got[0] == pytest.approx(float(roots[0][0]), rel=MERGING_RTOL)
    assert got[1] == pytest.approx(float(roots[1][0]), rel=RTOL * 1e3)
    assert math.isnan(got[2])
