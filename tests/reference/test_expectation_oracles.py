"""The plain-numpy oracles of the expectation recursions against the notes (borovykh2019.md).

Independent side: ``runtime/families/expectation/reference.py`` (jets by backpropagation and
forward-over-reverse, order 1 closed forms, order 2 Gaussian-closure map, Monte Carlo of noisy GD
on the network). The literals below are copied from the notes, section 7 (case A); a printed
value is matched to its last printed digit (``0.6`` units of it), which is tighter than 1e-6.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from netderive.runtime.families.expectation.reference import (
    NetworkParams,
    UnstableRecursionError,
    case_a,
    flatten_params,
    linearised_prediction,
    network_jets,
    noise_scale,
    noiseless_gd,
    quadratic_closure_prediction,
    simulate_noisy_gd,
    unflatten_params,
)

CASE = case_a()
N_TRAIN = 4
A1 = (0.05, 0.01)  # eta, s = eta * sigma with sigma = 0.2

# notes 7.2
F0_X = ["-1.473060", "0.03247533", "1.511743", "1.023186"]
R0 = ["-0.1230596", "0.1024753", "0.08174311", "-0.09681358"]
F0_XS = ["0.8633034", "-1.2059997"]
EIG_THETA = ["0.4524749", "2.932431", "4.931065", "5.927509"]
THETA_XS_X = [
    ["0.5448164", "-1.215403", "3.249358", "0.3615083"],
    ["1.423404", "2.155343", "-2.181824", "0.5748864"],
]
KAPPA_XS = ["3.128604", "3.283756"]
POSTERIOR_VAR = ["0.2524598", "0.7016936"]
TR_H = ["3.500421", "-0.3596604", "-1.157622", "-1.339560", "-0.5268684", "1.516827"]
HESS_L = ["13.81092", "-0.18425", "5.9595"]  # trace, min and max eigenvalue of grad^2 L(w0)
TR_THETA = "14.24348"
STATIONARY_VAR_A1 = ["1.10916e-3", "1.09229e-3", "1.11597e-3", "1.08771e-3"]

# notes 7.3 (A1), t -> (x*1, x*2)
MC_MEAN = {1: [("0.8613201", 4.4e-07), ("-1.1965137", 4.7e-07)],
           10: [("0.8653459", 3.1e-06), ("-1.1724639", 3.7e-06)]}  # fmt: skip
MC_VAR = {1: [("3.10714e-04", 9.8e-07), ("3.26658e-04", 1.0e-06)],
          10: [("9.99840e-04", 3.2e-06), ("1.36389e-03", 4.3e-06)]}  # fmt: skip
MC_LOSS = {1: ("0.0183144", 1.3e-06), 10: ("0.0109798", 3.1e-06)}
O1_MEAN = {1: ["0.8613524", "-1.1965847"], 10: ["0.8651726", "-1.1726715"],
           50: ["0.8749467", "-1.2048777"]}  # fmt: skip
O2_MEAN = {1: ["0.8613195", "-1.1965127"], 10: ["0.8652882", "-1.1725220"],
           50: ["0.8748025", "-1.2049017"]}  # fmt: skip
O1_VAR = {1: ["3.128604e-04", "3.283756e-04"], 10: ["1.023148e-03", "1.394679e-03"],
          50: ["2.049576e-03", "4.337204e-03"]}  # fmt: skip
O2_VAR = {1: ["3.108266e-04", "3.262343e-04"], 10: ["1.001278e-03", "1.373016e-03"],
          50: ["2.000501e-03", "4.142847e-03"]}  # fmt: skip
# notes 7.5 (A1, sigma = 0): true GD, order 2
GD = {1: ["0.8613459", "-1.1965884"], 10: ["0.8656603", "-1.1730094"],
      50: ["0.8768364", "-1.2057069"]}  # fmt: skip
O2_NOISELESS = {1: ["0.8613458", "-1.1965885"], 10: ["0.8656403", "-1.1730331"],
                50: ["0.8764986", "-1.2061486"]}  # fmt: skip
# notes 7.4 (A1): E L order 1, order 2, tr K-bar, c_t; tr S order 1, order 2
O1_LOSS = {1: "0.0183299", 10: "0.0109281", 50: "0.0035858"}
O2_LOSS = {1: "0.0183149", 10: "0.0109624", 50: "0.0036943"}
TR_KBAR = {1: "13.86665", 10: "14.13724", 50: "14.63767"}
CLOSURE = {1: "0.000", 10: "0.004", 50: "0.082"}
O1_TR_S = {1: "0.00160", 10: "0.01360", 50: "0.06281"}
O2_TR_S = {1: "0.00160", 10: "0.01365", 50: "0.06196"}
STEPS = [1, 10, 50]


def assert_printed(ours, printed) -> None:
    """``ours`` equals each printed literal to 0.6 units of its last printed digit."""
    ours = np.atleast_1d(np.asarray(ours, dtype=float))
    printed = np.atleast_1d(np.asarray(printed, dtype=object))
    assert ours.shape == printed.shape
    for got, lit in zip(ours.ravel(), printed.ravel(), strict=True):
        tol = 0.6 * 10.0 ** Decimal(lit).as_tuple().exponent
        assert abs(got - float(lit)) <= tol, f"{got!r} vs notes {lit} (tolerance {tol:g})"


def tanh_fns():
    return CASE["phi"], CASE["dphi"], CASE["d2phi"]


@pytest.fixture(scope="module")
def jets():
    phi, dphi, d2phi = tanh_fns()
    xs = np.vstack([CASE["train_inputs"], CASE["test_inputs"]])
    return network_jets(CASE["params"], phi, dphi, d2phi, xs)


@pytest.fixture(scope="module")
def predictions(jets):
    f0, jac, hes = jets
    n, y = N_TRAIN, CASE["train_targets"]
    eta, s = A1
    train = (f0[:n], jac[:n])
    test = (f0[n:], jac[n:])
    o1 = linearised_prediction(*train, y, *test, eta, s, STEPS)
    o2 = quadratic_closure_prediction(*train, hes[:n], y, *test, hes[n:], eta, s, STEPS)
    o2_quiet = quadratic_closure_prediction(*train, hes[:n], y, *test, hes[n:], eta, 0.0, STEPS)
    return o1, o2, o2_quiet


# -- notes 7.2 -------------------------------------------------------------------------------------


def test_intermediate_values(jets):
    f0, jac, hes = jets
    n = N_TRAIN
    jx, jt = jac[:n], jac[n:]
    theta = jx @ jx.T
    cross = jt @ jx.T
    kappa = np.sum(jt**2, axis=1)
    r0 = f0[:n] - CASE["train_targets"]
    assert_printed(f0[:n], F0_X)
    assert_printed(r0, R0)
    assert_printed(f0[n:], F0_XS)
    assert_printed(np.linalg.eigvalsh(theta), EIG_THETA)
    assert_printed(cross, THETA_XS_X)
    assert_printed(kappa, KAPPA_XS)
    posterior = kappa - np.einsum("bi,ij,bj->b", cross, np.linalg.inv(theta), cross)
    assert_printed(posterior, POSTERIOR_VAR)
    assert_printed(np.trace(hes, axis1=1, axis2=2), TR_H)
    hess_l = jx.T @ jx + np.einsum("i,ipq->pq", r0, hes[:n])
    ev = np.linalg.eigvalsh(hess_l)
    assert_printed([np.trace(hess_l), ev[0], ev[-1]], HESS_L)
    assert_printed(np.trace(theta), TR_THETA)


def test_order1_stationary_training_variance(jets):
    f0, jac, _ = jets
    n = N_TRAIN
    eta, s = A1
    o1 = linearised_prediction(
        f0[:n], jac[:n], CASE["train_targets"], f0[n:], jac[n:], eta, s, [100_000]
    )
    assert_printed(o1.train_var[0], STATIONARY_VAR_A1)


# -- notes 7.3 - 7.5 -------------------------------------------------------------------------------


def test_order1_and_order2_columns(predictions):
    o1, o2, o2_quiet = predictions
    for k, t in enumerate(STEPS):
        assert_printed(o1.mean[k], O1_MEAN[t])
        assert_printed(o2.mean[k], O2_MEAN[t])
        assert_printed(o1.var[k], O1_VAR[t])
        assert_printed(o2.var[k], O2_VAR[t])
        assert_printed(o2_quiet.mean[k], O2_NOISELESS[t])
        assert_printed(o1.expected_loss[k], O1_LOSS[t])
        assert_printed(o2.expected_loss[k], O2_LOSS[t])
        assert_printed(o2.trace_kbar[k], TR_KBAR[t])
        assert_printed(o2.closure_indicator[k], CLOSURE[t])
        assert_printed(o1.trace_s[k], O1_TR_S[t])
        assert_printed(o2.trace_s[k], O2_TR_S[t])


def test_noiseless_gd_column():
    phi, dphi, _ = tanh_fns()
    run = noiseless_gd(
        CASE["params"], phi, dphi, CASE["train_inputs"], CASE["train_targets"],
        CASE["test_inputs"], A1[0], STEPS,
    )  # fmt: skip
    for k, t in enumerate(STEPS):
        assert_printed(run.outputs[k], GD[t])


def test_monte_carlo_matches_notes_a1():
    """2e4 antithetic pairs, t <= 10: within 4 combined SE of the notes' MC (2e5 pairs)."""
    phi, dphi, _ = tanh_fns()
    eta, s = A1
    mc = simulate_noisy_gd(
        CASE["params"], phi, dphi, CASE["train_inputs"], CASE["train_targets"],
        CASE["test_inputs"], eta, s, [1, 10], pairs=20_000, seed=12345,
    )  # fmt: skip
    assert mc.paths == 40_000
    for k, t in enumerate([1, 10]):
        for j in range(2):
            lit, se = MC_MEAN[t][j]
            assert abs(mc.mean[k, j] - float(lit)) <= 4 * math.hypot(mc.mean_se[k, j], se)
            lit, se = MC_VAR[t][j]
            assert abs(mc.var[k, j] - float(lit)) <= 4 * math.hypot(mc.var_se[k, j], se)
        lit, se = MC_LOSS[t]
        assert abs(mc.loss_mean[k] - float(lit)) <= 4 * math.hypot(mc.loss_se[k], se)
        # SEs of the right size: 2e4 pairs against the notes' 2e5 (factor sqrt(10))
        assert 2.0 < mc.mean_se[k, 0] / MC_MEAN[t][0][1] < 5.0
        assert 2.0 < mc.var_se[k, 0] / MC_VAR[t][0][1] < 5.0


