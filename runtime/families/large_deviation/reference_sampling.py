"""Independent numpy/scipy samplers for the tails of the overlap laws of Li & Saad (2020).

An *independent reference implementation*, like :mod:`.reference` (which it extends): written
by hand from the notes ``lisaad2020.md`` and first principles, with no generated code and
nothing from ``derivations``, ``codegen`` or other ``runtime`` modules (only
``runtime.progress``). Four tools:

1. :func:`sign_network_sample` -- exact and O(N) per layer sampler of *full finite* sign networks
   (dilution, binarization, no perturbation). It collapses the N x N weight matrix: for sign units
   the next layer depends on the previous one only through the number ``k`` of units on which the
   two networks agree (a derivation is in the function's docstring). It reproduces
   :func:`.reference.sample_overlaps` in law (tested at small N) and makes N = 1000 with
   thousands of networks cheap.
2. Exponential tilting (importance sampling) of the Gaussian-level ReLU chain of the normalised
   overlap (notes 4.4): :func:`relu_tilted_mgf`, :func:`relu_tilted_pairs`,
   :func:`relu_one_layer_rate`, :func:`relu_optimal_path`, :func:`relu_tilted_chain_sample`. The
   tilted pair law is a mixture of four quadrant-restricted Gaussians, sampled exactly in polar
   coordinates; no quantity of the notes' closed forms is used.
3. The Gaussian-level chain of ``(q, Q, Q_hat)`` for a bounded activation (e.g. ``tanh``) with
   optional exponential tilts of ``X = phi(h) phi(h_hat)`` (rejection sampling), and its mean field
   by high-order Gauss-Hermite quadrature: :func:`generic_chain_sample`,
   :func:`generic_mean_field`, :func:`generic_tilted_mgf`, :func:`generic_cramer_tilt`,
   :func:`generic_frozen_norm_tilts`.
4. The exact multi-layer rate function of that chain for the observable
   ``q_L / sqrt(Q_L^typ Q_hat_L^typ)``: the one-step 3-D Cramer rate of ``(q, Q, Q_hat)``
   (:func:`generic_log_mgf_3d`, :func:`generic_cramer_rate_3d`) and its contraction over the
   intermediate states by continuous minimisation (:func:`generic_exact_path`,
   :func:`generic_exact_rate`), with no frozen-norm approximation.

Importance-sampling estimates are unbiased for any tilt; the tilts only decide the variance.
:func:`weighted_log_probability` turns samples and log-weights into ``ln P(lo <= x < hi)`` with a
standard error.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.special
import scipy.stats

from netderive.runtime.progress import progress

__all__ = [
    "ExactRatePath",
    "generic_chain_sample",
    "generic_cramer_rate_3d",
    "generic_cramer_tilt",
    "generic_exact_path",
    "generic_exact_rate",
    "generic_frozen_norm_tilts",
    "generic_log_mgf_3d",
    "generic_mean_field",
    "generic_tilted_mgf",
    "relu_one_layer_rate",
    "relu_optimal_path",
    "relu_tilted_chain_sample",
    "relu_tilted_mgf",
    "relu_tilted_pairs",
    "sign_network_sample",
    "weighted_log_probability",
]

#: Memory budget (bytes) of the per-batch work arrays.
MEMORY_BUDGET = 200_000_000


# ----------------------------------------------------------------------------------------------
# 1. full finite sign networks, collapsed to the number of agreeing units


@functools.lru_cache(maxsize=8)
def _half_normal_sum_positive(n: int) -> np.ndarray:
    """``P(R_1 + ... + R_m - R_(m+1) - ... - R_n > 0)`` for ``m = 0..n``, ``R_j`` iid ``|N(0,1)|``.

    Gil-Pelaez inversion, ``P(D > 0) = 1/2 + (1/pi) int_0^inf Im phi_D(t) / t dt``, with the
    half-normal characteristic function ``phi(t) = e^(-t^2/2) (1 + i erfi(t/sqrt 2)) =
    w(t/sqrt 2)`` (Faddeeva ``w``): writing ``ln phi = alpha + i beta``,
    ``Im phi_D / t = e^(n alpha) sin((2m - n) beta) / t``. Composite Gauss-Legendre on
    ``[0, 60/sqrt n]``
    (``e^(n alpha) < 1e-250`` beyond). ``D`` has a density, so ``>`` and ``>=`` agree.
    """
    top = 60.0 / math.sqrt(n)
    panels = 250  # composite 16-point Gauss-Legendre
    nodes, weights = np.polynomial.legendre.leggauss(16)
    edges = np.linspace(0.0, top, panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    t = (edges[:-1, None] + half * (nodes + 1.0)).ravel()
    weights = (half * weights).ravel()
    log_phi = np.log(scipy.special.wofz(t / math.sqrt(2.0)))
    envelope = np.exp(n * log_phi.real) / t
    m = np.arange(n + 1)
    integral = np.sin(np.outer(2 * m - n, log_phi.imag)) @ (envelope * weights)
    out = np.clip(0.5 + integral / math.pi, 0.0, 1.0)
    out[0], out[n] = 0.0, 1.0
    return out


def _binomial_window(k: np.ndarray, prob: float, width: float = 10.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges ``[lo, hi]`` of ``Bin(k, prob)`` holding all but ~1e-22 of the mass."""
    sd = np.sqrt(k * prob * (1.0 - prob))
    lo = np.maximum(0, np.floor(k * prob - width * sd - 2)).astype(np.int64)
    hi = np.minimum(k, np.ceil(k * prob + width * sd + 2)).astype(np.int64)
    return lo, hi


