"""The reference's exact multi-layer rate function of the (q, Q, Q_hat) chain (notes lisaad2020.md,
sections 2, 3, 4.1, 4.2) for a bounded activation: tanh, sigma_w^2 = 1.5, dilution p = 0.1 (the
bundled model ``models/ld_tanh_dilution.toml``; rho = sqrt(1 - p), variance ratio 1 - p, as
``runtime.families.large_deviation.report.reference_model`` passes them to the reference).

- One step: the 3-D Cramer rate ``J3(m | m')`` (:func:`generic_cramer_rate_3d`) is 0 at the typical
  next state, non-negative, infinite outside the PSD cone, and equal to brute-force suprema of
  ``theta . m - Lambda(theta)`` (refined grids, weak duality, Legendre duality at a point).
  ``Lambda`` itself against adaptive 2-D quadrature.
- L = 1: the exact rate is the 1-D Cramer rate of q_1 (:func:`generic_cramer_tilt`), and the
  explicit minimum of ``J3`` over the free norms ``(Q_1, Q_hat_1)`` lands on ``theta_2 = theta_3 =
  0``.
- L = 2: against the importance-sampling measurements of the true chain; the optimal path
  satisfies the forward/backward saddle equations of notes 4.2 and is a local minimum of the path
  cost computed by independent code.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize

from netderive.runtime.families.large_deviation import reference_sampling as tails

#: the whole file is in the slow run (~20 s): the default run compares the kernel with
#: generic_exact_rate in test_large_deviation_sampling.py
pytestmark = pytest.mark.slow

P_DIL = 0.1
RHO = math.sqrt(1.0 - P_DIL)  # dilution p = 0.1 (notes section 2)
RATIO = 1.0 - P_DIL  # sigma_hat^2 / sigma^2 under dilution without rescale
SIGMA2 = 1.5
PHI = np.tanh
ARGS = (PHI, RHO, RATIO, SIGMA2)
M0 = np.array([1.0, 1.0, 1.0])
MODEL = Path(__file__).resolve().parents[2] / "models" / "ld_tanh_dilution.toml"

#: Importance sampling of the true (q, Q, Q_hat) chain for the same observable
#: s_2 = q_2 / sqrt(Q_2^typ Q_hat_2^typ) (tests/reference/test_large_deviation_sampling.py::
#: test_tanh_rate_function_two_layers, Richardson-extrapolated from N = 100, 200; 40000 samples):
#: I_2(s) = value +- standard error. The frozen-norm approximation gives 0.0288 and 0.0053 there.
SAMPLED_I2 = {0.6: (0.0419, 0.0012), 0.76: (0.0085, 0.0007)}


def typical_overlap(depth: int) -> float:
    """Typical ``s_L`` (the mean-field ``q_L / sqrt(Q_L Q_hat_L)``)."""
    typ = tails.generic_mean_field(*ARGS, depth)[-1]
    return float(typ[0] / math.sqrt(typ[1] * typ[2]))


def log_mgf_grid(stats: np.ndarray, log_w: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """``Lambda`` at many tilts at once (rows of ``thetas``), by log-sum-exp."""
    expo = thetas @ stats + log_w
    top = expo.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(expo - top).sum(axis=1))


def grid_supremum(m: np.ndarray, state: np.ndarray, centre: np.ndarray, width: float,
                  rounds: int = 11, points: int = 7) -> tuple[float, np.ndarray]:
    """``sup_theta [theta . m - Lambda(theta; state)]`` by a grid refined around its best point
    (no gradient, no optimiser): a ``points^3`` grid of half-width ``width``, then half-width / 2.5
    around the best node, ``rounds`` times."""
    stats, log_w = tails._pair_statistics(PHI, state, RHO, RATIO, SIGMA2, 48)
    axis = np.linspace(-1.0, 1.0, points)
    offsets = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    best_theta, best = centre, -math.inf
    for _ in range(rounds):
        thetas = best_theta + width * offsets
        values = thetas @ m - log_mgf_grid(stats, log_w, thetas)
        i = int(np.argmax(values))
        best_theta, best = thetas[i], float(values[i])
        width /= 2.5
    return best, best_theta


@pytest.fixture(scope="module")
def two_layer_paths() -> dict[float, tails.ExactRatePath]:
    return {s: tails.generic_exact_path(*ARGS, 2, s) for s in SAMPLED_I2}


def test_parameters_are_the_bundled_model() -> None:
    spec = tomllib.loads(MODEL.read_text())
    assert spec["activation"] == "tanh(x)" and spec["perturbation"] == "dilution"
    assert spec["p"] == P_DIL and spec["weight_variance"] == SIGMA2
    assert spec["input_overlap"] == 1.0


# ----------------------------------------------------------------------------------------------
# (a) one-step 3-D Cramer rate


def test_log_mgf_3d_against_adaptive_quadrature() -> None:
    """``Lambda(theta; m')`` with all three tilts non-zero, Gauss-Hermite (48) against dblquad."""
    state = np.array([0.3, 0.4, 0.38])
    theta = np.array([-1.2, 0.7, -0.4])
    c = RHO * state[0] / math.sqrt(state[1] * state[2])
    sh, shh = math.sqrt(SIGMA2 * state[1]), math.sqrt(SIGMA2 * RATIO * state[2])

    def integrand(z2: float, z1: float) -> float:
        a = math.tanh(sh * z1)
        b = math.tanh(shh * (c * z1 + math.sqrt(1 - c * c) * z2))
        return math.exp(theta @ (a * b, a * a, b * b) - (z1 * z1 + z2 * z2) / 2) / (2 * math.pi)

    exact = scipy.integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-12)[0]
    value = tails.generic_log_mgf_3d(PHI, theta, state, RHO, RATIO, SIGMA2)
    assert value == pytest.approx(math.log(exact), abs=1e-8)