@pytest.mark.slow
def test_monte_carlo_matches_notes_a1_t200():
    """5e4 pairs to t = 200 (about 40 s): within 4 combined SE of the notes' MC."""
    phi, dphi, _ = tanh_fns()
    eta, s = A1
    mc = simulate_noisy_gd(
        CASE["params"], phi, dphi, CASE["train_inputs"], CASE["train_targets"],
        CASE["test_inputs"], eta, s, [50, 200], pairs=50_000, seed=7,
    )  # fmt: skip
    mean = {50: [(0.8754344, 1.1e-05), (-1.2042993, 1.6e-05)],
            200: [(0.8754222, 3.9e-05), (-1.2280942, 5.9e-05)]}  # fmt: skip
    var = {50: [(1.92765e-03, 6.0e-06), (4.04088e-03, 1.3e-05)],
           200: [(5.46910e-03, 1.7e-05), (1.28715e-02, 3.8e-05)]}  # fmt: skip
    for k, t in enumerate([50, 200]):
        for j in range(2):
            (mu, se_mu), (va, se_va) = mean[t][j], var[t][j]
            assert abs(mc.mean[k, j] - mu) <= 4 * math.hypot(mc.mean_se[k, j], se_mu)
            assert abs(mc.var[k, j] - va) <= 4 * math.hypot(mc.var_se[k, j], se_va)