@functools.lru_cache(maxsize=16)
def sign_network_agreement(perturbation: str, p: float, n: int) -> np.ndarray:
    """``pi(k) = P(s_i = s_hat_i | k)`` for ``k = 0..N`` agreeing units in the previous layer.

    Exact for full sign networks (see :func:`sign_network_sample`): the expectation over the
    binomial counts of the conditional agreement probability,

    - dilution: ``1/2 + arcsin((K_A - K_B) / sqrt(N (K_A + K_B))) / pi`` (the quadrant
      probability of the Gaussian pair; ``1/2`` when ``K_A + K_B = 0``: ``h_hat = 0``, ``s_hat =
      +1`` and ``P(h >= 0) = 1/2``), ``K_A ~ Bin(k, 1-p)``, ``K_B ~ Bin(N-k, 1-p)``;
    - binarization: ``pi_N(n_A + n_B)`` if ``h_hat >= 0`` else ``1 - pi_N(n_A + n_B)``, with
      ``h_hat ~ (2 n_A - k) - (2 n_B - (N - k))``, ``n_A ~ Bin(k, 1/2)``, ``n_B ~ Bin(N-k, 1/2)``.

    The double sums run over windows of +-10 standard deviations.
    """
    if perturbation not in ("dilution", "binarization", "none"):
        raise ValueError("perturbation must be 'dilution', 'binarization' or 'none'")
    prob = 0.5 if perturbation == "binarization" else 1.0 if perturbation == "none" else 1.0 - p
    table = _half_normal_sum_positive(n) if perturbation == "binarization" else None
    out = np.empty(n + 1)
    ks = np.arange(n + 1)
    lo_a, hi_a = _binomial_window(ks, prob)
    lo_b, hi_b = _binomial_window(n - ks, prob)
    if table is not None:
        span = int((hi_b - lo_b).max()) + 1
        windows = np.lib.stride_tricks.sliding_window_view(
            np.concatenate([table, np.ones(span)]), span)
    for k in range(n + 1):
        ka = np.arange(lo_a[k], hi_a[k] + 1)
        kb = np.arange(lo_b[k], hi_b[k] + 1)
        pa = scipy.stats.binom.pmf(ka, k, prob)
        pb = scipy.stats.binom.pmf(kb, n - k, prob)
        if table is None:
            x, y = ka[:, None], kb[None, :]
            total = x + y
            corr = (x - y) / np.sqrt(n * np.maximum(total, 1))
            out[k] = pa @ (0.5 + np.arcsin(np.clip(corr, -1.0, 1.0)) / np.pi) @ pb
        else:
            # positive[i, j] = pi_N(n_A + n_B) is a Hankel matrix: a view of the table. h_hat >= 0
            # iff n_A - n_B >= k - N/2, i.e. j <= i + lo_a - lo_b - (k - N/2) (lower triangle)
            positive = windows[lo_a[k] + lo_b[k]: lo_a[k] + lo_b[k] + ka.size, :kb.size]
            shift = math.floor(lo_a[k] - lo_b[k] - (k - n / 2))
            out[k] = 1.0 - pa @ positive @ pb + pa @ np.tril(2.0 * positive - 1.0, shift) @ pb
    return out


def sign_network_sample(
    perturbation: str,
    p: float,
    depth: int,
    n: int,
    networks: int,
    rng: np.random.Generator,
    input_overlap: float = 1.0,
    *,
    distribution: bool = False,
) -> np.ndarray:
    """Exact law of ``q_1..q_L`` of full finite sign networks, sampled in O(1) per layer.

    Same model as :func:`.reference.sample_overlaps` with ``"sign"`` units
    (``sgn(0) = +1``), Gaussian weights and ``perturbation`` in ``"dilution"``,
    ``"binarization"`` or ``"none"``. Returns ``(networks, depth)`` samples of ``q_l``; with
    ``distribution=True`` instead the exact law, ``(depth, N + 1)`` probabilities of
    ``q = 2k/N - 1`` (``networks`` and ``rng`` unused).

    Derivation. Let ``A`` be the units of layer ``l-1`` where ``s_j = s_hat_j`` (``|A| = k``) and
    ``B`` the others. ``G_ij = W_ij s_j`` are iid ``N(0, sigma^2/N)`` whatever ``s`` is, and rows
    ``i`` are iid given layer ``l-1``; so the units of layer ``l`` agree independently, each with
    probability ``pi(k)`` (:func:`sign_network_agreement`), and ``k_l ~ Bin(N, pi(k_(l-1)))``.

    - Dilution (mask ``c_ij``): ``h_i = sum_j G_ij``, ``h_hat_i = sum_A c_ij G_ij -
      sum_B c_ij G_ij``; given ``K_A = sum_A c_ij`` and ``K_B = sum_B c_ij`` the pair is Gaussian
      with ``Var h = 1``, ``Var h_hat = (K_A + K_B)/N``, ``Cov = (K_A - K_B)/N`` (unit sigma).
    - Binarization (``W_hat = alpha sgn W``): with ``e_j = sgn(G_ij)`` (iid fair signs) and
      ``R_j = |G_ij|``, ``h_hat_i ~ sum_A e_j - sum_B e_j`` is fixed by the numbers ``n_A``,
      ``n_B`` of ``e_j = +1`` in ``A`` and ``B``, and ``h_i = sum_(e=+1) R_j - sum_(e=-1) R_j``
      is positive with probability ``pi_N(n_A + n_B)`` (:func:`_half_normal_sum_positive`),
      independently of ``h_hat``.
    """
    if depth < 1 or n < 1 or networks < 1:
        raise ValueError("depth, n and networks must be positive")
    flips = int(round(n * (1.0 - input_overlap) / 2.0))
    agreement = sign_network_agreement(perturbation, float(p), int(n))
    if distribution:
        ks = np.arange(n + 1)
        law = np.empty((depth, n + 1))
        law[0] = scipy.stats.binom.pmf(ks, n, agreement[n - flips])
        if depth > 1:
            transition = scipy.stats.binom.pmf(ks[None, :], n, agreement[:, None])
            for layer in range(1, depth):
                law[layer] = law[layer - 1] @ transition
        return law
    out = np.empty((networks, depth))
    k = np.full(networks, n - flips, dtype=np.int64)
    for layer in range(depth):
        k = rng.binomial(n, agreement[k])
        out[:, layer] = 2.0 * k / n - 1.0
    return out


# ----------------------------------------------------------------------------------------------
# 2. exponential tilting of the Gaussian-level ReLU chain
#
# Pair (u, v) ~ N(0, [[1, c], [c, 1]]), D = 1 - c^2. Tilt statistic for a target overlap s:
#     T = u+ v+ - (s/2) (u+^2 + v+^2),        (x+ = max(x, 0))
# so that N * mean(T) = N [X - s (Y + Z)/2] vanishes when r = X / sqrt(Y Z) = s and Y = Z. On each
# sign quadrant kappa T = -x^T K x / 2 is a quadratic form, so the tilted density
# phi_c(x) e^(kappa T(x)) is exp(-x^T P x / 2) / (2 pi sqrt D) with P = C^-1 + K on that quadrant.
# In polar coordinates a quadrant's mass is int dtheta / A(theta), A(theta) = e(theta)^T P e(theta);
# with t = tan(theta) it is Z(a, b, d) = int_0^inf dt / (a + 2 b t + d t^2) along the direction
# (sx, sy t), where b carries the sign sx*sy. Given the direction, x^T P x / 2 ~ Exp(1).


