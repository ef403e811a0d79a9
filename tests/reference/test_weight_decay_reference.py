"""Tests of the independent numpy reference for Ziyin, Li & Meng (2022) (notes: ziyin2022.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netderive.runtime.families.weight_decay.reference import (
    DataMoments,
    balanced_minimiser,
    end_to_end_predictor,
    enumerate_dropout_loss,
    exact_loss,
    exact_loss_and_gradient,
    flatten_weights,
    monte_carlo_loss,
    multistart_minimum,
    noise_factor,
    per_layer_decay,
    sample_end_to_end_maps,
    unflatten_weights,
)

GAMMA_C_D2_ISO = (1.0 / 16.0) ** (1.0 / 3.0)  # (m^4 / (16 s^2 a))^(1/3) with m = a = s^2 = 1
ISOTROPIC_2D = DataMoments(np.eye(2), np.array([1.0, 0.0]), 2.0)
ANISOTROPIC = DataMoments(np.diag([1.0, 0.25]), np.array([0.8, 0.3]), 1.0)


def random_data(rng: np.random.Generator, dim: int, n: int = 60) -> DataMoments:
    """Moments of a random linear-regression sample (consistent: A0 PSD, E[y^2] >= fit)."""
    x = rng.standard_normal((n, dim))
    y = x @ rng.standard_normal(dim) + 0.3 * rng.standard_normal(n)
    return DataMoments(x.T @ x / n, x.T @ y / n, float(y @ y / n))


def random_weights(rng: np.random.Generator, dim: int, widths: list[int]) -> list[np.ndarray]:
    fan_ins = [dim, *widths]
    ws = [
        rng.standard_normal((widths[i], fan_ins[i])) / math.sqrt(fan_ins[i])
        for i in range(len(widths))
    ]
    return [*ws, rng.standard_normal(fan_ins[-1]) / math.sqrt(fan_ins[-1])]


# ----------------------------------------------------------------------------------------------
# exact loss, enumeration, Monte Carlo, gradient


@pytest.mark.parametrize("widths", [[4, 3], [5], [2, 3, 2]])
@pytest.mark.parametrize("decay", [0.1, [0.05, 0.2, 0.3, 0.1]])
def test_exact_loss_equals_mask_enumeration(widths: list[int], decay) -> None:
    rng = np.random.default_rng(11)
    data = random_data(rng, 3)
    weights = random_weights(rng, 3, widths)
    q = 0.6
    decay = decay if np.isscalar(decay) else decay[: len(widths) + 1]
    exact = exact_loss(weights, data, (1 - q) / q, decay)
    enumerated = enumerate_dropout_loss(weights, data, q, decay)
    assert exact == pytest.approx(enumerated, abs=1e-10, rel=0)


def test_no_noise_enumeration_and_linear_regressor() -> None:
    rng = np.random.default_rng(12)
    data = random_data(rng, 3)
    weights = random_weights(rng, 3, [4, 3])
    assert exact_loss(weights, data, 0.0, 0.2) == pytest.approx(
        enumerate_dropout_loss(weights, data, 1.0, 0.2), abs=1e-12
    )
    # depth 0: L = E y^2 - 2 u.Exy + u A0 u + gamma |u|^2
    u = rng.standard_normal(3)
    a0, exy, ey2 = data.input_covariance, data.input_output_covariance, data.output_variance
    assert exact_loss([u], data, 0.7, 0.3) == pytest.approx(
        ey2 - 2 * u @ exy + u @ a0 @ u + 0.3 * u @ u, abs=1e-12
    )


@pytest.mark.parametrize("noise_variance", [0.0, 2.0 / 3.0])
@pytest.mark.parametrize("widths", [[4, 3], [3], [2, 3, 2]])
def test_gradient_matches_central_differences(noise_variance: float, widths: list[int]) -> None:
    rng = np.random.default_rng(13)
    data = random_data(rng, 3)
    weights = random_weights(rng, 3, widths)
    decay = list(rng.uniform(0.05, 0.5, size=len(widths) + 1))
    flat, shapes = flatten_weights(weights)
    loss, grad = exact_loss_and_gradient(flat, shapes, data, noise_variance, decay)
    assert loss == pytest.approx(exact_loss(weights, data, noise_variance, decay), abs=1e-12)
    h = 1e-5
    fd = np.empty_like(flat)
    for k in range(flat.size):
        step = np.zeros_like(flat)
        step[k] = h
        plus = exact_loss_and_gradient(flat + step, shapes, data, noise_variance, decay)[0]
        minus = exact_loss_and_gradient(flat - step, shapes, data, noise_variance, decay)[0]
        fd[k] = (plus - minus) / (2 * h)
    assert np.linalg.norm(fd - grad) <= 1e-6 * np.linalg.norm(grad)


def test_flatten_roundtrip() -> None:
    rng = np.random.default_rng(14)
    weights = random_weights(rng, 3, [4, 2])
    flat, shapes = flatten_weights(weights)
    assert shapes == ((4, 3), (2, 4), (2,))
    for a, b in zip(unflatten_weights(flat, shapes), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        unflatten_weights(flat[:-1], shapes)


def test_monte_carlo_agrees_with_exact_loss() -> None:
    rng = np.random.default_rng(15)
    data = random_data(rng, 3)
    weights = random_weights(rng, 3, [4, 3])
    q = 0.6
    noise_variance = (1 - q) / q
    exact = exact_loss(weights, data, noise_variance, 0.1)
    mean, stderr = monte_carlo_loss(
        weights, data, noise_variance, 0.1, draws=20000, rng=np.random.default_rng(16), batch=7000
    )
    assert stderr > 0
    assert abs(mean - exact) < 3 * stderr


def test_monte_carlo_without_noise_is_exact() -> None:
    rng = np.random.default_rng(17)
    data = random_data(rng, 3)
    weights = random_weights(rng, 3, [4, 3])
    mean, stderr = monte_carlo_loss(weights, data, 0.0, 0.2, draws=10, rng=rng)
    assert stderr < 1e-12  # every draw is the same net
    assert mean == pytest.approx(exact_loss(weights, data, 0.0, 0.2), abs=1e-12)


# ----------------------------------------------------------------------------------------------
# per-layer decay (section 1)


def test_per_layer_decay_broadcast_and_validation() -> None:
    np.testing.assert_array_equal(per_layer_decay(0.3, 2), [0.3, 0.3, 0.3])
    np.testing.assert_array_equal(per_layer_decay([0.1, 0.2], 1), [0.1, 0.2])
    with pytest.raises(ValueError):
        per_layer_decay([0.1, 0.2], 2)
    with pytest.raises(ValueError):
        per_layer_decay(-0.1, 2)


def test_unequal_decays_reduce_to_geometric_mean() -> None:
    """gamma_i ||W_i||^2 with W'_i = sqrt(gamma_i / g) W_i, g = (prod gamma_i)^(1/(D+1))."""
    rng = np.random.default_rng(18)
    data = random_data(rng, 2)
    widths = [3, 2]
    decays = np.array([0.05, 0.3, 0.12])
    geo = float(np.prod(decays) ** (1 / len(decays)))
    noise_variance = 0.5

    # exact reparametrisation at an arbitrary point
    weights = random_weights(rng, 2, widths)
    rescaled = [math.sqrt(g / geo) * w for g, w in zip(decays, weights, strict=True)]
    assert exact_loss(weights, data, noise_variance, decays) == pytest.approx(
        exact_loss(rescaled, data, noise_variance, geo), abs=1e-12
    )

    # same global minimum
    unequal = multistart_minimum(
        widths, data, noise_variance, decays, starts=16, rng=np.random.default_rng(19)
    )
    equal = multistart_minimum(
        widths, data, noise_variance, geo, starts=16, rng=np.random.default_rng(20)
    )
    assert unequal.loss < data.output_variance - 1e-3  # a nontrivial (nonzero) minimum
    assert unequal.loss == pytest.approx(equal.loss, abs=1e-9)
    np.testing.assert_allclose(unequal.predictor, equal.predictor, atol=1e-6)
    # balance law gamma_i ||W_i||^2 equal across layers (rank-1 minimum)
    np.testing.assert_allclose(
        decays * unequal.layer_norms**2, geo * equal.layer_norms**2, rtol=1e-6
    )