def test_monte_carlo_without_noise_is_gd():
    phi, dphi, _ = tanh_fns()
    args = (CASE["params"], phi, dphi, CASE["train_inputs"], CASE["train_targets"])
    mc = simulate_noisy_gd(*args, CASE["test_inputs"], 0.05, 0.0, [0, 3], pairs=4, seed=0)
    gd = noiseless_gd(*args, CASE["test_inputs"], 0.05, [0, 3])
    np.testing.assert_allclose(mc.mean, gd.outputs, rtol=0, atol=1e-15)
    np.testing.assert_allclose(mc.var, 0.0, atol=1e-20)
    np.testing.assert_allclose(mc.loss_mean, gd.loss, rtol=1e-14)
    w0 = flatten_params(CASE["params"])
    np.testing.assert_allclose(mc.mean_displacement, gd.weights - w0, atol=1e-15)


# -- internal consistency --------------------------------------------------------------------------


def random_params(rng, widths, d):
    ws, bs, prev = [], [], d
    for width in widths:
        ws.append(rng.standard_normal((width, prev)) / math.sqrt(prev))
        bs.append(0.3 * rng.standard_normal(width))
        prev = width
    return NetworkParams(ws, bs, rng.standard_normal(prev) / math.sqrt(prev))


def test_hessian_routes_agree_tanh_two_layers():
    rng = np.random.default_rng(0)
    params = random_params(rng, [5, 4], 3)
    x = rng.standard_normal((4, 3))
    phi, dphi, d2phi = tanh_fns()
    f1, j1, h1 = network_jets(params, phi, dphi, d2phi, x)
    f2, j2, h2 = network_jets(params, phi, dphi, None, x)  # complex step
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(j1, j2)
    np.testing.assert_allclose(h1, h2, rtol=0, atol=1e-14)
    # gradient against central differences of the value
    w0, h = flatten_params(params), 1e-6
    fd = np.stack(
        [
            (network_jets(unflatten_params(w0 + h * e, params), phi, dphi, d2phi, x)[0]
             - network_jets(unflatten_params(w0 - h * e, params), phi, dphi, d2phi, x)[0])
            / (2 * h)
            for e in np.eye(w0.size)
        ],
        axis=1,
    )  # fmt: skip
    np.testing.assert_allclose(j1, fd, rtol=0, atol=1e-9)