def _quadrant_forms(kappa: np.ndarray, slope: np.ndarray, c: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, b, d)`` of the four quadrants (last axis: ``++``, ``+-``, ``-+``, ``--``).

    ``b`` is already multiplied by the direction's sign product, so that the quadrant is the image
    of ``t > 0`` under ``x = rho0 (sx, sy t)`` and its form is ``a + 2 b t + d t^2``.
    """
    kappa, slope, c = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                            (kappa, slope, c)))
    d_ = 1.0 - c * c
    inv = 1.0 / d_
    off = -c * inv
    ks = kappa * slope
    a = np.stack([inv + ks, inv + ks, inv, inv], axis=-1)
    d = np.stack([inv + ks, inv, inv + ks, inv], axis=-1)
    b = np.stack([off - kappa, -off, -off, off], axis=-1)
    return a, b, d


def _half_line_mass(a: np.ndarray, b: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``Z = int_0^inf dt / (a + 2 b t + d t^2)``; ``inf`` where the form is not positive on t > 0.

    ``Delta = a d - b^2``: ``atan2(sqrt Delta, b) / sqrt Delta`` if ``Delta > 0``;
    ``artanh(s / b) / s`` with ``s = sqrt(-Delta)`` if ``Delta < 0 < b``; ``1 / b`` at
    ``Delta = 0 < b``.
    """
    a, b, d = np.broadcast_arrays(a, b, d)
    delta = a * d - b * b
    out = np.full(a.shape, np.inf)
    ok = (a > 0) & (d > 0)
    pos = ok & (delta > 0)
    root = np.sqrt(np.where(pos, delta, 1.0))
    out = np.where(pos, np.arctan2(root, b) / root, out)
    neg = ok & (delta <= 0) & (b > 0)
    b_safe = np.where(neg, b, 1.0)
    s = np.sqrt(np.where(neg, -delta, 0.0))
    ratio = np.minimum(s / b_safe, 1.0 - 1e-16)
    hyper = np.where(s > 0, np.arctanh(ratio) / np.where(s > 0, s, 1.0), 1.0 / b_safe)
    return np.where(neg, hyper, out)


def _half_line_quantile(a: np.ndarray, b: np.ndarray, d: np.ndarray, w: np.ndarray
                        ) -> np.ndarray:
    """``t > 0`` whose upper tail mass ``int_t^inf`` is the fraction ``w`` in (0, 1] of ``Z``.

    Tail: ``arccot((d t + b) / sqrt Delta) / sqrt Delta`` (``Delta > 0``) or
    ``artanh(s / (d t + b)) / s`` (``Delta < 0``), inverted in closed form.
    """
    delta = a * d - b * b
    pos = delta > 0
    root = np.sqrt(np.abs(delta))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.arctan2(root, b)
        t_pos = (root / np.tan(w * alpha) - b) / d
        beta = np.arctanh(np.minimum(root / np.where(pos, 1.0, b), 1.0 - 1e-16))
        t_neg = np.where(root > 0, root / np.tanh(w * beta), b / w)
        t_neg = (t_neg - b) / d
    return np.maximum(np.where(pos, t_pos, t_neg), 0.0)


def relu_tilted_mgf(kappa, slope, c) -> np.ndarray:
    """``M = E exp(kappa [u+ v+ - (slope/2)(u+^2 + v+^2)])`` for the standard pair of correlation
    ``c``; ``inf`` outside the tilt's domain. Vectorised over broadcast arguments."""
    a, b, d = _quadrant_forms(kappa, slope, c)
    mass = _half_line_mass(a, b, d).sum(axis=-1)
    c = np.broadcast_to(np.asarray(c, dtype=float), mass.shape)
    return mass / (2.0 * np.pi * np.sqrt(1.0 - c * c))


