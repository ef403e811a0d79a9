"""Case A of the Borovykh 2019 notes (borovykh2019.md, section 7): the deterministic columns.

The bundled model models/expectation_tanh.toml is case A (tanh, 2-4-1, P = 16).  Order 1
(section 3.3, output space), order 2 (Gaussian closure, section 4.3) and the noiseless
runs are compared with the notes' tables (sections 7.3-7.5), which were computed
independently (jets by backpropagation and complex-step differentiation, plain numpy
loops).  The notes give 7 decimals for means and 7 significant digits for variances:
absolute 1e-6 for means, losses and traces, relative 1e-6 for variances.
"""

from __future__ import annotations

import numpy as np
import pytest

from netderive.codegen import compile_formulas
from netderive.derivations import derive
from netderive.runtime.session import resolve_model

SETTINGS = {"A1": (0.05, 0.2), "A2": (0.1, 0.25)}
STEPS = (1, 10, 50, 200)

#: section 7.3: (setting, t, test point) -> (E f order 1, E f order 2, Var order 1, Var order 2)
TEST_OUTPUTS = {
    ("A1", 1, 0): (0.8613524, 0.8613195, 3.128604e-04, 3.108266e-04),
    ("A1", 1, 1): (-1.1965847, -1.1965127, 3.283756e-04, 3.262343e-04),
    ("A1", 10, 0): (0.8651726, 0.8652882, 1.023148e-03, 1.001278e-03),
    ("A1", 10, 1): (-1.1726715, -1.1725220, 1.394679e-03, 1.373016e-03),
    ("A1", 50, 0): (0.8749467, 0.8748025, 2.049576e-03, 2.000501e-03),
    ("A1", 50, 1): (-1.2048777, -1.2049017, 4.337204e-03, 4.142847e-03),
    ("A1", 200, 0): (0.8773554, 0.8723095, 5.836692e-03, 5.369992e-03),
    ("A1", 200, 1): (-1.2302904, -1.2280555, 1.488726e-02, 1.161726e-02),
    ("A2", 1, 0): (0.8594014, 0.8592105, 1.955378e-03, 1.931182e-03),
    ("A2", 1, 1): (-1.1871697, -1.1867109, 2.052347e-03, 2.026914e-03),
    ("A2", 10, 0): (0.8713302, 0.8698872, 4.358620e-03, 4.280246e-03),
    ("A2", 10, 1): (-1.1800165, -1.1781707, 7.044431e-03, 6.900136e-03),
    ("A2", 50, 0): (0.8766682, 0.8675154, 1.067384e-02, 1.055933e-02),
    ("A2", 50, 1): (-1.2229937, -1.2178068, 2.488429e-02, 2.119062e-02),
    ("A2", 200, 0): (0.8774346, 0.8468527, 3.434201e-02, 2.092150e-02),
    ("A2", 200, 1): (-1.2311312, -1.2267424, 9.067557e-02, 3.499507e-02),
}
#: section 7.3, last column: order-2 noise shift E f(sigma) - E f(sigma = 0)
NOISE_SHIFT = {
    ("A1", 1): (-0.0000263, 0.0000758), ("A1", 10): (-0.0003521, 0.0005111),
    ("A1", 50): (-0.0016961, 0.0012469), ("A1", 200): (-0.0070185, 0.0028266),
    ("A2", 1): (-0.0001646, 0.0004740), ("A2", 10): (-0.0022391, 0.0022824),
    ("A2", 50): (-0.0110730, 0.0064818), ("A2", 200): (-0.0325281, 0.0046360),
}
#: section 7.4: (setting, t) -> (E L order 1, E L order 2, tr K-bar order 2, closure c_t)
LOSS = {
    ("A1", 1): (0.0183299, 0.0183149, 13.86665, 0.000),
    ("A1", 10): (0.0109281, 0.0109624, 14.13724, 0.004),
    ("A1", 50): (0.0035858, 0.0036943, 14.63767, 0.082),
    ("A1", 200): (0.0022040, 0.0034193, 15.14546, 0.740),
    ("A2", 1): (0.0195529, 0.0194675, 13.94278, 0.001),
    ("A2", 10): (0.0126937, 0.0130146, 14.43122, 0.041),
    ("A2", 50): (0.0078464, 0.0112363, 15.29049, 0.570),
    ("A2", 200): (0.0077241, 0.0154803, 15.35240, 1.452),
}
TRACE_THETA = 14.24348
#: section 7.5: noiseless f_t(x*) order 1 / order 2, (setting, t) -> (x*1 o1, o2, x*2 o1, o2)
NOISELESS = {
    ("A1", 1): (0.8613524, 0.8613458, -1.1965847, -1.1965885),
    ("A1", 10): (0.8651726, 0.8656403, -1.1726715, -1.1730331),
    ("A1", 50): (0.8749467, 0.8764986, -1.2048777, -1.2061486),
    ("A1", 200): (0.8773554, 0.8793280, -1.2302904, -1.2308821),
    ("A2", 1): (0.8594014, 0.8593751, -1.1871697, -1.1871849),
    ("A2", 10): (0.8713302, 0.8721263, -1.1800165, -1.1804532),
    ("A2", 50): (0.8766682, 0.8785884, -1.2229937, -1.2242886),
    ("A2", 200): (0.8774346, 0.8793809, -1.2311312, -1.2313785),
}


