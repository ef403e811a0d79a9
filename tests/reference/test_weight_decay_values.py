"""Generated weight-decay kernels against the reference values of ziyin2022.md (sections 5
and 7) and against multi-start minimisation of the full network
(runtime.families.weight_decay.reference)."""

from __future__ import annotations

import numpy as np
import pytest

from netderive.derivations import parse_model
from netderive.runtime.families.weight_decay import reference as ref
from netderive.runtime.session import build

ISOTROPIC_DATA = {"input_covariance": [[1.0]], "input_output_covariance": [1.0],
                  "output_variance": 2.0}
ANISOTROPIC_DATA = {"input_covariance": [[1.0, 0.0], [0.0, 0.25]],
                    "input_output_covariance": [0.8, 0.3], "output_variance": 1.0}


@pytest.fixture(scope="module")
def kernels_for(kernel_cache_dir):
    made = {}

    def get(depth: int, width: int, data: dict, noise_variance: float = 0.0):
        key = (depth, width, repr(data), noise_variance)
        if key not in made:
            raw = {"family": "weight_decay", "depth": depth, "widths": [width] * depth,
                   "noise_variance": noise_variance, "weight_decay": 0.1, "data": data}
            made[key] = build(parse_model(raw, f"test_D{depth}_w{width}.toml"))
        return made[key]

    return get


def call(build_, name: str, **values: float) -> float:
    k = build_.kernels()
    defaults = {n: p["default"] for n, p in build_.params.items()}
    defaults.update(values)
    return float(getattr(k, name)(*[float(defaults[a]) for a in k.KERNEL_ARGUMENTS[name]]))


# section 7(a): m = a = s^2 = 1 (sigma^2 = 0)
TABLE_A = {  # D: (gamma_c, gamma_sp, b*(gamma_c-))
    1: (1.0, 1.0, 0.0),
    2: (0.396850, 0.472470, 0.793701),
    3: (0.272166, 0.384900, 0.903602),
    4: (0.210367, 0.346975, 0.944088),
    5: (0.172355, 0.325730, 0.963492),
    6: (0.146316, 0.312131, 0.974290),
}
GAMMAS = (0.05, 0.1, 0.2, 0.3, 0.35, 0.39, 0.45)
B_STAR = {
    1: (.97468, .94868, .89443, .83666, .80623, .78102, .74162),
    2: (.98274, .96416, .92170, .86822, .83415, .80038, 0.0),
    3: (.98691, .97244, .93749, 0.0, 0.0, 0.0, 0.0),
}


@pytest.mark.parametrize("depth", sorted(TABLE_A))
def test_isotropic_thresholds_table(kernels_for, depth):
    b = kernels_for(depth, 1, ISOTROPIC_DATA)
    gamma_c, gamma_sp, jump = TABLE_A[depth]
    got_c = call(b, "critical_weight_decay")
    assert got_c == pytest.approx(gamma_c, abs=1e-6)
    if depth >= 2:
        assert call(b, "spinodal_weight_decay") == pytest.approx(gamma_sp, abs=1e-6)
        assert call(b, "b_star", weight_decay=got_c * (1 - 1e-10)) == pytest.approx(jump,
                                                                                   abs=1e-5)
        assert call(b, "b_star", weight_decay=got_c * (1 + 1e-10)) == 0.0
    else:
        assert call(b, "b_star", weight_decay=got_c * (1 - 1e-10)) < 1e-4


@pytest.mark.parametrize("depth", sorted(B_STAR))
def test_isotropic_b_star_table(kernels_for, depth):
    b = kernels_for(depth, 1, ISOTROPIC_DATA)
    got = [call(b, "b_star", weight_decay=g) for g in GAMMAS]
    np.testing.assert_allclose(got, B_STAR[depth], atol=1e-5)


def test_barrier_table(kernels_for):
    b = kernels_for(2, 1, ISOTROPIC_DATA)
    got = [call(b, "barrier_b", weight_decay=g) for g in (0.1, 0.2, 0.3, 0.39)]
    np.testing.assert_allclose(got, (0.10010, 0.20165, 0.30913, 0.42159), atol=1e-5)
    assert np.isnan(call(b, "barrier_b", weight_decay=0.5))  # above gamma_sp: no barrier


# section 7(b): anisotropic, widths 4
TABLE_B = [  # D, sigma^2, gamma_c, bracket, b*(gamma_c (1 - 1e-4)), (b*, L*) at 0.1, at 0.2
    (1, 0.0, 0.85440, None, None, (1.07533, 0.25910), (0.95809, 0.46573)),
    (1, 1.0, 0.85440, None, None, (0.96180, 0.40728), (0.85694, 0.57258)),
    (2, 0.0, 0.33898, (0.32174, 0.51073), 0.81253, (1.05366, 0.35827), (0.96664, 0.66518)),
    (2, 1.0, 0.29212, (0.27727, 0.44014), 0.70021, (0.89665, 0.62306), (0.80656, 0.84147)),
    (3, 0.0, 0.23693, (0.21494, 0.42989), 0.94030, (1.04159, 0.45782), (0.97219, 0.86481)),
    (3, 1.0, 0.16953, (0.15380, 0.30760), 0.79540, (0.85965, 0.80864), (0.0, 1.0)),
]
EXACT_GAMMA_C = {(2, 0.0): (0.3389775, 0.81248), (2, 1.0): (0.2921220, 0.70017),
                 (3, 0.0): (0.2369278, 0.94028), (3, 1.0): (0.1695317, 0.79538)}