def test_relu_hessian():
    """ReLU (phi'' = 0 off the kink): H against differences of the gradient; tr H = 0."""
    rng = np.random.default_rng(1)
    params = random_params(rng, [8, 8], 3)
    x = rng.standard_normal((3, 3))
    fns = (lambda z: np.maximum(z, 0.0), lambda z: (z > 0) * 1.0, lambda z: 0.0)
    _, jac, hes = network_jets(params, *fns, x)
    w0, h = flatten_params(params), 1e-6
    fd = np.stack(
        [
            (network_jets(unflatten_params(w0 + h * e, params), *fns, x)[1]
             - network_jets(unflatten_params(w0 - h * e, params), *fns, x)[1])
            / (2 * h)
            for e in np.eye(w0.size)
        ],
        axis=2,
    )  # fmt: skip
    np.testing.assert_allclose(hes, fd, rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.trace(hes, axis1=1, axis2=2), 0.0, atol=1e-14)
    assert np.abs(hes).max() > 0.1


@pytest.mark.parametrize("n, n_par", [(3, 7), (6, 4)])
def test_order1_closed_form_equals_weight_space_recursion(n, n_par):
    """Notes 3.2 against the loop of 3.1, also with more data than weights (Theta singular)."""
    rng = np.random.default_rng(2)
    n_test = 2
    jx, jt = rng.standard_normal((n, n_par)), rng.standard_normal((n_test, n_par))
    f0x, f0t, y = rng.standard_normal(n), rng.standard_normal(n_test), rng.standard_normal(n)
    lam_max = np.linalg.eigvalsh(jx @ jx.T)[-1]
    eta, s = 1.5 / lam_max, 0.07
    steps = [0, 1, 2, 5, 17]
    o1 = linearised_prediction(f0x, jx, y, f0t, jt, eta, s, steps)
    m, S, big = np.zeros(n_par), np.zeros((n_par, n_par)), np.eye(n_par) - eta * jx.T @ jx
    for t in range(steps[-1] + 1):
        if t in steps:
            k = steps.index(t)
            np.testing.assert_allclose(o1.mean[k], f0t + jt @ m, atol=1e-12)
            np.testing.assert_allclose(o1.var[k], np.einsum("bp,pq,bq->b", jt, S, jt), atol=1e-12)
            np.testing.assert_allclose(o1.trace_s[k], np.trace(S), atol=1e-12)
            np.testing.assert_allclose(o1.mean_weights[k], m, atol=1e-12)
            np.testing.assert_allclose(o1.train_mean[k], f0x + jx @ m, atol=1e-12)
            train_var = np.einsum("bp,pq,bq->b", jx, S, jx)
            np.testing.assert_allclose(o1.train_var[k], train_var, atol=1e-12)
            loss = 0.5 * np.sum((f0x + jx @ m - y) ** 2 + train_var)
            np.testing.assert_allclose(o1.expected_loss[k], loss, atol=1e-12)
        m = big @ m - eta * jx.T @ (f0x - y)
        S = big @ S @ big + s**2 * np.eye(n_par)
    # with H = 0 the order 2 map is the order 1 recursion
    zero = np.zeros((n, n_par, n_par))
    o2 = quadratic_closure_prediction(f0x, jx, zero, y, f0t, jt, zero[:n_test], eta, s, steps)
    for field in ("mean", "var", "train_mean", "train_var", "expected_loss", "trace_s"):
        np.testing.assert_allclose(getattr(o2, field), getattr(o1, field), atol=1e-12)
    with pytest.raises(UnstableRecursionError):
        linearised_prediction(f0x, jx, y, f0t, jt, 2.01 / lam_max, s, steps)