@pytest.fixture(scope="module")
def kernels(case_a_builds):
    return {order: b.kernels() for order, b in case_a_builds.items()}


def test_case_a_test_outputs(kernels) -> None:
    for (setting, t, x), (mean1, mean2, var1, var2) in TEST_OUTPUTS.items():
        eta, sigma = SETTINGS[setting]
        for order, mean, var in ((1, mean1, var1), (2, mean2, var2)):
            k = kernels[order]
            assert k.mean_output(t, x, eta, sigma) == pytest.approx(mean, abs=1e-6), \
                (setting, t, x, order)
            assert k.output_variance(t, x, eta, sigma) == pytest.approx(var, rel=1e-6), \
                (setting, t, x, order)
    # the grid kernels (one run of the steps per run of points that share them) agree
    rows = list(TEST_OUTPUTS.items())
    columns = [np.array([float(v) for v in c]) for c in zip(*[
        (t, x, *SETTINGS[s]) for (s, t, x), _ in rows], strict=True)]
    for order, column in ((1, 0), (2, 1)):
        for suffix in ("_grid", "_grid_serial"):
            got = getattr(kernels[order], "mean_output" + suffix)(*columns)
            assert got == pytest.approx([v[column] for _, v in rows], abs=1e-6), (order, suffix)


def test_case_a_noiseless_runs_and_noise_shift(kernels) -> None:
    for (setting, t), (a1, a2, b1, b2) in NOISELESS.items():
        eta, sigma = SETTINGS[setting]
        for x, (o1, o2) in enumerate(((a1, a2), (b1, b2))):
            assert kernels[1].mean_output(t, x, eta, 0.0) == pytest.approx(o1, abs=1e-6)
            noiseless = kernels[2].mean_output(t, x, eta, 0.0)
            assert noiseless == pytest.approx(o2, abs=1e-6), (setting, t, x)
            # order 1: the mean does not see the noise (section 3.4)
            assert kernels[1].mean_output(t, x, eta, sigma) == pytest.approx(
                kernels[1].mean_output(t, x, eta, 0.0), abs=1e-14)
            shift = kernels[2].mean_output(t, x, eta, sigma) - noiseless
            assert shift == pytest.approx(NOISE_SHIFT[setting, t][x], abs=1e-6), (setting, t, x)


@pytest.mark.slow  # compiles further kernels (~10-30 s)
def test_case_a_loss_hessian_trace_and_closure(kernels) -> None:
    for (setting, t), (loss1, loss2, trace2, closure) in LOSS.items():
        eta, sigma = SETTINGS[setting]
        assert kernels[1].expected_loss(t, eta, sigma) == pytest.approx(loss1, abs=1e-6)
        assert kernels[2].expected_loss(t, eta, sigma) == pytest.approx(loss2, abs=1e-6)
        assert kernels[2].loss_hessian_trace(t, eta, sigma) == pytest.approx(trace2, abs=1e-5)
        assert kernels[2].closure_indicator(t, eta, sigma) == pytest.approx(closure, abs=5e-4)
        assert kernels[2].closure_indicator(0, eta, sigma) == 0.0  # S_0 = 0: c_0 = 0
        assert kernels[1].loss_hessian_trace(t, eta, sigma) == pytest.approx(TRACE_THETA,
                                                                             abs=1e-5)


#: section 7.4, "Regularisation seen in the Hessian": order-2 trace of the loss Hessian at
#: the mean weights, noisy minus noiseless
FLATTENING = {("A1", 10): -0.00597, ("A1", 50): -0.04984, ("A1", 200): -0.18345,
              ("A2", 10): -0.05229, ("A2", 50): -0.31663, ("A2", 200): -0.86462}