@pytest.mark.parametrize("row", TABLE_B, ids=lambda r: f"D{r[0]}-s{r[1]}")
def test_anisotropic_table(kernels_for, row):
    depth, sigma2, gamma_c, bracket, jump, at_01, at_02 = row
    b = kernels_for(depth, 4, ANISOTROPIC_DATA, sigma2)
    got_c = call(b, "critical_weight_decay", noise_variance=sigma2)
    assert got_c == pytest.approx(gamma_c, abs=5e-6)
    if bracket is not None:
        assert bracket[0] <= got_c <= bracket[1]
        exact_c, left_limit = EXACT_GAMMA_C[(depth, sigma2)]
        assert got_c == pytest.approx(exact_c, abs=5e-8)
        below = call(b, "b_star", weight_decay=got_c * (1 - 1e-4), noise_variance=sigma2)
        assert below == pytest.approx(jump, abs=5e-6)  # the table's b* at (1 - 1e-4) gamma_c
        limit = call(b, "b_star", weight_decay=got_c * (1 - 1e-11), noise_variance=sigma2)
        assert limit == pytest.approx(left_limit, abs=5e-6)  # the exact left limit
    for gamma, (b_star, loss) in ((0.1, at_01), (0.2, at_02)):
        assert call(b, "b_star", weight_decay=gamma, noise_variance=sigma2) == pytest.approx(
            b_star, abs=5e-6)
        assert call(b, "loss_at_minimum", weight_decay=gamma,
                    noise_variance=sigma2) == pytest.approx(loss, abs=5e-6)


# section 5: prediction variance, anisotropic data, sigma^2 = 1, widths 4, gamma = 0.01
VARIANCE = {1: (0.155434, 0.160000), 2: (0.223599, 0.230400), 3: (0.241469, 0.249856),
            4: (0.232232, 0.241828), 6: (0.182139, 0.193425), 8: (0.127243, 0.139625)}


@pytest.mark.parametrize("depth", sorted(VARIANCE))
def test_prediction_variance_table(kernels_for, depth):
    b = kernels_for(depth, 4, ANISOTROPIC_DATA, 1.0)
    at_001, limit = VARIANCE[depth]
    assert call(b, "prediction_variance", weight_decay=0.01) == pytest.approx(at_001, abs=1e-6)
    assert call(b, "prediction_variance_small_decay_limit") == pytest.approx(limit, abs=1e-6)


@pytest.mark.parametrize("depth, sigma2, gamma", [(2, 1.0, 0.2), (3, 1.0, 0.1), (1, 0.5, 0.3),
                                                  (2, 0.0, 0.25)])
def test_full_network_minimisation_agrees_with_the_reduced_solution(kernels_for, depth,
                                                                    sigma2, gamma):
    b = kernels_for(depth, 4, ANISOTROPIC_DATA, sigma2)
    data = ref.DataMoments(np.array(ANISOTROPIC_DATA["input_covariance"]),
                           np.array(ANISOTROPIC_DATA["input_output_covariance"]), 1.0)
    best = ref.multistart_minimum([4] * depth, data, sigma2, gamma, starts=16,
                                  rng=np.random.default_rng(depth))
    values = {"weight_decay": gamma, "noise_variance": sigma2}
    assert call(b, "loss_at_minimum", **values) == pytest.approx(best.loss, abs=1e-8)
    np.testing.assert_allclose(best.layer_norms, call(b, "b_star", **values), atol=1e-5)
    assert call(b, "predictor_norm", **values) == pytest.approx(
        np.linalg.norm(best.predictor), abs=1e-6)


def test_monte_carlo_dropout_agrees_with_the_loss_at_the_minimum(kernels_for):
    b = kernels_for(2, 4, ANISOTROPIC_DATA, 1.0)
    data = ref.DataMoments(np.array(ANISOTROPIC_DATA["input_covariance"]),
                           np.array(ANISOTROPIC_DATA["input_output_covariance"]), 1.0)
    b_star = call(b, "b_star", weight_decay=0.2)
    weights = ref.balanced_minimiser(b_star, [4, 4], data, 1.0, 0.2)
    mean, se = ref.monte_carlo_loss(weights, data, 1.0, 0.2, draws=100_000,
                                    rng=np.random.default_rng(11))
    assert abs(call(b, "loss_at_minimum", weight_decay=0.2) - mean) <= 3 * se


@pytest.mark.parametrize("depth, width, sigma2", [(1, 3, 0.5), (2, 4, 1.0), (3, 2, 0.3)])
def test_balanced_path_recursion_equals_the_full_network_loss(kernels_for, depth, width, sigma2):
    """The layer recursion kernel and the reduced loss vs the numpy loss of the full net."""
    b = kernels_for(depth, width, ANISOTROPIC_DATA, sigma2)
    data = ref.DataMoments(np.array(ANISOTROPIC_DATA["input_covariance"]),
                           np.array(ANISOTROPIC_DATA["input_output_covariance"]), 1.0)
    for norm in (0.0, 0.3, 0.9, 1.4):
        weights = ref.balanced_minimiser(norm, [width] * depth, data, sigma2, 0.15)
        expected = ref.exact_loss(weights, data, sigma2, 0.15)
        values = {"b": norm, "weight_decay": 0.15, "noise_variance": sigma2}
        assert call(b, "balanced_path_loss", **values) == pytest.approx(expected, rel=1e-12)
        assert call(b, "reduced_loss", **values) == pytest.approx(expected, rel=1e-12)