# ----------------------------------------------------------------------------------------------
# closed form (section 3)


def test_balanced_ansatz_matches_reduced_loss() -> None:
    """L(theta(b)) = E y^2 - b^(2D) c^T (b^(2D) s^2 A0 + gamma)^(-1) c + gamma D b^2 for any b."""
    data = ANISOTROPIC
    for widths, noise_variance, gamma in [([4, 4], 1.0, 0.2), ([3], 0.5, 0.1), ([2, 3, 4], 1, 0.1)]:
        depth = len(widths)
        s2 = noise_factor(widths, noise_variance)
        for b in (0.0, 0.3, 0.9, 1.4):
            m = b ** (2 * depth) * s2 * data.input_covariance + gamma * np.eye(2)
            c = data.input_output_covariance
            reduced = (
                data.output_variance
                - b ** (2 * depth) * c @ np.linalg.solve(m, c)
                + gamma * depth * b**2
            )
            weights = balanced_minimiser(b, widths, data, noise_variance, gamma)
            assert exact_loss(weights, data, noise_variance, gamma) == pytest.approx(
                reduced, abs=1e-12
            )
    zeros = balanced_minimiser(0.0, [4, 4], data, 1.0, 0.2)
    assert all(not np.any(w) for w in zeros)


def test_balanced_minimiser_at_isotropic_roots() -> None:
    """D = 2, A0 = a I: b solves s^2 a b^4 - m b + gamma = 0; larger root = global minimum."""
    a, m, noise_variance, widths = 1.5, 1.2, 0.5, [3, 2]
    direction = np.array([1.0, -2.0, 2.0]) / 3.0
    data = DataMoments(a * np.eye(3), m * direction, 2.0)
    s2 = noise_factor(widths, noise_variance)
    assert s2 == pytest.approx((1 + 0.5 / 3) * (1 + 0.5 / 2))
    gamma_c = (m**4 / (16 * s2 * a)) ** (1 / 3)
    gamma = 0.8 * gamma_c

    roots = np.roots([s2 * a, 0.0, 0.0, -m, gamma])
    positive = np.sort(roots[(abs(roots.imag) < 1e-12) & (roots.real > 0)].real)
    assert positive.size == 2
    saddle_b, min_b = positive

    losses = {}
    for b in (saddle_b, min_b):
        weights = balanced_minimiser(b, widths, data, noise_variance, gamma)
        np.testing.assert_allclose([np.linalg.norm(w) for w in weights], b, rtol=1e-10)
        flat, shapes = flatten_weights(weights)
        loss, grad = exact_loss_and_gradient(flat, shapes, data, noise_variance, gamma)
        assert np.linalg.norm(grad) < 1e-10
        np.testing.assert_allclose(np.linalg.norm(end_to_end_predictor(weights)), b**3, rtol=1e-10)
        losses[b] = loss
    assert losses[min_b] < data.output_variance < losses[saddle_b]

    result = multistart_minimum(
        widths, data, noise_variance, gamma, starts=16, rng=np.random.default_rng(21)
    )
    assert result.losses.min() >= losses[min_b] - 1e-10
    assert result.loss == pytest.approx(losses[min_b], abs=1e-10)
    np.testing.assert_allclose(result.layer_norms, min_b, rtol=1e-6)
    best = balanced_minimiser(min_b, widths, data, noise_variance, gamma)
    np.testing.assert_allclose(result.predictor, end_to_end_predictor(best), atol=1e-7)


