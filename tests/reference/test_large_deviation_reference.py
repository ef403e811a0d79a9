"""Tests of the independent numpy reference for Li & Saad (2020) (notes: lisaad2020.md).

Every expected number is typed in from the notes (the section is named next to it); none comes
from code of this project. Monte Carlo comparisons allow 3 standard errors plus, where the notes
give one, the O(1/N) finite-size bias (notes section 6, "Test guidance").
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from netderive.runtime.families.large_deviation.reference import (
    OverlapSamples,
    binomial_chain_distribution,
    empirical_rate,
    gaussian_chain_sample_relu,
    log_probability_estimate,
    sample_overlaps,
    typical_overlap_estimate,
    weight_correlation,
)

# ----------------------------------------------------------------------------------------------
# literals from the notes

# section 2 / section 6 table headers: effective weight correlation rho
RHO = {
    "dil .1": 0.948683,
    "dil .3": 0.836660,
    "dil .5": 0.707107,
    "bin": 0.797885,
    "pbin .5": 0.898942,  # partial binarization p=0.5 (section 6, "Further values")
}
PERTURBATION = {
    "dil .1": ("dilution", 0.1),
    "dil .3": ("dilution", 0.3),
    "dil .5": ("dilution", 0.5),
    "bin": ("binarization", 0.0),
    "pbin .5": ("partial_binarization", 0.5),
}

# section 6, typical overlaps q0 = r0 = 1, layers 1..6
SIGN_Q = {
    "dil .1": [0.795167, 0.544107, 0.345297, 0.212464, 0.129203, 0.078229],
    "dil .3": [0.630990, 0.354059, 0.191457, 0.102418, 0.054618, 0.029102],
    "dil .5": [0.500000, 0.230053, 0.104023, 0.046869, 0.021102, 0.009500],
    "bin": [0.588095, 0.310938, 0.159608, 0.081293, 0.041322, 0.020993],
}
SIGN_V = {
    "dil .1": [0.36771, 1.01519, 1.38557, 1.52100, 1.56160, 1.57217],
    "dil .3": [0.60185, 1.11136, 1.30897, 1.37064, 1.38874, 1.39396],
    "dil .5": [0.75000, 1.12077, 1.22247, 1.24687, 1.25250, 1.25378],
    "bin": [0.65414, 1.11975, 1.28238, 1.32972, 1.34283, 1.34640],
}
RELU_R = {
    "dil .1": [0.952181, 0.912384, 0.880458, 0.855509, 0.836386, 0.821935],
    "dil .3": [0.856638, 0.762636, 0.704670, 0.670217, 0.650182, 0.638678],
    "dil .5": [0.755409, 0.631984, 0.574097, 0.547891, 0.536220, 0.531060],
    "bin": [0.825439, 0.719551, 0.659438, 0.626561, 0.608947, 0.599614],
    "pbin .5": [0.908633, 0.840561, 0.792334],  # section 6, "Further values"
}
RELU_V = {
    "dil .1": [0.01617, 0.06104, 0.12625, 0.19808, 0.26603, 0.32446],
    "dil .3": [0.12104, 0.32256, 0.48988, 0.59675, 0.65731, 0.69018],
    "dil .5": [0.28763, 0.55124, 0.67064, 0.71447, 0.72967, 0.73517],
    "bin": [0.16874, 0.40476, 0.56929, 0.65808, 0.70154, 0.72234],
    "pbin .5": [0.05425, 0.17345, 0.30692],
}
RELU_R_STAR = {"dil .1": 0.781117, "dil .3": 0.623552, "dil .5": 0.527001, "bin": 0.589277}

# section 6, input sensitivity: rho = 1, q0 = r0 = 0.9, layers 1..4
SIGN_Q_INPUT = [0.712867, 0.505208, 0.337168, 0.218938]
RELU_R_INPUT = [0.909538, 0.917741, 0.924851, 0.931057]

# section 6, unnormalised ReLU overlaps, dilution p=0.1 without rescale, sigma_w^2 = 2
RELU_UNNORMALISED = [(0.903318, 1.0, 0.9), (0.821146, 1.0, 0.81)]  # (q, Q, Q_hat)_l, l = 1, 2
RELU_Q2_LAMBDA2 = 7.20  # Lambda_2''(0) = lim N Var(q_2)

# section 6, sign rate functions I_L(q) (exact DP, 4001-point grid)
SIGN_RATE_Q = [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 0.9]
SIGN_RATE = {
    ("dil .1", 1): [1.17371, 0.80315, 0.50023, 0.26048, 0.08838, 0.00261, 0.01807],
    ("dil .1", 2): [0.43270, 0.25115, 0.12157, 0.03770, 0.00094, 0.02421, 0.08758],
    ("dil .1", 3): [0.24549, 0.11940, 0.04054, 0.00320, 0.00908, 0.07097, 0.15511],
    ("bin", 1): [0.68040, 0.41249, 0.21221, 0.07511, 0.00565, 0.02253, 0.09957],
    ("bin", 2): [0.27577, 0.13048, 0.04074, 0.00163, 0.01697, 0.10456, 0.21684],
    ("bin", 3): [0.17155, 0.06436, 0.00979, 0.00323, 0.04866, 0.16388, 0.29143],
}
SIGN_RATE_ENDPOINTS_DIL1 = {1.0: 0.108049, -1.0: 2.27871}  # I_1(+1), I_1(-1), dil .1
# section 6, "Sign, binomial chain": -ln P(q_3 = 0) / N, dil .1, N = 100, 400, 1600
SIGN_CHAIN_RATE_AT_ZERO = {100: 0.069, 400: 0.049, 1600: 0.043}

# section 6, ReLU rate functions I_L(r) (DP, 1001-point grid), bin, L = 2
RELU_RATE_BIN_L2 = {0.5: 0.03839, 0.6: 0.01341, 0.7: 0.00045, 0.8: 0.01025, 0.9: 0.08257}

# section 6, "Simulation confirmations"
SIM_SIGN_DIL1_N201 = ([0.79617, 0.54607, 0.34759], [0.00035, 0.00058, 0.00068])
SIM_SIGN_DIL1_N201_NVAR = [0.361, 1.002, 1.396]
SIM_SIGN_BIN_N51 = {"mean": 0.3166, "chain_mean": 0.3127, "nvar": 1.117, "chain_nvar": 1.116}
SIM_RELU_DIL1_N400 = ([0.95197, 0.91208], [0.00008, 0.00016])
SIM_RELU_DIL1_N400_NVAR = [0.0168, 0.0644]
SIM_RELU_DIL1_N400_Q = [0.90322, 0.82037]
SIM_RELU_DIL1_N400_NVAR_Q2 = (7.07, 0.13)
SIM_RELU_BIN_N200 = [0.82418, 0.71747, 0.65693, 0.62492]

#: O(1/N) bias allowance for means: |bias| <= BIAS / N. Section 6 gives about +0.003 for sign
#: at l = 2, N = 200 (upward) and shows ReLU means below typical by up to 0.0025 at N = 200.
BIAS = 0.6


# ----------------------------------------------------------------------------------------------
# helpers


def nvar_standard_error(values: np.ndarray, n: int) -> np.ndarray:
    """Standard error of ``N * Var`` per column (``sqrt((m4 - var^2) / M)``, delta method)."""
    centred = values - values.mean(axis=0)
    m2 = np.mean(centred**2, axis=0)
    m4 = np.mean(centred**4, axis=0)
    return n * np.sqrt((m4 - m2**2) / values.shape[0])


def assert_mean_close(
    mean: np.ndarray,
    se: np.ndarray,
    expected,
    *,
    n: int,
    bias: str = "none",
) -> None:
    """``expected - 3 SE - b <= mean <= expected + 3 SE + b'`` with the allowed O(1/N) bias."""
    expected = np.asarray(expected, dtype=float)
    up = BIAS / n if bias in ("up", "both") else 0.0
    down = BIAS / n if bias in ("down", "both") else 0.0
    diff = np.asarray(mean) - expected
    ok = (diff <= 3 * se + up) & (diff >= -3 * se - down)
    assert ok.all(), f"mean {mean} vs {expected}: diff {diff}, 3 SE {3 * se}, bias {up, down}"