@pytest.mark.slow  # compiles further kernels (~10-30 s)
def test_case_a_noise_flattens_the_hessian_at_the_mean_weights(kernels) -> None:
    for (setting, t), want in FLATTENING.items():
        eta, sigma = SETTINGS[setting]
        trace = kernels[2].mean_weights_hessian_trace
        got = trace(t, eta, sigma) - trace(t, eta, 0.0)
        assert got == pytest.approx(want, abs=6e-6), (setting, t)
    # order 1 sees no flattening: the linearised loss Hessian is J^T J
    assert kernels[1].mean_weights_hessian_trace(50, 0.05, 0.2) == pytest.approx(
        TRACE_THETA, abs=1e-5)
    # step 0: the Hessian of the true loss at w_0 (notes 7.2: trace 13.81092)
    assert kernels[2].mean_weights_hessian_trace(0, 0.05, 0.2) == pytest.approx(13.81092,
                                                                                abs=6e-6)


#: section 7.3, the Monte Carlo column (4e5 paths of noisy GD on the network): (setting, t,
#: test point) -> (E f, SE)
MONTE_CARLO_MEAN = {
    ("A1", 1, 0): (0.8613201, 4.4e-07), ("A1", 1, 1): (-1.1965137, 4.7e-07),
    ("A1", 10, 0): (0.8653459, 3.1e-06), ("A1", 10, 1): (-1.1724639, 3.7e-06),
    ("A1", 50, 0): (0.8754344, 1.1e-05), ("A1", 50, 1): (-1.2042993, 1.6e-05),
    ("A2", 1, 0): (0.8592170, 2.7e-06), ("A2", 1, 1): (-1.1867138, 2.9e-06),
    ("A2", 10, 0): (0.8702442, 1.7e-05), ("A2", 10, 1): (-1.1777243, 2.2e-05),
    ("A2", 50, 0): (0.8711133, 6.4e-05), ("A2", 50, 1): (-1.2169921, 9.0e-05),
}


@pytest.mark.slow  # the order-3 program compiles in ~50 s
def test_case_a_order3_tracks_the_monte_carlo_longer(kernels) -> None:
    """Order 3 (section 5: the cubic model under the Gaussian closure) agrees with the notes'
    Monte Carlo within 3 SE (+ 1e-6 for the notes' rounding) up to t = 10 and beats order
    2's mean error at every tabulated t >= 10 of both settings."""
    spec = resolve_model("expectation_tanh", cross_checks=True)
    order3 = compile_formulas(derive(spec.with_values({"order": 3})))
    for (setting, t, x), (mc, se) in MONTE_CARLO_MEAN.items():
        eta, sigma = SETTINGS[setting]
        got3 = order3.mean_output(t, x, eta, sigma)
        got2 = kernels[2].mean_output(t, x, eta, sigma)
        if t <= 10:
            assert abs(got3 - mc) <= 3 * se + 1e-6, (setting, t, x, got3, mc)
        if t >= 10:
            assert abs(got3 - mc) < abs(got2 - mc), (setting, t, x, got3, got2, mc)


#: section 7.4: tr S_t at t = 1, 10, 50, 200, orders 1 and 2
TRACE_S = {("A1", 1): (0.00160, 0.01360, 0.06281, 0.24303),
           ("A1", 2): (0.00160, 0.01365, 0.06196, 0.20207),
           ("A2", 1): (0.0100, 0.08211, 0.38484, 1.50991),
           ("A2", 2): (0.0100, 0.08171, 0.33046, 0.68179)}


@pytest.mark.slow  # compiles further kernels (~10-30 s)
def test_case_a_weight_displacement(kernels) -> None:
    """tr S_t (order 1 from the weight-space recursion of section 3.1, order 2 from the
    closure), to the notes' 5 decimals; |m_t| of order 2 is the notes' |E d| of the Monte
    Carlo to their 4 decimals at t = 1, 10, 50 (|E d - m| <= 0.0008 there)."""
    for (setting, order), column in TRACE_S.items():
        eta, sigma = SETTINGS[setting]
        for t, want in zip(STEPS, column, strict=True):
            got = kernels[order].weight_variance_trace(t, eta, sigma)
            assert got == pytest.approx(want, abs=6e-6), (setting, order, t)
    for t, norm in ((1, 0.0134), (10, 0.0712), (50, 0.1779)):
        assert kernels[2].weight_mean_norm(t, 0.05, 0.2) == pytest.approx(norm, abs=9e-4)
