"""Section 6 of the notes (lisaad2020.md) reproduced by the generated kernels.

Typical overlaps and N Var, sign and ReLU, all perturbation cases; sign rate functions by
dynamic programming on 4001 points (envelope and plain DP) and by the saddle point +
Legendre route; SCGF values; ReLU rate functions by DP on 1001 points and by the saddle
point of the path (Newton continuation, lambda = I_L'(r): the Legendre route).  The notes
give 5-6 decimals: tolerances are half a unit of the last digit given, except where the
notes' own DP grid (1001 points) is coarser than that (stated at the test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from netderive.codegen import compile_formulas
from netderive.derivations import derive, parse_model

LAYERS = range(1, 7)
#: (perturbation, p) -> (sign q_l, sign V_l, ReLU r_l, ReLU V_l, ReLU r*) for l = 1..6
TYPICAL = {
    ("dilution", 0.1): (
        (.795167, .544107, .345297, .212464, .129203, .078229),
        (.36771, 1.01519, 1.38557, 1.52100, 1.56160, 1.57217),
        (.952181, .912384, .880458, .855509, .836386, .821935),
        (.01617, .06104, .12625, .19808, .26603, .32446), .781117),
    ("dilution", 0.3): (
        (.630990, .354059, .191457, .102418, .054618, .029102),
        (.60185, 1.11136, 1.30897, 1.37064, 1.38874, 1.39396),
        (.856638, .762636, .704670, .670217, .650182, .638678),
        (.12104, .32256, .48988, .59675, .65731, .69018), .623552),
    ("dilution", 0.5): (
        (.500000, .230053, .104023, .046869, .021102, .009500),
        (.75000, 1.12077, 1.22247, 1.24687, 1.25250, 1.25378),
        (.755409, .631984, .574097, .547891, .536220, .531060),
        (.28763, .55124, .67064, .71447, .72967, .73517), .527001),
    ("binarization", 0.0): (
        (.588095, .310938, .159608, .081293, .041322, .020993),
        (.65414, 1.11975, 1.28238, 1.32972, 1.34283, 1.34640),
        (.825439, .719551, .659438, .626561, .608947, .599614),
        (.16874, .40476, .56929, .65808, .70154, .72234), .589277),
}
SIGN_Q = (-.5, -.25, 0.0, .25, .5, .75, .9)
SIGN_RATES = {
    ("dilution", 1): (1.17371, .80315, .50023, .26048, .08838, .00261, .01807),
    ("dilution", 2): (.43270, .25115, .12157, .03770, .00094, .02421, .08758),
    ("dilution", 3): (.24549, .11940, .04054, .00320, .00908, .07097, .15511),
    ("binarization", 1): (.68040, .41249, .21221, .07511, .00565, .02253, .09957),
    ("binarization", 2): (.27577, .13048, .04074, .00163, .01697, .10456, .21684),
    ("binarization", 3): (.17155, .06436, .00979, .00323, .04866, .16388, .29143),
}
RELU_R = (.3, .5, .6, .7, .8, .9, .95, .99)
RELU_RATES = {
    ("dilution", 1): (.40861, .32118, .27014, .20957, .13381, .03783, .00014, .14233),
    ("dilution", 2): (.30212, .20046, .14947, .09687, .04319, .00110, .01913, .23145),
    ("dilution", 3): (.22503, .13154, .08974, .05023, .01525, .00178, .04099, .27319),
    ("binarization", 1): (.21297, .11358, .06833, .02815, .00169, .02562, .11302, .40132),
    ("binarization", 2): (.11403, .03839, .01341, .00045, .01025, .08257, .19877, .50387),
    ("binarization", 3): (.07644, .01745, .00278, .00157, .02480, .11240, .23656, .54570),
}


def _model(activation: str, perturbation: str, depth: int = 3):
    raw = {"family": "large_deviation", "activation": activation, "perturbation": perturbation,
           "depth": depth, "p": 0.1}
    fs = derive(parse_model(raw, f"ld_{activation}_{perturbation}.toml"))
    return fs, compile_formulas(fs)


@pytest.fixture(scope="module")
def models(kernel_cache_dir):
    return {(a, pert): _model(a, pert) for a in ("sign", "relu")
            for pert in ("dilution", "binarization")}


def _call(kernels, fs, name: str, **values) -> float:
    defaults = {p.name: p.default for p in fs.params}
    merged = {**defaults, **values}
    return getattr(kernels, name)(*(merged[a] for a in fs.arguments(name)))


_CURVES: dict = {}


def _curves(kernels, fs, depth: int, p: float, grid: int, dp: bool = False):
    """The DP curves (memoised: the ReLU DP on 1001 points takes ~10 s)."""
    key = (id(kernels), depth, p, grid, dp)
    if key not in _CURVES:
        values = {**{p_.name: p_.default for p_ in fs.params}, "depth": depth, "p": p,
                  "grid_size": grid}
        args = [values[a] for a in fs.arguments("rate_function") if a != "q"]
        fn = kernels.rate_function_curves_dp if dp else kernels.rate_function_curves
        _CURVES[key] = (kernels, fn(*args))  # the kernels object keeps its id unique
    return _CURVES[key][1]


@pytest.mark.parametrize("case", sorted(TYPICAL))
def test_typical_overlaps_and_sign_variance(models, case) -> None:
    perturbation, p = case
    sign_q, sign_v, relu_r, _, relu_fixed = TYPICAL[case]
    fs, k = models[("sign", perturbation)]
    for layer, q, v in zip(LAYERS, sign_q, sign_v, strict=True):
        assert _call(k, fs, "typical_overlap", depth=layer, p=p) == pytest.approx(q, abs=5e-7)
        assert _call(k, fs, "overlap_variance", depth=layer, p=p) == pytest.approx(v, abs=5e-6)
    fs, k = models[("relu", perturbation)]
    for layer, r in zip(LAYERS, relu_r, strict=True):
        assert _call(k, fs, "typical_overlap", depth=layer, p=p) == pytest.approx(r, abs=5e-7)
    assert _call(k, fs, "fixed_point", p=p) == pytest.approx(relu_fixed, abs=5e-7)
    assert 0 < _call(k, fs, "fixed_point_slope", p=p) < 1  # stable


def test_input_sensitivity_without_perturbation(models) -> None:
    """rho = 1 (p = 0), q_0 = 0.9: sign decorrelates, ReLU merges inputs (notes section 6)."""
    fs, k = models[("sign", "dilution")]
    got = [_call(k, fs, "typical_overlap", depth=d, p=0.0, input_overlap=0.9) for d in (1, 2, 3, 4)]
    np.testing.assert_allclose(got, (.712867, .505208, .337168, .218938), atol=5e-7)
    fs, k = models[("relu", "dilution")]
    got = [_call(k, fs, "typical_overlap", depth=d, p=0.0, input_overlap=0.9) for d in (1, 2, 3, 4)]
    np.testing.assert_allclose(got, (.909538, .917741, .924851, .931057), atol=5e-7)


def relu_delta_variance(c: float) -> float:
    """N Var of the normalised ReLU overlap after one layer, by 2-D quadrature of the moments
    of T = (phi(u)phi(v), phi(u)^2, phi(v)^2) and the delta method (independent of sympy)."""
    s = math.sqrt(1 - c * c)

    def moment(f) -> float:
        def g(z2: float, z1: float) -> float:
            a, b = max(z1, 0.0), max(c * z1 + s * z2, 0.0)
            return f(a, b) * math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)
        return integrate.dblquad(g, -12, 12, -12, 12, epsabs=1e-12, epsrel=1e-11)[0]

    k, xx, xy = moment(lambda a, b: a * b), moment(lambda a, b: a * a * b * b), moment(
        lambda a, b: a**3 * b)
    mean = np.array([k, 0.5, 0.5])
    cov = np.array([[xx - k * k, xy - k / 2, xy - k / 2],
                    [xy - k / 2, 1.5 - .25, xx - .25],
                    [xy - k / 2, xx - .25, 1.5 - .25]])
    grad = np.array([1 / 0.5, -mean[0] / (2 * .25), -mean[0] / (2 * .25)])
    return float(grad @ cov @ grad)


@pytest.mark.parametrize("case", [("dilution", 0.1), ("binarization", 0.0)])
def test_relu_variance(models, case) -> None:
    """Layer 1 equals the quadrature delta method to 1e-8.  The notes' ReLU N Var column is
    ~0.7% lower than the exact delta method (0.01617 vs 0.016282 at dilution 0.1, layer 1;
    a 4e7-sample Monte Carlo of the linearised statistic gives 0.016297 +- 0.000011), so
    the table is compared at 1.5% relative."""
    perturbation, p = case
    fs, k = models[("relu", perturbation)]
    rho = _call(k, fs, "weight_correlation", p=p)
    assert _call(k, fs, "overlap_variance", depth=1, p=p) == pytest.approx(
        relu_delta_variance(rho), abs=1e-8)
    for layer, v in zip(LAYERS, TYPICAL[case][3], strict=True):
        assert _call(k, fs, "overlap_variance", depth=layer, p=p) == pytest.approx(v, rel=0.015)


@pytest.mark.parametrize("case", [c if c[1] < 3 else pytest.param(c, marks=pytest.mark.slow)
                                  for c in sorted(SIGN_RATES)])
def test_sign_rate_functions_by_dp_and_legendre(models, case) -> None:
    perturbation, depth = case
    fs, k = models[("sign", perturbation)]
    x, fast = _curves(k, fs, depth, 0.1, 4001)
    _, slow = _curves(k, fs, depth, 0.1, 4001, dp=True)
    np.testing.assert_allclose(fast, slow, rtol=1e-11, atol=1e-12)  # envelope == plain DP
    got = np.interp(SIGN_Q, x, fast[depth - 1])
    np.testing.assert_allclose(got, SIGN_RATES[case], atol=5e-6)
    legendre = [_call(k, fs, "rate_function_legendre", depth=depth, q=q) for q in SIGN_Q]
    np.testing.assert_allclose(legendre, SIGN_RATES[case], atol=5e-6)
    # the public kernel (grid_size 1001 by default) agrees to the grid's accuracy
    dp_default = [_call(k, fs, "rate_function", depth=depth, q=q) for q in SIGN_Q]
    np.testing.assert_allclose(dp_default, SIGN_RATES[case], atol=2e-5)


def test_sign_endpoints_and_scgf(models) -> None:
    fs, k = models[("sign", "dilution")]
    for depth, top, bottom in ((1, .108049, 2.27871), (2, .199033, 1.11648),
                               (3, .278597, .79950)):
        assert _call(k, fs, "rate_function", depth=depth, q=1.0) == pytest.approx(top, abs=5e-7)
        assert _call(k, fs, "rate_function", depth=depth, q=-1.0) == pytest.approx(
            bottom, abs=5e-6)
    mu1 = 2 / math.pi * math.asin(math.sqrt(0.9))
    assert _call(k, fs, "rate_function", depth=1, q=1.0) == pytest.approx(
        -math.log((1 + mu1) / 2), rel=1e-12)
    for lam, want in ((-2, 1.215395), (-1, .312851), (-.5, .011674), (.5, .306723),
                      (1, .749699), (2, 1.725026)):
        assert _call(k, fs, "scgf", depth=3, tilt=lam) == pytest.approx(want, abs=5e-7)
    fs, k = models[("sign", "binarization")]
    for lam, want in ((-1, .256355), (.5, .271107), (1, .683174)):
        assert _call(k, fs, "scgf", depth=2, tilt=lam) == pytest.approx(want, abs=5e-7)


def test_scgf_is_the_legendre_transform_of_the_dp_rate(models) -> None:
    """Lambda_L(lambda) = max_q [lambda q - I_L(q)] over the DP curve (4001 points)."""
    fs, k = models[("sign", "dilution")]
    x, curves = _curves(k, fs, 3, 0.1, 4001)
    for lam in (-1.0, 0.5, 1.5):
        discrete = np.max(lam * x - curves[2])
        assert _call(k, fs, "scgf", depth=3, tilt=lam) == pytest.approx(discrete, abs=2e-6)


@pytest.mark.parametrize("perturbation", [
    "dilution", pytest.param("binarization", marks=pytest.mark.slow)])
def test_relu_rate_functions_by_dp(models, perturbation) -> None:
    fs, k = models[("relu", perturbation)]
    x, curves = _curves(k, fs, 3, 0.1, 1001)
    for depth in (1, 2, 3):
        got = np.interp(RELU_R, x, curves[depth - 1])
        np.testing.assert_allclose(got, RELU_RATES[(perturbation, depth)], atol=5e-6)
        # the minimum (zero) sits at the typical overlap
        typical = _call(k, fs, "typical_overlap", depth=depth, p=0.1)
        assert abs(x[np.argmin(curves[depth - 1])] - typical) <= 1.5e-3
        assert curves[depth - 1].min() < 1e-5  # the grid step is 1e-3, V ~ 0.02


#: notes section 6: the dil .1, L = 2 row "confirmed by continuous minimization"
RELU_CONTINUOUS = {0.5: .20046, 0.7: .09686, 0.9: .00110, 0.99: .23144}


@pytest.mark.parametrize("perturbation", [
    "dilution", pytest.param("binarization", marks=pytest.mark.slow)])
def test_relu_rate_functions_by_saddle_point_and_legendre(models, perturbation) -> None:
    """``rate_function_legendre``: the stationary path of sum_l ln M(kappa_l; r_l, rho r_{l-1})
    with r_L = r, by Newton continuation from the typical path; its multiplier is
    lambda = I_L'(r) and the value lambda r - Lambda_L(lambda).  Against the notes' DP table
    within the table's own grid error (its 1001-point DP lies up to 2e-5 above the continuum:
    0.04099 / 0.27319 at L = 3 against 0.040977 / 0.273170 here), the notes'
    continuous-minimisation row to 5e-6, and the reference's own continuous minimisation
    (Nelder-Mead over the inner overlaps, scipy Chernoff transforms) to 2e-6 -- on both sides
    of the typical overlap, also where I_L is concave."""
    from netderive.runtime.families.large_deviation import reference_sampling as tails

    fs, k = models[("relu", perturbation)]
    rho = _call(k, fs, "weight_correlation", p=0.1)
    for depth in (1, 2, 3):
        saddle = [_call(k, fs, "rate_function_legendre", depth=depth, q=r, p=0.1)
                  for r in RELU_R]
        np.testing.assert_allclose(saddle, RELU_RATES[(perturbation, depth)], atol=2.5e-5)
        for r, got in zip(RELU_R[::3], saddle[::3], strict=True):
            _, reference = tails.relu_optimal_path(rho, depth, r)
            assert got == pytest.approx(reference, abs=2e-6), (depth, r)
    for r in (-0.1, 1.1):  # outside the range of a normalised ReLU overlap
        assert _call(k, fs, "rate_function_legendre", depth=2, q=r, p=0.1) == math.inf
    if perturbation == "dilution":
        for r, want in RELU_CONTINUOUS.items():
            got = _call(k, fs, "rate_function_legendre", depth=2, q=r, p=0.1)
            assert got == pytest.approx(want, abs=5e-6)


@pytest.mark.slow
def test_relu_scgf_by_saddle_point(models) -> None:
    """``scgf`` (tilt mode) against the discrete Legendre transform max_r [lambda r - I_L(r)]
    of the 1001-point DP (its grid error: 3e-5), for tilts whose branch from lambda = 0 stays
    the global maximum; and the two modes agree: Lambda_L(I_L'(r)) = I_L'(r) r - I_L(r) with
    I_L'(r) the target mode's multiplier."""
    fs, k = models[("relu", "dilution")]
    x, curves = _curves(k, fs, 3, 0.1, 1001)
    for depth in (1, 2, 3):
        for lam in (-0.5, 0.5, 2.0, 5.0):
            discrete = float(np.max(lam * x - curves[depth - 1]))
            assert _call(k, fs, "scgf", depth=depth, tilt=lam, p=0.1) == pytest.approx(
                discrete, abs=3e-5)
        for r in (0.92, 0.95, 0.99):
            values = {**{p_.name: p_.default for p_ in fs.params}, "depth": depth, "q": r,
                      "p": 0.1}
            path = k.rate_function_legendre_path(
                *(values[a] for a in fs.arguments("rate_function_legendre")))
            lam, action, end = path[-1, :3]
            assert end == pytest.approx(r, abs=1e-12)
            assert _call(k, fs, "scgf", depth=depth, tilt=lam, p=0.1) == pytest.approx(
                lam * r + action, abs=1e-9)


@pytest.mark.parametrize("activation", ["sign", "relu"])
def test_one_layer_rate_is_the_legendre_transform_of_the_one_layer_scgf(models, activation):
    """sign: J(q|q') = sup_lambda [lambda q - Lambda(lambda|q')]; ReLU (normalised overlap):
    J(r|r') = sup_kappa [-ln M_r(kappa)] with the SCGF item at tilt = kappa.  The supremum is
    taken here by scipy's bounded scalar minimiser on the SCGF kernel."""
    from scipy import optimize

    fs, k = models[(activation, "dilution")]
    for q, q_prev in ((0.3, 0.9), (0.7, 0.5), (0.95, 1.0)):
        def negative(lam: float, q=q, q_prev=q_prev) -> float:
            scgf = _call(k, fs, "one_layer_scgf", tilt=lam, q=q, q_prev=q_prev)
            return scgf - lam * q if activation == "sign" else scgf

        bounds = (-30.0, 30.0) if activation == "sign" else (-1 / (q * 0.5), 1 / (1 - q) / 2)
        best = optimize.minimize_scalar(negative, bounds=bounds, method="bounded",
                                        options={"xatol": 1e-10})
        assert _call(k, fs, "one_layer_rate", q=q, q_prev=q_prev) == pytest.approx(
            -best.fun, abs=1e-8)


def test_relu_one_layer_rate_at_the_ends(models) -> None:
    """r = 0: every unit has phi(h) phi(h-hat) = 0, J = -ln P(not both positive) =
    -ln(3/4 - asin(c)/(2 pi)); r = 1: J -> -ln P(both negative) = -ln(1/4 + asin(c)/(2 pi)),
    approached as kappa -> inf with an O(kappa^-1/2) gap (the bracket stops at 1e10)."""
    fs, k = models[("relu", "dilution")]
    c = math.sqrt(0.9) * 0.8
    at_zero = _call(k, fs, "one_layer_rate", q=0.0, q_prev=0.8, p=0.1)
    assert at_zero == pytest.approx(-math.log(0.75 - math.asin(c) / (2 * math.pi)), abs=1e-8)
    at_one = _call(k, fs, "one_layer_rate", q=1.0, q_prev=0.8, p=0.1)
    assert at_one == pytest.approx(-math.log(0.25 + math.asin(c) / (2 * math.pi)), abs=1e-4)


def test_one_layer_saddle_route_has_no_tilt_bound(models) -> None:
    """L = 1: theta_1 = lambda, so the SCGF is ln(cosh + mu sinh) for any tilt, and the
    Legendre rate reaches the ends q = +-0.99 (exact: the binary relative entropy)."""
    fs, k = models[("sign", "dilution")]
    mu = 2 / math.pi * math.asin(math.sqrt(0.9))
    for lam in (-20.0, -5.0, 5.0, 20.0):
        want = math.log(math.cosh(lam) + mu * math.sinh(lam))
        assert _call(k, fs, "scgf", depth=1, tilt=lam) == pytest.approx(want, abs=1e-9)
    for q in (-0.99, 0.99):
        assert _call(k, fs, "rate_function_legendre", depth=1, q=q) == pytest.approx(
            _call(k, fs, "one_layer_rate", q=q, q_prev=1.0), rel=1e-9)