def relu_tilted_pairs(kappa, slope, c, n: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` iid pairs from the tilted law ``phi_c(u, v) exp(kappa T(u, v)) / M`` per row.

    ``kappa``, ``slope`` and ``c`` broadcast to a vector of ``B`` rows; returns ``(u, v)`` of
    shape ``(B, n)``. Quadrant by its mass, direction by the closed-form quantile, radius by
    ``x^T P x / 2 ~ Exp(1)``. Raises if a row's tilt is outside the domain.
    """
    kappa, slope, c = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=float))
                                            for x in (kappa, slope, c)))
    a, b, d = _quadrant_forms(kappa, slope, c)
    mass = _half_line_mass(a, b, d)
    if not np.all(np.isfinite(mass)):
        raise ValueError("tilt outside the domain (the tilted moment is infinite)")
    cum = np.cumsum(mass, axis=-1)
    cum /= cum[:, -1:]
    rows = kappa.shape[0]
    u01 = rng.random((rows, n))
    quadrant = (u01[:, :, None] > cum[:, None, :3]).sum(axis=-1)
    pick = [np.take_along_axis(x, quadrant, axis=1) for x in (a, b, d)]
    w = 1.0 - rng.random((rows, n))  # (0, 1]
    t = _half_line_quantile(*pick, w)
    form = pick[0] + 2.0 * pick[1] * t + pick[2] * t * t
    radius = np.sqrt(2.0 * rng.standard_exponential((rows, n)) / form)
    sx = np.where(quadrant < 2, 1.0, -1.0)
    sy = np.where((quadrant == 0) | (quadrant == 2), 1.0, -1.0)
    return sx * radius, sy * radius * t


def _half_line_mass_scalar(a: float, b: float, d: float) -> float:
    """Scalar :func:`_half_line_mass` (the optimisers call it many times)."""
    if a <= 0.0 or d <= 0.0:
        return math.inf
    delta = a * d - b * b
    if delta > 0.0:
        root = math.sqrt(delta)
        return math.atan2(root, b) / root
    if b <= 0.0:
        return math.inf
    s = math.sqrt(-delta)
    return math.atanh(min(s / b, 1.0 - 1e-16)) / s if s > 0.0 else 1.0 / b


def _log_mgf_scalar(kappa: float, slope: float, c: float) -> float:
    """``ln`` :func:`relu_tilted_mgf` for scalars."""
    d_ = 1.0 - c * c
    inv, off, ks = 1.0 / d_, -c / d_, kappa * slope
    mass = (_half_line_mass_scalar(inv + ks, off - kappa, inv + ks)
            + _half_line_mass_scalar(inv + ks, -off, inv)
            + _half_line_mass_scalar(inv, -off, inv + ks)
            + _half_line_mass_scalar(inv, off, inv))
    return math.log(mass / (2.0 * math.pi * math.sqrt(d_))) if math.isfinite(mass) else math.inf


def _tilt_domain(slope: float, c: float) -> tuple[float, float]:
    """The open interval of ``kappa`` where all four quadrant forms are copositive.

    For ``0 < slope < 1``: the ``++`` form ``a = d = 1/D + kappa s``, ``b = -c/D - kappa`` needs
    ``b > -sqrt(a d)``, i.e. ``kappa < 1 / ((1 + c)(1 - s))``, and ``a > 0``, i.e.
    ``kappa > -1 / (s D)``; for ``c < 0`` the ``+-`` form (``b = c/D``) needs
    ``c^2 < 1 + kappa s D``, i.e. ``kappa > -1/s``.
    """
    if not 0.0 < slope < 1.0 or not -1.0 < c < 1.0:
        raise ValueError("need 0 < slope < 1 and |c| < 1")
    d_ = 1.0 - c * c
    lower = -1.0 / (slope * d_) if c >= 0 else -1.0 / slope
    return lower, 1.0 / ((1.0 + c) * (1.0 - slope))


def relu_one_layer_rate(r: float, r_prev: float, rho: float) -> tuple[float, float]:
    """``(J, kappa*)``: the Chernoff rate ``sup_kappa -ln M`` of one ReLU layer at ``c = rho r'``.

    ``M`` from the reference's own quadrant integrals (:func:`relu_tilted_mgf`); ``ln M`` is
    convex in ``kappa``, so a bounded scalar minimisation over the domain finds ``kappa*``.
    """
    c = float(np.clip(rho * r_prev, -1.0, 1.0))
    lo, hi = _tilt_domain(r, c)
    shrink = 1.0 - 1e-9
    res = scipy.optimize.minimize_scalar(
        lambda k: _log_mgf_scalar(k, r, c), bounds=(lo * shrink, hi * shrink),
        method="bounded", options={"xatol": 1e-10})
    return -float(res.fun), float(res.x)


def relu_optimal_path(rho: float, depth: int, target: float, r0: float = 1.0
                      ) -> tuple[np.ndarray, float]:
    """``(r_1..r_L, I)``: the path minimising ``sum_l J(r_l | r_(l-1))`` with ``r_L = target``.

    The reference's own contraction principle (continuous minimisation over the intermediate
    overlaps, Nelder-Mead from the mean-field path shifted to the target). It chooses the tilts
    of :func:`relu_tilted_chain_sample`; the value ``I`` is a second, independent estimate of
    ``I_L(target)``.
    """
    typical = [r0]
    for _ in range(depth):  # mean field: the zero of the tilted derivative, i.e. J = 0
        c = rho * typical[-1]
        typical.append(_relu_mean_field(c))
    typical = np.array(typical[1:])

    def total(inner: np.ndarray) -> float:
        path = np.concatenate([[r0], np.clip(inner, 1e-6, 1 - 1e-9), [target]])
        return sum(relu_one_layer_rate(path[i + 1], path[i], rho)[0] for i in range(depth))

    if depth == 1:
        return np.array([target]), total(np.array([]))
    start = typical[:-1] + (target - typical[-1]) * np.arange(1, depth) / depth
    res = scipy.optimize.minimize(total, start, method="Nelder-Mead",
                                  options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 2000})
    return np.concatenate([np.clip(res.x, 1e-6, 1 - 1e-9), [target]]), float(res.fun)


def _relu_mean_field(c: float) -> float:
    """``E[u+ v+] / E[u+^2]`` at correlation ``c`` by 2-D quadrature in polar coordinates:
    ``E[u+ v+] = int_0^(pi/2) dtheta cos sin / A(theta)^2 / (2 pi sqrt D)`` with ``A`` the form
    of ``C^-1`` (``int_0^inf rho^3 e^(-rho^2 A/2) = 2 / A^2``), ``E[u+^2] = 1/2``."""
    d = 1.0 - c * c

    def integrand(theta: float) -> float:
        cs, sn = math.cos(theta), math.sin(theta)
        form = (1.0 - 2.0 * c * cs * sn) / d
        return 2.0 * cs * sn / form**2

    value = scipy.integrate.quad(integrand, 0.0, math.pi / 2, epsabs=1e-14, epsrel=1e-13)[0]
    return value / (2.0 * math.pi * math.sqrt(d)) / 0.5


def relu_tilted_chain_sample(
    rho: float,
    depth: int,
    n: int,
    samples: int,
    rng: np.random.Generator,
    path: np.ndarray | None = None,
    r0: float = 1.0,
    *,
    batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Importance sampling of the Gaussian-level ReLU chain towards a path ``r_1*..r_L*``.

    Layer ``l`` draws its ``N`` pairs from the tilted law of :func:`relu_tilted_pairs` with
    ``slope = r_l*`` and ``kappa_l`` = the Chernoff tilt of ``r_l*`` at ``c = rho r_(l-1)*``
    (halved until finite at the sample's actual ``c``); the log-weight gains
    ``N ln M - kappa_l N mean(T)``. Returns ``(r path (samples, depth), log_weights (samples,))``;
    ``path=None`` is plain sampling (all weights 1). Unbiased for any path; the optimal path
    (:func:`relu_optimal_path`) keeps the weights' spread O(1) as N grows.
    """
    if depth < 1 or n < 1 or samples < 1:
        raise ValueError("depth, n and samples must be positive")
    if path is None:
        slopes, kappas = np.zeros(depth), np.zeros(depth)
    else:
        slopes = np.asarray(path, dtype=float)
        if slopes.shape != (depth,):
            raise ValueError("path must have one overlap per layer")
        prev = np.concatenate([[r0], slopes[:-1]])
        kappas = np.array([relu_one_layer_rate(slopes[i], prev[i], rho)[1]
                           for i in range(depth)])
    if batch is None:
        batch = max(1, min(samples, MEMORY_BUDGET // (200 * n)))
    r_out = np.empty((samples, depth))
    logw = np.zeros(samples)
    starts = range(0, samples, batch)
    for start in progress(starts, total=len(starts), desc="tilted relu chain"):
        b = min(batch, samples - start)
        r = np.full(b, float(r0))
        lw = np.zeros(b)
        for layer in range(depth):
            c = np.clip(rho * r, -1.0, 1.0)
            dead = ~np.isfinite(c)  # r undefined (a layer with no active unit): never in a bin
            lw[dead] = -np.inf
            c[dead] = 0.0
            if path is None:  # plain sampling
                z1 = rng.standard_normal((b, n))
                u = z1
                v = c[:, None] * z1 + np.sqrt(1.0 - c * c)[:, None] * rng.standard_normal((b, n))
            else:
                kappa = np.where(dead, 0.0, kappas[layer])
                mgf = relu_tilted_mgf(kappa, slopes[layer], c)
                for _ in range(60):  # shrink the tilt where it leaves the domain at this c
                    bad = ~np.isfinite(mgf)
                    if not bad.any():
                        break
                    kappa[bad] *= 0.5
                    mgf[bad] = relu_tilted_mgf(kappa[bad], slopes[layer], c[bad])
                u, v = relu_tilted_pairs(kappa, slopes[layer], c, n, rng)
            up, vp = np.maximum(u, 0.0), np.maximum(v, 0.0)
            x, y, z = (np.mean(up * vp, axis=1), np.mean(up * up, axis=1),
                       np.mean(vp * vp, axis=1))
            if path is not None:
                lw += n * (np.log(mgf) - kappa * (x - 0.5 * slopes[layer] * (y + z)))
            with np.errstate(divide="ignore", invalid="ignore"):
                r = x / np.sqrt(y * z)
            r_out[start : start + b, layer] = r
        logw[start : start + b] = lw
    return r_out, logw


def weighted_log_probability(values: np.ndarray, log_weights: np.ndarray | None, lo: float,
                             hi: float) -> tuple[float, float]:
    """``(ln P_hat, standard error of ln P_hat)`` of ``lo <= x < hi`` from weighted samples.

    ``P_hat = mean(w 1[lo <= x < hi])``; the error is the delta-method
    ``sd(w 1) / (sqrt(M) P_hat)``. ``log_weights=None`` means plain sampling. No sample in the
    bin gives ``(-inf, inf)``.
    """
    x = np.asarray(values, dtype=float).ravel()
    lw = np.zeros_like(x) if log_weights is None else np.asarray(log_weights, float).ravel()
    inside = (x >= lo) & (x < hi) & np.isfinite(lw)
    if not inside.any():
        return -math.inf, math.inf
    m = x.size
    shift = lw[inside].max()
    w = np.where(inside, np.exp(np.where(inside, lw, shift) - shift), 0.0)
    mean = w.mean()
    se = w.std(ddof=1) / math.sqrt(m) if m > 1 else math.inf
    return math.log(mean) + shift, se / mean


# ----------------------------------------------------------------------------------------------
# 3. bounded activations: the Gaussian-level chain of (q, Q, Q_hat) with tilts of X
#
# Given layer l-1 with state (q, Q, Q_hat), the N pairs (h, h_hat) are iid Gaussian:
#     h = sqrt(s2 Q) z1,   h_hat = sqrt(s2h Q_hat) (c z1 + sqrt(1 - c^2) z2),
#     c = rho q / sqrt(Q Q_hat)
# (s2 = sigma_w^2, s2h = sigma_w^2 * variance_ratio) and the new state is the mean of
# T = (phi(h) phi(h_hat), phi(h)^2, phi(h_hat)^2). A tilt theta of X = phi(h) phi(h_hat) multiplies
# the pair density by exp(theta X) / M(theta; state).


@functools.lru_cache(maxsize=8)
def _gauss_hermite_2d(order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened product rule ``(z1, z2, weights)`` of ``E f(z1, z2)`` for independent standard
    normals, ``order`` probabilists' Gauss-Hermite points per variable (weights sum to 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    weights = weights / weights.sum()
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    out = z1.ravel(), z2.ravel(), np.outer(weights, weights).ravel()
    for array in out:
        array.setflags(write=False)
    return out


def _pair_fields(state: np.ndarray, z1: np.ndarray, z2: np.ndarray, rho: float,
                 variance_ratio: float, weight_variance: float) -> tuple[np.ndarray, np.ndarray]:
    """``(h, h_hat)`` from standard normals ``z1, z2`` for states ``(..., 3)`` (broadcast over the
    trailing axes of ``z1, z2``)."""
    q, big_q, big_qh = (state[..., i][..., None] for i in range(3))
    c = np.clip(rho * q / np.sqrt(big_q * big_qh), -1.0, 1.0)
    h = np.sqrt(weight_variance * big_q) * z1
    h_hat = np.sqrt(weight_variance * variance_ratio * big_qh) * (c * z1 + np.sqrt(1.0 - c * c)
                                                                   * z2)
    return h, h_hat


def generic_mean_field(activation: Callable[[np.ndarray], np.ndarray], rho: float,
                       variance_ratio: float, weight_variance: float, depth: int,
                       q0: float = 1.0, order: int = 120) -> np.ndarray:
    """Typical ``(q_l, Q_l, Q_hat_l)``, ``l = 1..L`` (rows), by 2-D Gauss-Hermite quadrature of
    order ``order`` per variable (notes section 3, general phi)."""
    z1, z2, ww = _gauss_hermite_2d(order)
    state = np.array([q0, 1.0, 1.0])
    out = np.empty((depth, 3))
    for layer in range(depth):
        h, h_hat = _pair_fields(state[None, :], z1[None, :], z2[None, :], rho, variance_ratio,
                                weight_variance)
        a, b = activation(h[0]), activation(h_hat[0])
        state = np.array([ww @ (a * b), ww @ (a * a), ww @ (b * b)])
        out[layer] = state
    return out


def generic_tilted_mgf(activation: Callable[[np.ndarray], np.ndarray], theta, states: np.ndarray,
                       rho: float, variance_ratio: float, weight_variance: float,
                       order: int = 64) -> np.ndarray:
    """``M(theta; state) = E exp(theta phi(h) phi(h_hat))`` per state row (``states``:
    ``(B, 3)``, ``theta``: scalar or ``(B,)``), by Gauss-Hermite quadrature."""
    states = np.atleast_2d(np.asarray(states, dtype=float))
    theta = np.broadcast_to(np.asarray(theta, dtype=float), states.shape[:1])
    z1, z2, ww = _gauss_hermite_2d(order)
    out = np.empty(states.shape[0])
    chunk = max(1, 2_000_000 // z1.size)
    for lo in range(0, states.shape[0], chunk):
        hi = min(states.shape[0], lo + chunk)
        h, h_hat = _pair_fields(states[lo:hi], z1[None, :], z2[None, :], rho, variance_ratio,
                                weight_variance)
        x = activation(h) * activation(h_hat)
        out[lo:hi] = np.exp(theta[lo:hi, None] * x) @ ww
    return out


def generic_cramer_tilt(activation: Callable[[np.ndarray], np.ndarray], target: float,
                        state, rho: float, variance_ratio: float, weight_variance: float,
                        order: int = 64) -> tuple[float, float]:
    """``(J, theta*)``: Cramer rate ``sup_theta [theta x - ln M(theta; state)]`` of the mean of
    ``X = phi(h) phi(h_hat)`` at ``x = target`` (``|theta| <= 60``)."""
    state = np.asarray(state, dtype=float)[None, :]

    def objective(t: float) -> float:
        return float(np.log(generic_tilted_mgf(activation, t, state, rho, variance_ratio,
                                               weight_variance, order)[0])) - t * target

    res = scipy.optimize.minimize_scalar(objective, bounds=(-60.0, 60.0), method="bounded",
                                         options={"xatol": 1e-10})
    return -float(res.fun), float(res.x)


def generic_frozen_norm_tilts(activation: Callable[[np.ndarray], np.ndarray], rho: float,
                              variance_ratio: float, weight_variance: float, depth: int,
                              target: float, q0: float = 1.0, order: int = 64
                              ) -> tuple[np.ndarray, float]:
    """Tilts ``theta_1..theta_L`` aimed at ``q_L / sqrt(Q_L^typ Q_hat_L^typ) = target``.

    The reference's own version of the frozen-norm picture: the norms are held at their typical
    values, the state is ``q``, and the path minimises the sum of one-layer Cramer rates
    (continuous minimisation). Returns ``(tilts, summed rate)``. Only a proposal for
    :func:`generic_chain_sample` (which is unbiased for any tilts); the rate is reported as the
    reference's frozen-norm value, not used as truth.
    """
    typical = generic_mean_field(activation, rho, variance_ratio, weight_variance, depth, q0,
                                 order=max(order, 96))
    goal = target * math.sqrt(typical[-1, 1] * typical[-1, 2])
    norms = np.vstack([[1.0, 1.0], typical[:, 1:]])

    def stages(inner: np.ndarray) -> list[tuple[float, float]]:
        qs = np.concatenate([[q0], inner, [goal]])
        return [generic_cramer_tilt(activation, qs[i + 1], (qs[i], *norms[i]), rho,
                                    variance_ratio, weight_variance, order)
                for i in range(depth)]

    if depth == 1:
        inner = np.array([])
    elif depth == 2:
        res = scipy.optimize.minimize_scalar(
            lambda x: sum(j for j, _ in stages(np.array([x]))),
            bounds=(-0.999 * math.sqrt(norms[1].prod()), 0.999 * math.sqrt(norms[1].prod())),
            method="bounded", options={"xatol": 1e-8})
        inner = np.array([res.x])
    else:
        start = typical[:-1, 0] + (goal - typical[-1, 0]) * np.arange(1, depth) / depth
        res = scipy.optimize.minimize(lambda x: sum(j for j, _ in stages(x)), start,
                                      method="Nelder-Mead",
                                      options={"xatol": 1e-7, "fatol": 1e-11})
        inner = res.x
    parts = stages(inner)
    return np.array([t for _, t in parts]), float(sum(j for j, _ in parts))


def generic_chain_sample(
    activation: Callable[[np.ndarray], np.ndarray],
    rho: float,
    variance_ratio: float,
    weight_variance: float,
    depth: int,
    n: int,
    samples: int,
    rng: np.random.Generator,
    q0: float = 1.0,
    tilts: np.ndarray | None = None,
    *,
    bound: float = 1.0,
    order: int = 64,
    batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-level chain of ``(q, Q, Q_hat)`` for an activation with ``|phi| <= bound``.

    With ``tilts`` (one ``theta_l`` per layer) layer ``l`` draws its pairs from
    ``exp(theta_l X) / M`` times the Gaussian pair density, by rejection (accept with probability
    ``exp(theta_l X - |theta_l| bound^2)``), and the log-weight gains
    ``N ln M(theta_l; state) - theta_l N mean(X)`` (``M`` by Gauss-Hermite of ``order``).
    Returns ``(states (samples, depth, 3), log_weights (samples,))``.
    """
    if depth < 1 or n < 1 or samples < 1:
        raise ValueError("depth, n and samples must be positive")
    thetas = np.zeros(depth) if tilts is None else np.asarray(tilts, dtype=float)
    if thetas.shape != (depth,):
        raise ValueError("tilts must have one value per layer")
    if batch is None:
        batch = max(1, min(samples, MEMORY_BUDGET // (120 * n)))
    out = np.empty((samples, depth, 3))
    logw = np.zeros(samples)
    starts = range(0, samples, batch)
    for start in progress(starts, total=len(starts), desc="gaussian chain"):
        b = min(batch, samples - start)
        state = np.tile([q0, 1.0, 1.0], (b, 1))
        lw = np.zeros(b)
        for layer in range(depth):
            theta = thetas[layer]
            if theta == 0.0:
                h, h_hat = _pair_fields(state, rng.standard_normal((b, n)),
                                        rng.standard_normal((b, n)), rho, variance_ratio,
                                        weight_variance)
                a, c = activation(h), activation(h_hat)
            else:
                a, c = _tilted_activities(activation, theta, state, n, rng, rho,
                                          variance_ratio, weight_variance, bound)
                if layer == 0:  # one state for all rows
                    mgf = np.full(b, generic_tilted_mgf(activation, theta, state[:1], rho,
                                                        variance_ratio, weight_variance,
                                                        order)[0])
                else:
                    mgf = generic_tilted_mgf(activation, theta, state, rho, variance_ratio,
                                             weight_variance, order)
                lw += n * (np.log(mgf) - theta * np.mean(a * c, axis=1))
            state = np.stack([np.mean(a * c, axis=1), np.mean(a * a, axis=1),
                              np.mean(c * c, axis=1)], axis=1)
            out[start : start + b, layer] = state
        logw[start : start + b] = lw
    return out, logw


def _tilted_activities(activation, theta: float, state: np.ndarray, n: int,
                       rng: np.random.Generator, rho: float, variance_ratio: float,
                       weight_variance: float, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """``(phi(h), phi(h_hat))``, ``(B, n)``, from the tilted pair law by rejection."""
    rows = state.shape[0]
    out_a, out_c = np.empty((rows, n)), np.empty((rows, n))
    filled = np.zeros(rows, dtype=np.int64)
    ceiling = abs(theta) * bound * bound
    width = 2 * n
    while True:
        todo = np.flatnonzero(filled < n)
        if todo.size == 0:
            return out_a, out_c
        h, h_hat = _pair_fields(state[todo], rng.standard_normal((todo.size, width)),
                                rng.standard_normal((todo.size, width)), rho, variance_ratio,
                                weight_variance)
        a, c = activation(h), activation(h_hat)
        accept = rng.random(a.shape) < np.exp(theta * a * c - ceiling)
        slot = np.cumsum(accept, axis=1) - 1 + filled[todo][:, None]
        keep = accept & (slot < n)
        row_index = np.broadcast_to(todo[:, None], keep.shape)[keep]
        out_a[row_index, slot[keep]] = a[keep]
        out_c[row_index, slot[keep]] = c[keep]
        filled[todo] = np.minimum(n, filled[todo] + accept.sum(axis=1))
        rate = max(accept.mean(), 1e-3)
        width = int(min(20 * n, max(n, 1.3 * (n - filled[todo].min() if todo.size else n)
                                    / rate) + 8))


# ----------------------------------------------------------------------------------------------
# 4. bounded activations: the exact multi-layer rate of the (q, Q, Q_hat) chain
#
# One step of the chain (notes 4.1) is the empirical mean of N iid copies of
#     T(h, h_hat) = (phi(h) phi(h_hat), phi(h)^2, phi(h_hat)^2),   (h, h_hat) ~ N(0, C(m'))
# (C(m') as _pair_fields builds it), so by Cramer's theorem its rate is the Legendre transform
#     J3(m | m') = sup_theta [theta . m - Lambda(theta; m')],
#     Lambda(theta; m') = ln E exp(theta . T),
# and by the contraction principle (notes 4.2) the rate of the layer-L state is the minimum of the
# summed one-step rates over the intermediate states. E is a 2-D Gauss-Hermite rule, i.e. the pair
# law is replaced by a discrete law on the order^2 nodes; Lambda is then a log-sum-exp, smooth and
# strictly convex in theta, with gradient the tilted mean <T>_theta and Hessian the tilted
# covariance.

#: a one-step Legendre transform counts as converged (finite) when |m - <T>_theta| is below this
_DUAL_GTOL = 1e-9
#: relative step of the central differences of Lambda in the conditioning state m'
_STATE_STEP = 1e-6


@functools.lru_cache(maxsize=8)
def _gauss_hermite_2d_log(order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_gauss_hermite_2d` with log-weights (for log-sum-exp at large tilts)."""
    z1, z2, ww = _gauss_hermite_2d(order)
    log_w = np.log(ww)
    log_w.setflags(write=False)
    return z1, z2, log_w


def _pair_statistics(activation: Callable[[np.ndarray], np.ndarray], state,
                     rho: float, variance_ratio: float, weight_variance: float,
                     order: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, log_w)``: the statistic ``T`` at the Gauss-Hermite nodes of the pair law of
    ``state = m'``, shape ``(3, order^2)``, and the nodes' log-weights."""
    z1, z2, log_w = _gauss_hermite_2d_log(order)
    state = np.asarray(state, dtype=float)
    h, h_hat = _pair_fields(state[None, :], z1[None, :], z2[None, :], rho, variance_ratio,
                            weight_variance)
    a, b = activation(h[0]), activation(h_hat[0])
    return np.stack([a * b, a * a, b * b]), log_w


def _log_mgf(stats: np.ndarray, log_w: np.ndarray, theta: np.ndarray
             ) -> tuple[float, np.ndarray, np.ndarray]:
    """``(Lambda, <T>_theta, Cov_theta T)`` of the discrete law ``(stats, log_w)``."""
    expo = theta @ stats + log_w
    top = expo.max()
    w = np.exp(expo - top)
    total = w.sum()
    value = top + math.log(total)
    w /= total
    mean = stats @ w
    centred = stats - mean[:, None]
    return value, mean, (centred * w) @ centred.T


def _legendre(stats: np.ndarray, log_w: np.ndarray, target: np.ndarray,
              free: np.ndarray, start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """``(sup_theta [theta . target - Lambda(theta)], theta*)`` over ``theta`` supported on the
    components ``free`` (the others are 0; their targets are ignored).

    The concave dual is maximised by ``scipy.optimize.minimize(method="trust-exact")`` with the
    analytic gradient ``<T>_theta - target`` and the tilted covariance as Hessian, from ``start``
    (a full ``theta``; default 0; the dual is strictly convex, so only the cost depends on it),
    then polished by plain Newton steps. If the gradient cannot be brought below ``_DUAL_GTOL``
    (the target is outside the interior of the convex hull of the nodes' ``T``: the supremum is
    approached only as ``|theta| -> inf``), the rate is ``+inf``.
    """
    sub = stats[free]
    goal = np.asarray(target, dtype=float)[free]

    def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
        value, mean, _ = _log_mgf(sub, log_w, t)
        return value - t @ goal, mean - goal

    def hess(t: np.ndarray) -> np.ndarray:
        return _log_mgf(sub, log_w, t)[2]

    theta0 = np.zeros(sub.shape[0]) if start is None else np.asarray(start, dtype=float)[free]
    if not np.all(np.isfinite(theta0)):
        theta0 = np.zeros(sub.shape[0])
    try:
        res = scipy.optimize.minimize(fun, theta0, jac=True, hess=hess,
                                      method="trust-exact",
                                      options={"gtol": 0.1 * _DUAL_GTOL, "maxiter": 200})
    except ValueError:  # scipy >= 1.17: trust-exact refuses a non-finite trial step, which
        # only a target on or outside the hull's boundary produces (theta -> inf)
        return math.inf, np.zeros(stats.shape[0])
    # trust-exact stops ("precision loss") once the predicted decrease is below the roundoff of
    # the value, which can leave |gradient| ~ 1e-9; a few plain Newton steps, kept while they
    # shrink the gradient, finish the job
    best = res.x
    value, grad = fun(best)
    for _ in range(6):
        if not np.all(np.isfinite(grad)) or np.max(np.abs(grad)) <= 1e-3 * _DUAL_GTOL:
            break
        try:
            trial = best - np.linalg.solve(hess(best), grad)
        except np.linalg.LinAlgError:
            break
        trial_value, trial_grad = fun(trial)
        if not np.max(np.abs(trial_grad)) < np.max(np.abs(grad)):
            break
        best, value, grad = trial, trial_value, trial_grad
    theta = np.zeros(stats.shape[0])
    theta[free] = best
    if not (np.all(np.isfinite(grad)) and np.max(np.abs(grad)) <= _DUAL_GTOL):
        return math.inf, theta
    return max(0.0, -float(value)), theta


def generic_log_mgf_3d(activation: Callable[[np.ndarray], np.ndarray], theta, state,
                       rho: float, variance_ratio: float, weight_variance: float,
                       order: int = 48) -> float:
    """``Lambda(theta; m') = ln E exp(theta . T(h, h_hat))`` with ``T = (phi(h) phi(h_hat),
    phi(h)^2, phi(h_hat)^2)`` and ``(h, h_hat)`` the pair law of ``state = m' = (q, Q, Q_hat)``
    (as :func:`_pair_fields`), by 2-D Gauss-Hermite quadrature of ``order`` points per variable."""
    stats, log_w = _pair_statistics(activation, state, rho, variance_ratio, weight_variance,
                                    order)
    return _log_mgf(stats, log_w, np.asarray(theta, dtype=float))[0]


def generic_cramer_rate_3d(activation: Callable[[np.ndarray], np.ndarray], target, state,
                           rho: float, variance_ratio: float, weight_variance: float,
                           order: int = 48) -> tuple[float, np.ndarray]:
    """``(J3, theta*)``: the one-step Cramer rate of the ``(q, Q, Q_hat)`` chain,

    ``J3(m | m') = sup_(theta in R^3) [theta . m - Lambda(theta; m')]``

    at ``m = target`` given ``m' = state`` (:func:`generic_log_mgf_3d`, Gauss-Hermite of
    ``order``). ``theta*`` is the maximiser, so that ``<T>_(theta*) = m``; ``J3 = +inf`` for
    ``m`` outside the interior of the convex hull of ``T``'s (quadrature) support.
    """
    stats, log_w = _pair_statistics(activation, state, rho, variance_ratio, weight_variance,
                                    order)
    return _legendre(stats, log_w, np.asarray(target, dtype=float), np.ones(3, dtype=bool))


@dataclasses.dataclass(frozen=True)
class ExactRatePath:
    """The optimal path of :func:`generic_exact_path`."""

    rate: float  # I_L(target)
    states: np.ndarray  # (L, 3): m_1..m_L; m_L = (goal, <Q>, <Q_hat>) under the last tilt
    tilts: np.ndarray  # (L, 3): theta*_l of each step (the last one is (theta, 0, 0))
    steps: np.ndarray  # (L,): the one-step rates J3(m_l | m_(l-1)), summing to ``rate``
    goal: float  # target * sqrt(Q_L^typ Q_hat_L^typ), the q_L the path ends at
    typical: np.ndarray  # (L, 3): the mean-field path
    converged: bool  # the outer minimiser's success flag (True for L = 1)


def generic_exact_path(activation: Callable[[np.ndarray], np.ndarray], rho: float,
                       variance_ratio: float, weight_variance: float, depth: int, target: float,
                       q0: float = 1.0, order: int = 48, start: np.ndarray | None = None
                       ) -> ExactRatePath:
    """Exact rate of ``s_L = q_L / sqrt(Q_L^typ Q_hat_L^typ)`` for the full ``(q, Q, Q_hat)``
    chain, with its optimal path.

    ``Q_L^typ, Q_hat_L^typ`` are the mean-field norms (:func:`generic_mean_field` of its default
    order), so ``s_L`` is a fixed rescaling of ``q_L`` and ``s_L = target`` means
    ``q_L = goal = target sqrt(Q_L^typ Q_hat_L^typ)``. By the contraction principle,

    ``I_L(target) = min_(m_1..m_(L-1) in R^3, Q_L, Q_hat_L) sum_(l=1..L) J3(m_l | m_(l-1))``,

    ``m_0 = (q0, 1, 1)``, ``m_L = (goal, Q_L, Q_hat_L)``, ``J3`` the one-step Cramer rate
    (:func:`generic_cramer_rate_3d`). The inner minimum over the free norms ``(Q_L, Q_hat_L)`` of
    the last step is done in closed form: the contraction of a Cramer rate onto the coordinate
    ``q`` is the Legendre transform restricted to ``theta = (theta_1, 0, 0)`` (``Lambda`` is
    finite and smooth everywhere for bounded ``phi``), i.e. the 1-D Cramer rate of the mean of
    ``X = phi(h) phi(h_hat)``, ``J1(goal | m') = sup_t [t goal - Lambda((t, 0, 0); m')]``. So

    ``I_L(target) = min_(m_1..m_(L-1)) [sum_(l<L) J3(m_l | m_(l-1)) + J1(goal | m_(L-1))]``,

    a smooth minimisation over ``3 (L - 1)`` numbers, done by L-BFGS-B with the envelope-theorem
    gradient ``dF/dm_l = theta*_l - grad_(m') Lambda(theta*_(l+1); m')|_(m' = m_l)`` (the
    ``m'``-gradient by central differences of ``Lambda``), from ``start`` (``(L-1, 3)``; default:
    the mean-field path with ``q_l`` shifted by ``(goal - q_L^typ) l / L``). At the optimum the
    tilts satisfy the backward saddle equations of notes 4.2,
    ``theta*_l = grad_(m') Lambda(theta*_(l+1); m_l)``. ``L = 1`` is ``J1(goal | m_0)``.
    Expectations are 2-D Gauss-Hermite rules of ``order`` points per variable.
    """
    if depth < 1:
        raise ValueError("depth must be positive")
    args = (rho, variance_ratio, weight_variance)
    typical = generic_mean_field(activation, *args, depth, q0)
    goal = float(target) * math.sqrt(typical[-1, 1] * typical[-1, 2])
    m0 = np.array([q0, 1.0, 1.0])
    last_free = np.array([True, False, False])
    every = np.ones(3, dtype=bool)
    goal_vec = np.array([goal, 0.0, 0.0])

    def stats(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _pair_statistics(activation, state, *args, order)

    def state_gradient(theta: np.ndarray, state: np.ndarray) -> np.ndarray:
        """``grad_(m') Lambda(theta; m')`` at ``m' = state`` by central differences."""
        out = np.empty(3)
        for i in range(3):
            step = _STATE_STEP * max(1.0, abs(state[i]))
            up, down = state.copy(), state.copy()
            up[i] += step
            down[i] -= step
            out[i] = (_log_mgf(*stats(up), theta)[0] - _log_mgf(*stats(down), theta)[0]) / (
                2.0 * step)
        return out

    def feasible(state: np.ndarray) -> bool:
        # T is a rank-1 PSD matrix [[Y, X], [X, Z]]: its hull lies in the PSD cone
        return bool(state[1] > 0.0 and state[2] > 0.0
                    and state[0] * state[0] < state[1] * state[2])

    warm = np.zeros((depth, 3))  # the last finite tilts: warm starts of the Legendre transforms

    def evaluate(inner: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``(F, dF/dinner, tilts, steps)`` along ``m_0, inner..., (goal, ., .)``."""
        path = np.vstack([m0, inner.reshape(depth - 1, 3)])
        tilts, steps = np.zeros((depth, 3)), np.zeros(depth)
        for layer in range(depth):
            prev = path[layer]
            if layer > 0 and not feasible(prev):
                return math.inf, np.zeros_like(inner), tilts, steps
            if layer < depth - 1:
                steps[layer], tilts[layer] = _legendre(*stats(prev), path[layer + 1], every,
                                                       warm[layer])
            else:
                steps[layer], tilts[layer] = _legendre(*stats(prev), goal_vec, last_free,
                                                       warm[layer])
            if not math.isfinite(steps[layer]):
                return math.inf, np.zeros_like(inner), tilts, steps
        warm[:] = tilts
        grad = np.empty((depth - 1, 3))
        for layer in range(1, depth):
            grad[layer - 1] = tilts[layer - 1] - state_gradient(tilts[layer], path[layer])
        return float(steps.sum()), grad.ravel(), tilts, steps

    if depth == 1:
        value, _, tilts, steps = evaluate(np.empty(0))
        converged = True
        inner = np.empty((0, 3))
    else:
        if start is None:
            shift = (goal - typical[-1, 0]) * np.arange(1, depth) / depth
            start = typical[:-1].copy()
            start[:, 0] += shift
        start = np.asarray(start, dtype=float).reshape(depth - 1, 3)
        penalty = 1e3  # stands for +inf in the line search (infeasible trial points)

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad, _, _ = evaluate(x)
            return (value, grad) if math.isfinite(value) else (penalty, np.zeros_like(x))

        res = scipy.optimize.minimize(objective, start.ravel(), jac=True, method="L-BFGS-B",
                                      options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 500,
                                               "maxcor": 20})
        inner = res.x.reshape(depth - 1, 3)
        value, _, tilts, steps = evaluate(res.x)
        converged = bool(res.success) and math.isfinite(value)
    last_prev = inner[-1] if depth > 1 else m0
    end_mean = _log_mgf(*stats(last_prev), tilts[-1])[1]
    states = np.vstack([inner, [[goal, end_mean[1], end_mean[2]]]])
    return ExactRatePath(float(value), states, tilts, steps, goal, typical, converged)


def generic_exact_rate(activation: Callable[[np.ndarray], np.ndarray], rho: float,
                       variance_ratio: float, weight_variance: float, depth: int, target: float,
                       q0: float = 1.0, order: int = 48) -> float:
    """Exact ``I_L(target)`` of ``s_L = q_L / sqrt(Q_L^typ Q_hat_L^typ)`` for the full
    ``(q, Q, Q_hat)`` chain: the contraction ``min sum_l J3(m_l | m_(l-1))`` over all paths ending
    at ``q_L = target sqrt(Q_L^typ Q_hat_L^typ)`` with free ``(Q_L, Q_hat_L)``, ``m_0 = (q0, 1,
    1)`` and ``J3(m | m') = sup_theta [theta . m - ln E_(m') exp(theta . T)]`` the one-step 3-D
    Cramer rate (2-D Gauss-Hermite of ``order``). See :func:`generic_exact_path` (which also
    returns the optimal path) for the method."""
    return generic_exact_path(activation, rho, variance_ratio, weight_variance, depth, target,
                              q0, order).rate