def test_order2_first_step_is_exact(jets):
    """m_1 = -eta J^T r0, S_1 = s^2 I (notes 7.2); unstable eta raises a clear error."""
    f0, jac, hes = jets
    n, y = N_TRAIN, CASE["train_targets"]
    eta, s = A1
    args = (f0[:n], jac[:n], hes[:n], y, f0[n:], jac[n:], hes[n:])
    o2 = quadratic_closure_prediction(*args, eta, s, [0, 1])
    np.testing.assert_allclose(o2.mean_weights[1], -eta * jac[:n].T @ (f0[:n] - y), atol=1e-15)
    np.testing.assert_allclose(o2.trace_s[1], 16 * s**2, rtol=1e-14)
    np.testing.assert_allclose(o2.mean[0], f0[n:], atol=0)
    np.testing.assert_allclose(o2.var[0], 0.0, atol=0)
    with pytest.raises(UnstableRecursionError, match="step 0"):
        quadratic_closure_prediction(*args, 0.4, s, [5])


def test_helpers():
    assert noise_scale(0.05, 0.2) == pytest.approx(0.01)
    assert noise_scale(0.04, 0.2, "sqrt_eta") == pytest.approx(0.04)
    with pytest.raises(ValueError):
        noise_scale(0.1, 0.1, "eta2")
    w0 = flatten_params(CASE["params"])
    np.testing.assert_array_equal(
        w0, [0.9, -0.6, -0.4, 1.1, 1.3, 0.5, -0.7, -1.2, 0.1, -0.2, 0.3, 0.05, 0.8, -0.5, 0.6, -0.9]
    )
    np.testing.assert_array_equal(flatten_params(unflatten_params(w0, CASE["params"])), w0)