# ----------------------------------------------------------------------------------------------
# reference values of section 7


@pytest.mark.parametrize(("factor", "expected"), [(0.98, 1.98485241), (1.02, 2.0)])
def test_isotropic_first_order_transition(factor: float, expected: float) -> None:
    result = multistart_minimum(
        [2, 2],
        ISOTROPIC_2D,
        0.0,
        factor * GAMMA_C_D2_ISO,
        starts=20,
        rng=np.random.default_rng(22),
    )
    assert result.loss == pytest.approx(expected, abs=1e-7)
    if factor < 1:
        # the origin is still a (metastable) local minimum: the zero start stays there
        assert result.losses.max() == pytest.approx(2.0, abs=1e-12)
    else:
        assert np.all(result.layer_norms < 1e-6)


@pytest.mark.parametrize(
    ("widths", "gamma", "expected"), [([4, 4], 0.2, 0.841471), ([4, 4, 4], 0.1, 0.808638)]
)
def test_anisotropic_full_network(widths: list[int], gamma: float, expected: float) -> None:
    result = multistart_minimum(widths, ANISOTROPIC, 1.0, gamma, rng=np.random.default_rng(23))
    assert result.loss == pytest.approx(expected, abs=1e-6)
    # rank-1 balanced structure: all layer norms equal, |U_j| = b / sqrt(d_D)
    b = result.layer_norms[-1]
    np.testing.assert_allclose(result.layer_norms, b, rtol=1e-6)
    np.testing.assert_allclose(np.abs(result.weights[-1]), b / math.sqrt(widths[-1]), rtol=1e-5)
    closed = balanced_minimiser(b, widths, ANISOTROPIC, 1.0, gamma)
    np.testing.assert_allclose(result.predictor, end_to_end_predictor(closed), atol=1e-6)