def assert_nvar_close(
    values: np.ndarray, n: int, expected, rel: float = 0.10, extra_se: float = 3.0
) -> None:
    """``|N Var - V| <= max(rel V, 3 SE)`` per layer."""
    expected = np.asarray(expected, dtype=float)
    nvar = n * values.var(axis=0, ddof=1)
    tol = np.maximum(rel * expected, extra_se * nvar_standard_error(values, n))
    assert np.all(np.abs(nvar - expected) <= tol), f"N Var {nvar} vs {expected} (tol {tol})"


def chain_moments(grid: np.ndarray, probs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and ``N * Var`` of the chain's law (rows of ``probs`` = layers)."""
    mean = probs @ grid
    return mean, n * (probs @ grid**2 - mean**2)


# ----------------------------------------------------------------------------------------------
# section 2: effective weight correlation


@pytest.mark.parametrize(
    ("perturbation", "p", "expected"),
    [
        ("dilution", 0.1, math.sqrt(1 - 0.1)),
        ("dilution", 0.3, math.sqrt(1 - 0.3)),
        ("dilution", 0.5, math.sqrt(1 - 0.5)),
        ("binarization", 0.0, math.sqrt(2 / math.pi)),
        ("binarization", 0.7, math.sqrt(2 / math.pi)),  # p is ignored
        ("partial_binarization", 0.5, 1 - 0.5 + 0.5 * math.sqrt(2 / math.pi)),
        ("none", 0.0, 1.0),
    ],
)
def test_weight_correlation_closed_forms(perturbation: str, p: float, expected: float) -> None:
    rng = np.random.default_rng(101)
    reps = np.array([weight_correlation(perturbation, p, 200_000, rng) for _ in range(20)])
    se = reps.std(ddof=1) / math.sqrt(reps.size)
    assert abs(reps.mean() - expected) <= 3 * se + 1e-12
    if perturbation in ("dilution", "partial_binarization") and p == 0.5:
        key = "dil .5" if perturbation == "dilution" else "pbin .5"
        assert expected == pytest.approx(RHO[key], abs=1e-6)  # notes' tabulated rho


def test_weight_correlation_table_values() -> None:
    """The notes' rho column equals the closed forms of section 2."""
    assert math.sqrt(0.9) == pytest.approx(RHO["dil .1"], abs=1e-6)
    assert math.sqrt(0.7) == pytest.approx(RHO["dil .3"], abs=1e-6)
    assert math.sqrt(2 / math.pi) == pytest.approx(RHO["bin"], abs=1e-6)


# ----------------------------------------------------------------------------------------------
# section 4.3: exact binomial chain (sign)


def test_binomial_chain_is_a_probability_law() -> None:
    grid, probs = binomial_chain_distribution(RHO["bin"], 4, 60, q0=0.8, all_layers=True)
    assert grid.shape == (61,) and probs.shape == (4, 61)
    np.testing.assert_allclose(grid, 2 * np.arange(61) / 60 - 1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(probs >= 0)
    # layer 1 is Bin(N, (1 + mu(q0)) / 2)
    mu1 = 2 / math.pi * math.asin(RHO["bin"] * 0.8)
    np.testing.assert_allclose(probs[0], scipy.stats.binom.pmf(np.arange(61), 60, (1 + mu1) / 2))
    # the last row is the default return value
    _, last = binomial_chain_distribution(RHO["bin"], 4, 60, q0=0.8)
    np.testing.assert_allclose(last, probs[-1])
    # rho = 1, q0 = 1 stays at q = 1
    _, frozen = binomial_chain_distribution(1.0, 3, 20)
    assert frozen[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["dil .1", "dil .3", "dil .5", "bin"])
def test_binomial_chain_mean_and_variance(case: str) -> None:
    """Section 4.3 / section 6: mean -> typical q_l, N Var -> V_l."""
    rho = RHO[case]
    n1, n2 = 1001, 2001
    grid1, probs1 = binomial_chain_distribution(rho, 6, n1, all_layers=True)
    grid2, probs2 = binomial_chain_distribution(rho, 6, n2, all_layers=True)
    mean1, nvar1 = chain_moments(grid1, probs1, n1)
    mean2, nvar2 = chain_moments(grid2, probs2, n2)
    q, v = np.array(SIGN_Q[case]), np.array(SIGN_V[case])
    # at N = 2001 directly: the mean is above typical by O(1/N); N Var within 0.2 %
    assert np.all(mean2 - q >= -1e-6) and np.all(mean2 - q <= BIAS / n2)
    np.testing.assert_allclose(nvar2, v, rtol=2e-3)
    # Richardson extrapolation removes the O(1/N) term
    np.testing.assert_allclose(2 * mean2 - mean1, q, atol=2e-5)
    np.testing.assert_allclose(2 * nvar2 - nvar1, v, atol=2e-4)


def test_binomial_chain_input_sensitivity() -> None:
    """Section 6: rho = 1, q0 = 0.9, sign q_l decays."""
    n1, n2 = 1000, 2000
    means = []
    for n in (n1, n2):
        grid, probs = binomial_chain_distribution(1.0, 4, n, q0=0.9, all_layers=True)
        means.append(chain_moments(grid, probs, n)[0])
    np.testing.assert_allclose(2 * means[1] - means[0], SIGN_Q_INPUT, atol=2e-5)


def test_binomial_chain_small_n_values() -> None:
    """Section 6, "Sign, bin, N=51": chain mean .3127, N Var 1.116 for q_2."""
    grid, probs = binomial_chain_distribution(RHO["bin"], 2, 51, all_layers=True)
    mean, nvar = chain_moments(grid, probs, 51)
    assert mean[1] == pytest.approx(SIM_SIGN_BIN_N51["chain_mean"], abs=6e-5)
    assert nvar[1] == pytest.approx(SIM_SIGN_BIN_N51["chain_nvar"], abs=6e-4)


@pytest.mark.parametrize("n", sorted(SIGN_CHAIN_RATE_AT_ZERO))
def test_binomial_chain_rate_at_zero(n: int) -> None:
    """Section 6: -ln P(q_3 = 0) / N = .069, .049, .043 at N = 100, 400, 1600 (dil .1)."""
    grid, prob = binomial_chain_distribution(RHO["dil .1"], 3, n)
    k = n // 2
    assert grid[k] == 0.0
    assert -math.log(prob[k]) / n == pytest.approx(SIGN_CHAIN_RATE_AT_ZERO[n], abs=6e-4)


@pytest.mark.parametrize(("case", "depth"), sorted(SIGN_RATE))
def test_binomial_chain_converges_to_sign_rate_function(case: str, depth: int) -> None:
    """Section 6 I_L(q) table from the exact chain.

    For a lattice variable ``-ln P_N(q) / N = I_L(q) + ln(N) / (2N) + c(q) / N + O(1/N^2)``;
    subtract the log term and Richardson-extrapolate N = 400, 1600.
    """
    n1, n2 = 400, 1600
    corrected = []
    for n in (n1, n2):
        grid, log_prob = binomial_chain_distribution(RHO[case], depth, n, log_probability=True)
        ks = [round(n * (1 + q) / 2) for q in SIGN_RATE_Q]
        np.testing.assert_allclose(grid[ks], SIGN_RATE_Q, atol=1e-12)
        corrected.append(-log_prob[ks] / n - math.log(n) / (2 * n))
    extrapolated = (4 * corrected[1] - corrected[0]) / 3
    np.testing.assert_allclose(extrapolated, SIGN_RATE[(case, depth)], atol=1e-4)


def test_binomial_chain_endpoints_one_layer() -> None:
    """Section 6: I_1(1) = -ln((1 + mu_1) / 2) = .108049 and I_1(-1) = 2.27871 (dil .1)."""
    n = 500
    _, log_prob = binomial_chain_distribution(RHO["dil .1"], 1, n, log_probability=True)
    assert -log_prob[-1] / n == pytest.approx(SIGN_RATE_ENDPOINTS_DIL1[1.0], abs=2e-6)
    assert -log_prob[0] / n == pytest.approx(SIGN_RATE_ENDPOINTS_DIL1[-1.0], abs=2e-5)


def test_binomial_chain_log_space_matches_linear() -> None:
    _, prob = binomial_chain_distribution(RHO["dil .3"], 4, 300, q0=0.7, all_layers=True)
    _, log_prob = binomial_chain_distribution(
        RHO["dil .3"], 4, 300, q0=0.7, all_layers=True, log_probability=True
    )
    big = prob > 1e-200
    np.testing.assert_allclose(log_prob[big], np.log(prob[big]), rtol=0, atol=1e-9)
    assert np.all(np.isfinite(log_prob))  # no underflow in log space


# ----------------------------------------------------------------------------------------------
# section 4.4: Gaussian-level ReLU chain


@pytest.mark.parametrize("case", ["dil .1", "dil .3", "dil .5", "bin", "pbin .5"])
def test_gaussian_chain_relu_typical(case: str) -> None:
    """Section 6 ReLU r_l and V_l columns from the Gaussian chain at N = 1000."""
    rng = np.random.default_rng(202)
    n = 1000
    expected_r, expected_v = RELU_R[case], RELU_V[case]
    path = gaussian_chain_sample_relu(RHO[case], len(expected_r), n, 2000, rng, return_path=True)
    assert path.shape == (2000, len(expected_r))
    se = path.std(axis=0, ddof=1) / math.sqrt(path.shape[0])
    assert_mean_close(path.mean(axis=0), se, expected_r, n=n, bias="down")
    assert_nvar_close(path, n, expected_v)


def test_gaussian_chain_relu_fixed_point() -> None:
    """Section 6 column r*: deep chains settle at r* = kappa(rho r*)."""
    rng = np.random.default_rng(203)
    n = 500
    for case, r_star in RELU_R_STAR.items():
        r = gaussian_chain_sample_relu(RHO[case], 40, n, 500, rng)
        se = r.std(ddof=1) / math.sqrt(r.size)
        assert_mean_close(r.mean(), se, r_star, n=n, bias="down")


def test_gaussian_chain_relu_input_sensitivity() -> None:
    """Section 6: rho = 1, r0 = 0.9, ReLU r_l rises toward 1."""
    rng = np.random.default_rng(204)
    n = 1000
    path = gaussian_chain_sample_relu(1.0, 4, n, 2000, rng, r0=0.9, return_path=True)
    se = path.std(axis=0, ddof=1) / math.sqrt(path.shape[0])
    assert_mean_close(path.mean(axis=0), se, RELU_R_INPUT, n=n, bias="down")
    # last-only output equals the last column of the path
    last = gaussian_chain_sample_relu(1.0, 4, 50, 10, np.random.default_rng(5), r0=0.9)
    path = gaussian_chain_sample_relu(
        1.0, 4, 50, 10, np.random.default_rng(5), r0=0.9, return_path=True
    )
    np.testing.assert_array_equal(last, path[:, -1])


# ----------------------------------------------------------------------------------------------
# section 1: finite random networks against section 6


def test_sample_overlaps_shapes_and_sign_pitfall() -> None:
    """Shapes; sign units are +-1 even with binarized weights and even N (sgn(0) = +1)."""
    rng = np.random.default_rng(301)
    samples = sample_overlaps("sign", "binarization", 0.0, 3, 8, 200, rng, batch=64)
    assert isinstance(samples, OverlapSamples)
    assert samples.q.shape == (200, 3) and samples.networks == 200 and samples.depth == 3
    np.testing.assert_array_equal(samples.Q, 1.0)
    np.testing.assert_array_equal(samples.Q_hat, 1.0)
    np.testing.assert_array_equal(samples.r, samples.q)
    # q is a multiple of 2 / N
    np.testing.assert_allclose(np.round(samples.q * 8 / 2) * 2 / 8, samples.q, atol=1e-12)
    # unperturbed weights and inputs: the copies coincide
    same = sample_overlaps("relu", "none", 0.0, 2, 10, 5, rng)
    np.testing.assert_allclose(same.r, 1.0)
    np.testing.assert_allclose(same.q, same.Q)
    # input flips: realised q0
    flipped = sample_overlaps("sign", "none", 0.0, 1, 20, 3, rng, input_overlap=0.9)
    assert flipped.input_overlap == pytest.approx(0.9)
    # any vectorised callable (sigma_w^2 = 1)
    tanh = sample_overlaps(np.tanh, "dilution", 0.1, 2, 30, 20, rng)
    assert tanh.activation == "tanh" and np.all(np.abs(tanh.r) <= 1.0 + 1e-12)


def test_full_sign_network_dilution_n201() -> None:
    """Section 6: sign, dil .1, N = 201 (notes: 15k nets; here 1500)."""
    rng = np.random.default_rng(302)
    n = 201
    samples = sample_overlaps("sign", "dilution", 0.1, 3, n, 1500, rng)
    mean, se, nvar = typical_overlap_estimate(samples, normalised=False)
    assert_mean_close(mean, se, SIGN_Q["dil .1"][:3], n=n, bias="up")
    sim_mean, sim_se = map(np.array, SIM_SIGN_DIL1_N201)
    assert np.all(np.abs(mean - sim_mean) <= 3 * np.hypot(se, sim_se))
    assert_nvar_close(samples.q, n, SIGN_V["dil .1"][:3])
    # layer 1 exactly (section 2): per-row correlation sqrt(K/N), K ~ Bin(N, 1 - p), so
    # E q_1 = E_K (2/pi) arcsin sqrt(K/N) and N Var q_1 = 1 - (E q_1)^2
    k = np.arange(n + 1)
    exact_q1 = scipy.stats.binom.pmf(k, n, 0.9) @ (2 / np.pi * np.arcsin(np.sqrt(k / n)))
    assert abs(mean[0] - exact_q1) <= 3 * se[0]
    assert nvar[0] == pytest.approx(1 - exact_q1**2, rel=0.1)


@pytest.mark.slow  # the kernels' typical overlaps are sampled in test_large_deviation_sampling
def test_full_relu_network_dilution_n400() -> None:
    """Section 6: ReLU, dil .1, N = 400 (notes: 6k nets; here 1500)."""
    rng = np.random.default_rng(303)
    n = 400
    samples = sample_overlaps("relu", "dilution", 0.1, 2, n, 1500, rng)
    mean, se, _ = typical_overlap_estimate(samples, normalised=True)
    assert_mean_close(mean, se, RELU_R["dil .1"][:2], n=n, bias="down")
    sim_mean, sim_se = map(np.array, SIM_RELU_DIL1_N400)
    assert np.all(np.abs(mean - sim_mean) <= 3 * np.hypot(se, sim_se))
    # r_l is skewed to the left (occasional 4-5 sigma networks at this sample size): compare N Var
    # with the notes' finite-N simulation, which includes the +4-6 % finite-N offset
    assert_nvar_close(samples.r, n, SIM_RELU_DIL1_N400_NVAR)
    # unnormalised (q, Q, Q_hat)
    for values, col in ((samples.q, 0), (samples.Q, 1), (samples.Q_hat, 2)):
        expected = [layer[col] for layer in RELU_UNNORMALISED]
        se_v = values.std(axis=0, ddof=1) / math.sqrt(values.shape[0])
        assert_mean_close(values.mean(axis=0), se_v, expected, n=n, bias="both")
    # the notes give no SE for q; their 6k nets have SE = ours * sqrt(M / 6000)
    q_se = samples.q.std(axis=0, ddof=1) / math.sqrt(samples.networks)
    q_tol = 3 * q_se * math.sqrt(1 + samples.networks / 6000)
    assert np.all(np.abs(samples.q.mean(axis=0) - SIM_RELU_DIL1_N400_Q) <= q_tol)


@pytest.mark.slow  # the kernels' typical overlaps are sampled in test_large_deviation_sampling
def test_full_relu_network_binarization_n200() -> None:
    """Section 6: ReLU, bin, N = 200, r_1..r_4."""
    rng = np.random.default_rng(304)
    n = 200
    samples = sample_overlaps("relu", "binarization", 0.0, 4, n, 1500, rng)
    mean, se, _ = typical_overlap_estimate(samples, normalised=True)
    assert_mean_close(mean, se, RELU_R["bin"][:4], n=n, bias="down")
    # the notes give no SE or sample size: assume theirs is at most ours
    assert np.all(np.abs(mean - SIM_RELU_BIN_N200) <= 3 * math.sqrt(2) * se)
    assert_nvar_close(samples.r, n, RELU_V["bin"][:4])
    # binarized weights keep the norm: Q_hat stays near 1 (sigma_hat = sigma_w)
    assert_mean_close(
        samples.Q_hat.mean(axis=0),
        samples.Q_hat.std(axis=0, ddof=1) / math.sqrt(samples.networks),
        np.ones(4),
        n=n,
        bias="both",
    )


# ----------------------------------------------------------------------------------------------
# full networks against the finite-N chains


def test_full_sign_network_equals_binomial_chain_without_weight_perturbation() -> None:
    """With W_hat = W and q0 = 0.9 the pair (h, h_hat) is exactly Gaussian: the law of q_l is the
    binomial chain at the same N (section 4.3), so the means agree within error bars."""
    rng = np.random.default_rng(305)
    n = 200
    samples = sample_overlaps("sign", "none", 0.0, 3, n, 1500, rng, input_overlap=0.9)
    mean, se, _ = typical_overlap_estimate(samples, normalised=False)
    grid, probs = binomial_chain_distribution(1.0, 3, n, q0=0.9, all_layers=True)
    chain_mean, chain_nvar = chain_moments(grid, probs, n)
    assert np.all(np.abs(mean - chain_mean) <= 3 * se)
    nvar_se = nvar_standard_error(samples.q, n)
    assert np.all(np.abs(n * samples.q.var(axis=0, ddof=1) - chain_nvar) <= 3 * nvar_se)
    assert_mean_close(mean, se, SIGN_Q_INPUT[:3], n=n, bias="up")


def test_full_relu_network_equals_gaussian_chain_without_weight_perturbation() -> None:
    """With W_hat = W and r0 = 0.9 the law of r_l is exactly the Gaussian chain (section 4.4)."""
    rng = np.random.default_rng(306)
    n = 200
    samples = sample_overlaps("relu", "none", 0.0, 3, n, 1500, rng, input_overlap=0.9)
    mean, se, _ = typical_overlap_estimate(samples, normalised=True)
    chain = gaussian_chain_sample_relu(1.0, 3, n, 20_000, rng, r0=0.9, return_path=True)
    chain_se = chain.std(axis=0, ddof=1) / math.sqrt(chain.shape[0])
    assert np.all(np.abs(mean - chain.mean(axis=0)) <= 3 * np.hypot(se, chain_se))
    assert_mean_close(mean, se, RELU_R_INPUT[:3], n=n, bias="down")


@pytest.mark.parametrize("case", ["bin", "dil .1"])
def test_full_relu_network_matches_gaussian_chain_moderate_n(case: str) -> None:
    """Section 6: at moderate N full nets follow the Gaussian chain. For dilution the per-row
    correlation is sqrt(K_i / N) (section 2), an O(1/N) effect covered by the bias allowance."""
    rng = np.random.default_rng(307)
    n = 100
    perturbation, p = PERTURBATION[case]
    samples = sample_overlaps("relu", perturbation, p, 3, n, 2000, rng)
    mean, se, _ = typical_overlap_estimate(samples, normalised=True)
    chain = gaussian_chain_sample_relu(RHO[case], 3, n, 20_000, rng, return_path=True)
    chain_se = chain.std(axis=0, ddof=1) / math.sqrt(chain.shape[0])
    tol = 3 * np.hypot(se, chain_se) + (0.0 if case == "bin" else 0.3 / n)
    assert np.all(np.abs(mean - chain.mean(axis=0)) <= tol)


# ----------------------------------------------------------------------------------------------
# probabilities and rates


def test_log_probability_and_rate_helpers() -> None:
    values = np.array([0.1, 0.2, 0.2, 0.5, 0.7, 0.9, 0.95, 0.3])
    log_p, se = log_probability_estimate(values, 0.15, 0.35)
    assert log_p == pytest.approx(math.log(3 / 8))
    assert se == pytest.approx(math.sqrt((1 - 3 / 8) / 3))
    assert log_probability_estimate(values, 2.0, 3.0) == (-math.inf, math.inf)
    rate, rate_se = empirical_rate(values, 0.15, 0.35, 10)
    assert rate == pytest.approx(-math.log(3 / 8) / 10)
    assert rate_se == pytest.approx(se / 10)
    rel, rel_se = empirical_rate(values, 0.85, 1.0, 10, relative_to=(0.15, 0.35))
    assert rel == pytest.approx(-math.log(2 / 3) / 10)
    assert rel_se == pytest.approx(math.sqrt(1 / 2 + 1 / 3) / 10)
    with pytest.raises(ValueError):
        empirical_rate(values, 0.1, 0.3, 10, relative_to=(0.2, 0.4))


def test_empirical_rate_of_binomial_samples_matches_chain() -> None:
    """Samples drawn from the one-layer binomial law reproduce its log-probabilities."""
    rng = np.random.default_rng(401)
    n = 50
    grid, prob = binomial_chain_distribution(RHO["bin"], 1, n)
    draws = grid[rng.choice(n + 1, size=200_000, p=prob)]
    for q in (0.2, 0.4, 0.6, 0.8):
        log_p, se = log_probability_estimate(draws, q - 1 / n, q + 1 / n)
        k = round(n * (1 + q) / 2)
        assert abs(log_p - math.log(prob[k])) <= 3 * se


# ----------------------------------------------------------------------------------------------
# long runs


@pytest.mark.slow
def test_full_sign_network_dilution_n201_notes_sample_size() -> None:
    """Section 6: sign, dil .1, N = 201, 15k nets: means and N Var as in the notes."""
    rng = np.random.default_rng(501)
    n = 201
    samples = sample_overlaps("sign", "dilution", 0.1, 3, n, 15_000, rng)
    mean, se, nvar = typical_overlap_estimate(samples, normalised=False)
    assert_mean_close(mean, se, SIGN_Q["dil .1"][:3], n=n, bias="up")
    sim_mean, sim_se = map(np.array, SIM_SIGN_DIL1_N201)
    assert np.all(np.abs(mean - sim_mean) <= 3 * np.hypot(se, sim_se))
    np.testing.assert_allclose(nvar, SIGN_V["dil .1"][:3], rtol=0.10)
    np.testing.assert_allclose(nvar, SIM_SIGN_DIL1_N201_NVAR, rtol=0.10)


@pytest.mark.slow
def test_full_relu_network_dilution_n400_notes_sample_size() -> None:
    """Section 6: ReLU, dil .1, N = 400, 6k nets, incl. N Var(q_2) = 7.07 +- .13 (vs 7.20)."""
    rng = np.random.default_rng(502)
    n = 400
    samples = sample_overlaps("relu", "dilution", 0.1, 2, n, 6000, rng)
    mean, se, nvar = typical_overlap_estimate(samples, normalised=True)
    assert_mean_close(mean, se, RELU_R["dil .1"][:2], n=n, bias="down")
    sim_mean, sim_se = map(np.array, SIM_RELU_DIL1_N400)
    assert np.all(np.abs(mean - sim_mean) <= 3 * np.hypot(se, sim_se))
    np.testing.assert_allclose(nvar, RELU_V["dil .1"][:2], rtol=0.10)
    np.testing.assert_allclose(nvar, SIM_RELU_DIL1_N400_NVAR, rtol=0.10)
    _, _, nvar_q = typical_overlap_estimate(samples, normalised=False)
    nvar_q2_se = nvar_standard_error(samples.q, n)[1]
    sim_value, sim_se = SIM_RELU_DIL1_N400_NVAR_Q2
    assert abs(nvar_q[1] - sim_value) <= 3 * math.hypot(nvar_q2_se, sim_se)
    assert nvar_q[1] == pytest.approx(RELU_Q2_LAMBDA2, rel=0.10)


@pytest.mark.slow
def test_full_sign_network_binarization_n51() -> None:
    """Section 6: sign, bin, N = 51, 100k nets: mean .3166, N Var 1.117; histogram of q_2 within
    a few % of the exact binomial chain where the probability is not small."""
    rng = np.random.default_rng(503)
    n = 51
    samples = sample_overlaps("sign", "binarization", 0.0, 2, n, 100_000, rng)
    mean, se, nvar = typical_overlap_estimate(samples, normalised=False)
    assert abs(mean[1] - SIM_SIGN_BIN_N51["mean"]) <= 3 * se[1] + 0.0005  # notes: 4 digits
    assert nvar[1] == pytest.approx(SIM_SIGN_BIN_N51["nvar"], rel=0.03)
    grid, prob = binomial_chain_distribution(RHO["bin"], 2, n)
    counts = np.bincount(np.rint((samples.q[:, 1] + 1) * n / 2).astype(int), minlength=n + 1)
    big = prob > 0.01
    np.testing.assert_allclose(counts[big] / samples.networks, prob[big], rtol=0.08)


@pytest.mark.slow
def test_gaussian_chain_relu_large_deviation_shape() -> None:
    """Section 6, "Large-deviation shape, ReLU L=2" (bin): -(1/N) ln[P_N(r) / P_N^max] from the
    Gaussian chain at N = 50, 100; Richardson 2 e_100 - e_50 is within .005 of I_2(r). Bins of
    width 1/N make the bin-averaging error O(1/N), which the extrapolation removes."""
    rng = np.random.default_rng(504)
    rates: dict[int, dict[float, tuple[float, float]]] = {}
    for n, draws in ((50, 1_000_000), (100, 2_000_000)):
        r = gaussian_chain_sample_relu(RHO["bin"], 2, n, draws, rng)
        width = 1.0 / n
        edges = np.arange(0.0, 1.0 + width, width)
        counts, _ = np.histogram(r, edges)
        top = int(np.argmax(counts))
        ref = (edges[top], edges[top + 1])
        rates[n] = {
            x: empirical_rate(r, x - width / 2, x + width / 2, n, relative_to=ref)
            for x in (0.5, 0.6, 0.8, 0.9)
        }
    for x, rate in RELU_RATE_BIN_L2.items():
        if x not in rates[50]:
            continue
        (e50, s50), (e100, s100) = rates[50][x], rates[100][x]
        extrapolated = 2 * e100 - e50
        assert abs(extrapolated - rate) <= 3 * math.hypot(2 * s100, s50) + 0.005