def test_one_step_rate_vanishes_at_typical_next_state() -> None:
    """``J3(typical next state | m') = 0`` with ``theta* = 0``, from ``m_0`` and from the typical
    layer-1 state (mean field at the same quadrature order)."""
    typ = tails.generic_mean_field(*ARGS, 2, order=48)
    for prev, nxt in ((M0, typ[0]), (typ[0], typ[1])):
        rate, theta = tails.generic_cramer_rate_3d(PHI, nxt, prev, RHO, RATIO, SIGMA2)
        assert rate == pytest.approx(0.0, abs=1e-14)
        assert np.max(np.abs(theta)) < 1e-7


def test_one_step_rate_against_brute_force() -> None:
    """``J3 >= 0``; ``J3`` equals a refined-grid supremum of ``theta . m - Lambda`` and bounds every
    ``theta . m - Lambda(theta)`` (weak duality) at random tilts; infinite outside the PSD cone."""
    rng = np.random.default_rng(7)
    typ = tails.generic_mean_field(*ARGS, 1, order=48)[0]
    prevs = [M0, np.array([0.35, 0.45, 0.42])]
    targets = [typ + [-0.08, 0.0, 0.0], typ + [0.03, 0.02, 0.04], np.array([0.2, 0.3, 0.28])]
    for prev in prevs:
        stats, log_w = tails._pair_statistics(PHI, prev, RHO, RATIO, SIGMA2, 48)
        for m in targets:
            rate, theta = tails.generic_cramer_rate_3d(PHI, m, prev, RHO, RATIO, SIGMA2)
            assert 0.0 < rate < math.inf
            grid, _ = grid_supremum(m, prev, np.zeros(3), width=2.0 * (1.0 + np.abs(theta).max()))
            assert grid <= rate + 1e-12
            assert grid == pytest.approx(rate, abs=1e-8)
            randoms = theta + rng.normal(scale=1.0, size=(200, 3))
            assert np.all(randoms @ m - log_mgf_grid(stats, log_w, randoms) <= rate + 1e-12)
    # outside the hull (T is a rank-1 PSD matrix with tanh^2 < 1)
    for m in ([0.5, 0.2, 0.2], [0.1, 1.2, 0.5], [0.1, -0.1, 0.5]):
        assert tails.generic_cramer_rate_3d(PHI, m, M0, RHO, RATIO, SIGMA2)[0] == math.inf