# (D, sigma^2) -> (b*, L*) at gamma = 0.1 and gamma = 0.2, section 7(b), 5 digits
TABLE_7B = {
    (1, 0.0): ((1.07533, 0.25910), (0.95809, 0.46573)),
    (1, 1.0): ((0.96180, 0.40728), (0.85694, 0.57258)),
    (2, 0.0): ((1.05366, 0.35827), (0.96664, 0.66518)),
    (2, 1.0): ((0.89665, 0.62306), (0.80656, 0.84147)),
    (3, 0.0): ((1.04159, 0.45782), (0.97219, 0.86481)),
    (3, 1.0): ((0.85965, 0.80864), (0.0, 1.0)),
}


@pytest.mark.parametrize(("depth", "noise_variance"), list(TABLE_7B))
def test_table_7b_sweep(depth: int, noise_variance: float) -> None:
    for gamma, (b_star, loss_star) in zip((0.1, 0.2), TABLE_7B[depth, noise_variance], strict=True):
        result = multistart_minimum(
            [4] * depth,
            ANISOTROPIC,
            noise_variance,
            gamma,
            starts=40,
            rng=np.random.default_rng(24),
        )
        assert result.loss == pytest.approx(loss_star, abs=6e-6)
        np.testing.assert_allclose(result.layer_norms, b_star, atol=6e-6)