def test_one_step_rate_legendre_duality() -> None:
    """At ``m = grad Lambda(theta0)`` (central differences of :func:`generic_log_mgf_3d`) the
    supremum is attained at ``theta0``: ``J3(m) = theta0 . m - Lambda(theta0)``."""
    prev = np.array([0.35, 0.45, 0.42])
    theta0 = np.array([-2.0, 1.5, 0.8])
    h = 1e-5
    grad = np.empty(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        grad[i] = (tails.generic_log_mgf_3d(PHI, theta0 + e, prev, RHO, RATIO, SIGMA2)
                   - tails.generic_log_mgf_3d(PHI, theta0 - e, prev, RHO, RATIO, SIGMA2)) / (2 * h)
    lam = tails.generic_log_mgf_3d(PHI, theta0, prev, RHO, RATIO, SIGMA2)
    rate, theta = tails.generic_cramer_rate_3d(PHI, grad, prev, RHO, RATIO, SIGMA2)
    assert rate == pytest.approx(theta0 @ grad - lam, abs=1e-9)
    np.testing.assert_allclose(theta, theta0, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# (b) L = 1: the 1-D Cramer rate of q_1


@pytest.mark.parametrize("s", [0.6, 0.76, 0.98])
def test_one_layer_is_the_cramer_rate_of_q1(s: float) -> None:
    typ = tails.generic_mean_field(*ARGS, 1)[0]
    goal = s * math.sqrt(typ[1] * typ[2])
    expected, tilt = tails.generic_cramer_tilt(PHI, goal, M0, RHO, RATIO, SIGMA2, order=64)
    path = tails.generic_exact_path(*ARGS, 1, s, order=64)
    assert path.rate == pytest.approx(expected, abs=1e-8)
    assert path.tilts[0] == pytest.approx([tilt, 0.0, 0.0], abs=1e-6)
    assert tails.generic_exact_rate(*ARGS, 1, s, order=64) == path.rate


def test_one_layer_minimum_over_free_norms() -> None:
    """Minimising ``J3((goal, Q_1, Q_hat_1) | m_0)`` over the norms explicitly (BFGS with the
    envelope gradient ``theta*_(2,3)``) gives the 1-D rate, at ``theta_2 = theta_3 = 0``."""
    s = 0.6
    typ = tails.generic_mean_field(*ARGS, 1)[0]
    goal = s * math.sqrt(typ[1] * typ[2])

    def rate(norms: np.ndarray) -> tuple[float, np.ndarray]:
        j, theta = tails.generic_cramer_rate_3d(PHI, [goal, *norms], M0, RHO, RATIO, SIGMA2)
        return j, theta[1:]

    res = scipy.optimize.minimize(rate, typ[1:], jac=True, method="BFGS", options={"gtol": 1e-9})
    j, theta = tails.generic_cramer_rate_3d(PHI, [goal, *res.x], M0, RHO, RATIO, SIGMA2)
    expected = tails.generic_cramer_tilt(PHI, goal, M0, RHO, RATIO, SIGMA2, order=48)[0]
    assert j == pytest.approx(expected, abs=1e-9)
    assert np.max(np.abs(theta[1:])) < 1e-6
    path = tails.generic_exact_path(*ARGS, 1, s)
    np.testing.assert_allclose(path.states[0], [goal, *res.x], atol=1e-7)


# ----------------------------------------------------------------------------------------------
# (c) L = 2 against importance sampling of the true chain


@pytest.mark.parametrize("s", sorted(SAMPLED_I2))
def test_two_layers_against_sampled_rate(two_layer_paths, s: float) -> None:
    value, se = SAMPLED_I2[s]
    path = two_layer_paths[s]
    assert path.converged
    assert abs(path.rate - value) <= 3 * se, (path.rate, value, se)


def test_two_layer_path_saddle_equations(two_layer_paths) -> None:
    """The optimal path satisfies notes 4.2: forward ``m_l = grad_theta Lambda(theta_l;
    m_(l-1))`` and backward ``theta_1 = grad_(m') Lambda(theta_2; m')|_(m_1)`` (both by central
    differences of :func:`generic_log_mgf_3d`); the last tilt is ``(theta, 0, 0)``; the steps sum
    to the rate."""
    h = 1e-5

    def grad(f, x: np.ndarray) -> np.ndarray:
        out = np.empty(3)
        for i in range(3):
            e = np.zeros(3)
            e[i] = h
            out[i] = (f(x + e) - f(x - e)) / (2 * h)
        return out

    for path in two_layer_paths.values():
        m1, m2 = path.states
        t1, t2 = path.tilts
        assert t2[1] == 0.0 and t2[2] == 0.0
        assert path.steps.sum() == pytest.approx(path.rate, rel=1e-12)
        fwd1 = grad(lambda t: tails.generic_log_mgf_3d(PHI, t, M0, RHO, RATIO, SIGMA2), t1)
        fwd2 = grad(lambda t, m1=m1: tails.generic_log_mgf_3d(PHI, t, m1, RHO, RATIO, SIGMA2), t2)
        np.testing.assert_allclose(fwd1, m1, atol=1e-8)
        np.testing.assert_allclose(fwd2, m2, atol=1e-8)
        assert m2[0] == pytest.approx(path.goal, abs=1e-12)
        back = grad(lambda m, t2=t2: tails.generic_log_mgf_3d(PHI, t2, m, RHO, RATIO, SIGMA2), m1)
        np.testing.assert_allclose(t1, back, atol=1e-6)


def test_two_layer_path_is_a_local_minimum(two_layer_paths) -> None:
    """Path cost by independent pieces (:func:`generic_cramer_rate_3d` for step 1, the 1-D
    :func:`generic_cramer_tilt` for the last step, whose norms are free): equal to the rate at the
    optimum and larger at random perturbations of the intermediate state ``m_1``."""
    rng = np.random.default_rng(3)
    for path in two_layer_paths.values():

        def cost(m1: np.ndarray, path=path) -> float:
            first = tails.generic_cramer_rate_3d(PHI, m1, M0, RHO, RATIO, SIGMA2)[0]
            last = tails.generic_cramer_tilt(PHI, path.goal, m1, RHO, RATIO, SIGMA2, order=48)[0]
            return first + last

        best = path.states[0]
        assert cost(best) == pytest.approx(path.rate, abs=1e-9)
        for _ in range(6):
            step = rng.normal(size=3)
            assert cost(best + 3e-3 * step / np.linalg.norm(step)) > path.rate


# ----------------------------------------------------------------------------------------------
# (d) sanity


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_rate_vanishes_at_the_typical_overlap(depth: int) -> None:
    path = tails.generic_exact_path(*ARGS, depth, typical_overlap(depth))
    assert path.converged
    assert path.rate == pytest.approx(0.0, abs=1e-10)
    np.testing.assert_allclose(path.states, path.typical, atol=1e-5)  # order 48 against 120


def test_two_layer_rate_positive_and_ordered(two_layer_paths) -> None:
    """``I_2 > 0`` away from the typical ``s_2 = 0.879``, larger further from it; below the
    cost of the start path (typical path shifted toward the target, a feasible path)."""
    low, mid = two_layer_paths[0.6].rate, two_layer_paths[0.76].rate
    assert low > mid > 0.0
    for s, path in two_layer_paths.items():
        start = path.typical[0] + [(path.goal - path.typical[1, 0]) / 2, 0.0, 0.0]
        first = tails.generic_cramer_rate_3d(PHI, start, M0, RHO, RATIO, SIGMA2)[0]
        last = tails.generic_cramer_tilt(PHI, path.goal, start, RHO, RATIO, SIGMA2, order=48)[0]
        assert path.rate < first + last, s
    above = tails.generic_exact_rate(*ARGS, 2, 0.95)
    assert above > 0.0


# ----------------------------------------------------------------------------------------------
# slow: quadrature order, other starts, a gradient-free minimisation


@pytest.mark.slow
@pytest.mark.parametrize(("depth", "s"), [(2, 0.6), (2, 0.76), (3, 0.6), (3, 0.76)])
def test_exact_rate_converged_in_order_and_start(depth: int, s: float) -> None:
    """Order 48 against 96 (both Gauss-Hermite) to 1e-5; from the unshifted mean-field path and
    from a path shifted twice as far, the same minimum to 1e-9."""
    path = tails.generic_exact_path(*ARGS, depth, s)
    fine = tails.generic_exact_rate(*ARGS, depth, s, order=96)
    assert fine == pytest.approx(path.rate, abs=1e-5)
    for start in (path.typical[:-1], path.typical[:-1] + 2 * (path.states[:-1]
                                                               - path.typical[:-1])):
        other = tails.generic_exact_path(*ARGS, depth, s, start=start)
        assert other.converged
        assert other.rate == pytest.approx(path.rate, abs=1e-9)


@pytest.mark.slow
def test_two_layers_gradient_free_contraction(two_layer_paths) -> None:
    """``I_2`` by Nelder-Mead over ``m_1`` (from a perturbed start) with the last step's norms
    minimised explicitly (Nelder-Mead over ``(Q_2, Q_hat_2)`` of ``J3``): no envelope gradient and
    no closed-form marginal."""
    path = two_layer_paths[0.6]

    def last_step(m1: np.ndarray) -> float:
        res = scipy.optimize.minimize(
            lambda y: tails.generic_cramer_rate_3d(PHI, [path.goal, *y], m1, RHO, RATIO,
                                                   SIGMA2)[0],
            path.states[1, 1:], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-13})
        return float(res.fun)

    def cost(m1: np.ndarray) -> float:
        return tails.generic_cramer_rate_3d(PHI, m1, M0, RHO, RATIO, SIGMA2)[0] + last_step(m1)

    res = scipy.optimize.minimize(cost, path.states[0] + [0.004, -0.003, 0.003],
                                  method="Nelder-Mead",
                                  options={"xatol": 1e-7, "fatol": 1e-12, "maxiter": 600})
    assert res.fun == pytest.approx(path.rate, abs=1e-8)
    assert res.fun >= path.rate - 1e-10