# b*(gamma) for gamma = 0.05, 0.1, 0.2, 0.3, 0.35, 0.39, 0.45, isotropic m = a = s^2 = 1 (7(a))
GAMMAS_7A = (0.05, 0.1, 0.2, 0.3, 0.35, 0.39, 0.45)
B_STAR_7A = {
    1: (0.97468, 0.94868, 0.89443, 0.83666, 0.80623, 0.78102, 0.74162),
    2: (0.98274, 0.96416, 0.92170, 0.86822, 0.83415, 0.80038, 0.0),
    3: (0.98691, 0.97244, 0.93749, 0.0, 0.0, 0.0, 0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_table_7a_isotropic_sweep(depth: int) -> None:
    """Full-network b*(gamma) (widths 2, A0 = I_2, E[xy] = e_1) against the 7(a) table."""
    for gamma, b_star in zip(GAMMAS_7A, B_STAR_7A[depth], strict=True):
        result = multistart_minimum(
            [2] * depth, ISOTROPIC_2D, 0.0, gamma, starts=40, rng=np.random.default_rng(28)
        )
        np.testing.assert_allclose(result.layer_norms, b_star, atol=6e-6)
        if depth >= 2:  # the origin is always a local minimum for D >= 2: the zero start stays
            assert np.any(np.abs(result.losses - ISOTROPIC_2D.output_variance) < 1e-12)


@pytest.mark.slow
def test_barrier_saddle_d2() -> None:
    """Smaller root of b^4 - b + gamma = 0 is a stationary point (saddle) with the 7(a) b_s."""
    for gamma, b_s in zip((0.1, 0.2, 0.3, 0.39), (0.10010, 0.20165, 0.30913, 0.42159), strict=True):
        roots = np.roots([1.0, 0.0, 0.0, -1.0, gamma])
        b = np.sort(roots[(abs(roots.imag) < 1e-12) & (roots.real > 0)].real)[0]
        assert b == pytest.approx(b_s, abs=6e-6)
        weights = balanced_minimiser(b, [2, 2], ISOTROPIC_2D, 0.0, gamma)
        flat, shapes = flatten_weights(weights)
        loss, grad = exact_loss_and_gradient(flat, shapes, ISOTROPIC_2D, 0.0, gamma)
        assert np.linalg.norm(grad) < 1e-10
        assert loss > ISOTROPIC_2D.output_variance  # barrier above the origin


@pytest.mark.slow
def test_monte_carlo_many_draws_deep() -> None:
    rng = np.random.default_rng(29)
    data = random_data(rng, 4)
    weights = random_weights(rng, 4, [5, 4, 3])
    exact = exact_loss(weights, data, 0.5, [0.1, 0.2, 0.3, 0.4])
    mean, stderr = monte_carlo_loss(
        weights, data, 0.5, [0.1, 0.2, 0.3, 0.4], draws=4_000_000, rng=np.random.default_rng(30)
    )
    assert abs(mean - exact) < 3 * stderr


# ----------------------------------------------------------------------------------------------
# prediction variance (section 5)


def test_prediction_variance_at_minimum() -> None:
    widths, noise_variance, gamma = [4, 4], 1.0, 0.2
    result = multistart_minimum(
        widths, ANISOTROPIC, noise_variance, gamma, starts=12, rng=np.random.default_rng(25)
    )
    s2 = noise_factor(widths, noise_variance)
    x = np.array([0.7, -1.2])
    predicted = (s2 - 1) * (result.predictor @ x) ** 2

    # exact: E_eps f(x)^2 is the noise-averaged loss for data (x x^T, 0, 0) without decay
    point = DataMoments(np.outer(x, x), np.zeros(2), 0.0)
    exact_var = exact_loss(result.weights, point, noise_variance, 0.0) - (result.predictor @ x) ** 2
    assert exact_var == pytest.approx(predicted, rel=1e-8)

    # Monte Carlo over dropout masks
    f = (
        sample_end_to_end_maps(result.weights, noise_variance, 400_000, np.random.default_rng(26))
        @ x
    )
    n = f.size
    centred = f - f.mean()
    var = centred @ centred / (n - 1)
    m4 = np.mean(centred**4)
    stderr = math.sqrt(max(m4 - var**2 * (n - 3) / (n - 1), 0.0) / n)
    assert abs(f.mean() - result.predictor @ x) < 4 * f.std() / math.sqrt(n)
    assert abs(var - predicted) < 3 * stderr


@pytest.mark.parametrize(
    ("depth", "expected"),
    [(1, 0.155434), (2, 0.223599), (3, 0.241469), (4, 0.232232), (6, 0.182139), (8, 0.127243)],
)
def test_average_prediction_variance_table(depth: int, expected: float) -> None:
    """E_x Var = (s^2 - 1) v^T A0 v at gamma = 0.01, sigma^2 = 1, widths 4 (section 5 table)."""
    result = multistart_minimum(
        [4] * depth, ANISOTROPIC, 1.0, 0.01, starts=12, rng=np.random.default_rng(27)
    )
    s2 = noise_factor([4] * depth, 1.0)
    v = result.predictor
    assert (s2 - 1) * v @ ANISOTROPIC.input_covariance @ v == pytest.approx(expected, abs=1e-6)
