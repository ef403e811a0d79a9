"""Independent numpy/scipy reference for overlaps of a random deep net and its perturbed copy.

This module is an *independent reference implementation*: it is written by hand from the notes on
Li & Saad (2020), "Large Deviation Analysis of Function Sensitivity in Random Deep Neural
Networks" (arXiv:1910.05769; notes ``lisaad2020.md``). It uses no generated code and nothing from
the ``derivations``, ``codegen`` or other ``runtime`` modules (only ``runtime.progress`` for
progress bars). It is the oracle against which the generated kernels are tested.

Model (notes, section 1): ``L`` fully connected layers of width ``N``, no biases::

    h^l = W^l s^(l-1),   s^l = phi(h^l),   W^l_ij ~ N(0, sigma_w^2 / N)   (iid)
    h_hat^l = W_hat^l s_hat^(l-1),   s_hat^l = phi(h_hat^l),   W_hat_ij = g(W_ij, xi_ij)

with binary inputs ``s^0`` uniform on ``{-1, +1}^N`` and ``s_hat^0 = s^0`` up to a fraction
``(1 - q0) / 2`` of flipped bits. Order parameters per layer::

    q_l = (1/N) sum_i s_i s_hat_i,  Q_l = (1/N) sum_i s_i^2,  Q_hat_l = (1/N) sum_i s_hat_i^2,
    r_l = q_l / sqrt(Q_l Q_hat_l).

Besides the finite-network simulator the module has the two finite-N Markov chains of the
notes (section 4): the exact binomial chain of ``q_l`` for sign units (4.3) and the Gaussian-level
chain of the normalised overlap ``r_l`` for ReLU units (4.4), a Monte Carlo estimate of the
effective weight correlation ``rho`` (section 2), and log-probability / empirical-rate helpers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.special
import scipy.stats

from netderive.runtime.progress import progress

__all__ = [
    "PERTURBATIONS",
    "OverlapSamples",
    "binomial_chain_distribution",
    "empirical_rate",
    "gaussian_chain_sample_relu",
    "log_probability_estimate",
    "sample_overlaps",
    "typical_overlap_estimate",
    "weight_correlation",
]

#: Weight perturbations understood by :func:`sample_overlaps` and :func:`weight_correlation`.
#: ``"none"`` (``W_hat = W``, for input sensitivity), ``"dilution"`` (keep each weight with
#: probability ``1 - p``, else 0; no rescale), ``"binarization"`` (``sigma_w sgn(W) / sqrt(N)``,
#: ``p`` ignored) and ``"partial_binarization"`` (each weight binarized with probability ``p``).
PERTURBATIONS = ("none", "dilution", "binarization", "partial_binarization")

#: Memory budget (bytes) of the per-batch work arrays.
MEMORY_BUDGET = 200_000_000

Activation = Callable[[np.ndarray], np.ndarray] | str


@dataclass(frozen=True)
class OverlapSamples:
    """Per-network, per-layer overlaps of a reference net and its perturbed copy.

    ``q``, ``Q``, ``Q_hat`` and ``r`` have shape ``(networks, depth)``; column ``l - 1`` holds
    layer ``l``. ``input_overlap`` is the realised ``q_0 = 1 - 2 k / N`` (``k`` flipped bits).
    """

    q: np.ndarray
    Q: np.ndarray
    Q_hat: np.ndarray
    r: np.ndarray
    width: int
    activation: str
    perturbation: str
    p: float
    input_overlap: float

    @property
    def networks(self) -> int:
        """Number of sampled network pairs."""
        return self.q.shape[0]

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""
        return self.q.shape[1]


# ----------------------------------------------------------------------------------------------
# finite random networks


def _sign(x: np.ndarray) -> np.ndarray:
    """``sgn`` with ``sgn(0) = +1`` (notes 4.3, simulation pitfall: ``np.sign(0) = 0``)."""
    return np.where(x >= 0, 1.0, -1.0)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _resolve_activation(activation: Activation) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    if isinstance(activation, str):
        table = {"sign": _sign, "relu": _relu}
        if activation not in table:
            raise ValueError(f"unknown activation {activation!r}; use 'sign', 'relu' or a callable")
        return table[activation], activation
    if not callable(activation):
        raise TypeError("activation must be 'sign', 'relu' or a vectorised callable")
    return activation, getattr(activation, "__name__", repr(activation))


def _default_weight_variance(activation: Activation) -> float:
    """``sigma_w^2``: 2 for ``"relu"`` (He initialisation, ``Q_l = 1``), else 1."""
    return 2.0 if isinstance(activation, str) and activation == "relu" else 1.0


def _check_perturbation(perturbation: str, p: float) -> None:
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {perturbation!r}; expected one of {PERTURBATIONS}")
    if perturbation in ("dilution", "partial_binarization") and not 0.0 <= p <= 1.0:
        raise ValueError("p must lie in [0, 1]")


def _perturb_weights(
    weights: np.ndarray,
    perturbation: str,
    p: float,
    scale: float,
    rng: np.random.Generator,
    out: np.ndarray,
    uniforms: np.ndarray,
) -> np.ndarray:
    """``W_hat = g(W, xi)`` elementwise, written into ``out`` (``"none"`` returns ``weights``).

    ``scale`` is the binarized magnitude ``sigma_w / sqrt(N)`` (``sgn(W)`` scaled to the standard
    deviation of ``W``). Bernoulli masks use float32 uniforms in ``uniforms`` (resolution 2^-24).
    """
    if perturbation == "none":
        return weights
    if perturbation == "dilution":
        rng.random(out=uniforms, dtype=np.float32)
        np.multiply(weights, uniforms < np.float32(1.0 - p), out=out)
    elif perturbation == "binarization":
        np.copysign(scale, weights, out=out)  # scale * sgn(W), sgn(+0) = +1
    else:  # partial binarization: binarize with probability p
        rng.random(out=uniforms, dtype=np.float32)
        np.copyto(out, weights)
        np.copysign(scale, weights, out=out, where=uniforms < np.float32(p))
    return out


def _batched_field(weights: np.ndarray, state: np.ndarray) -> np.ndarray:
    """``h_bi = sum_j W_bij s_bj`` for a batch of networks."""
    return np.matmul(weights, state[..., None])[..., 0]


def sample_overlaps(
    activation: Activation,
    perturbation: str,
    p: float,
    depth: int,
    width: int,
    networks: int,
    rng: np.random.Generator,
    input_overlap: float = 1.0,
    batch: int | None = None,
    *,
    weight_variance: float | None = None,
) -> OverlapSamples:
    """Simulate ``networks`` independent pairs (reference net, perturbed net) of finite width.

    Per network: ``s^0`` uniform on ``{-1, +1}^N``; ``s_hat^0`` equals ``s^0`` except for
    ``k = round(N (1 - q0) / 2)`` bits flipped at random positions (realised ``q0 = 1 - 2k/N``).
    In every layer ``l = 1..L`` fresh weights ``W ~ N(0, sigma_w^2 / N)`` are drawn
    (``sigma_w^2`` = 1 for sign, 2 for ReLU, 1 otherwise, unless ``weight_variance`` is given),
    perturbed elementwise into ``W_hat`` (see :data:`PERTURBATIONS`), and
    ``s^l = phi(W s^(l-1))``, ``s_hat^l = phi(W_hat s_hat^(l-1))``. ``"sign"`` uses
    ``sgn(0) = +1``. Returns ``q_l``, ``Q_l``, ``Q_hat_l`` and ``r_l = q_l / sqrt(Q_l Q_hat_l)``.

    Networks are simulated in batches with batched matmuls; the default batch keeps the work
    arrays below :data:`MEMORY_BUDGET` bytes (about ``21 B N^2`` bytes for a batch of ``B``).
    """
    phi, name = _resolve_activation(activation)
    _check_perturbation(perturbation, p)
    if depth < 1 or width < 1 or networks < 1:
        raise ValueError("depth, width and networks must be positive")
    if not -1.0 <= input_overlap <= 1.0:
        raise ValueError("input_overlap must lie in [-1, 1]")
    n = int(width)
    sigma2 = (
        _default_weight_variance(activation) if weight_variance is None else float(weight_variance)
    )
    std = math.sqrt(sigma2 / n)
    flips = int(round(n * (1.0 - input_overlap) / 2.0))
    if batch is None:
        batch = max(1, min(networks, MEMORY_BUDGET // (24 * n * n)))
    batch = int(batch)

    out = {key: np.empty((networks, depth)) for key in ("q", "Q", "Q_hat")}
    w = np.empty((batch, n, n))
    # work arrays: W_hat is not needed for "none", the float32 uniforms only for Bernoulli masks
    w_hat = np.empty((batch, n, n) if perturbation != "none" else (batch, 0, 0))
    masked = perturbation in ("dilution", "partial_binarization")
    uniforms = np.empty((batch, n, n) if masked else (batch, 0, 0), dtype=np.float32)
    starts = range(0, networks, batch)
    for start in progress(starts, total=len(starts), desc="networks"):
        b = min(batch, networks - start)
        s = rng.choice(np.array([-1.0, 1.0]), size=(b, n))
        s_hat = s.copy()
        if flips:
            positions = np.argsort(rng.random((b, n)), axis=1)[:, :flips]
            np.put_along_axis(s_hat, positions, -np.take_along_axis(s, positions, 1), 1)
        for layer in range(depth):
            wb, whb, ub = w[:b], w_hat[:b], uniforms[:b]
            rng.standard_normal(out=wb)
            wb *= std
            whb = _perturb_weights(wb, perturbation, p, std, rng, whb, ub)
            s = phi(_batched_field(wb, s))
            s_hat = phi(_batched_field(whb, s_hat))
            out["q"][start : start + b, layer] = np.mean(s * s_hat, axis=1)
            out["Q"][start : start + b, layer] = np.mean(s * s, axis=1)
            out["Q_hat"][start : start + b, layer] = np.mean(s_hat * s_hat, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = out["q"] / np.sqrt(out["Q"] * out["Q_hat"])
    return OverlapSamples(
        q=out["q"],
        Q=out["Q"],
        Q_hat=out["Q_hat"],
        r=r,
        width=n,
        activation=name,
        perturbation=perturbation,
        p=float(p),
        input_overlap=1.0 - 2.0 * flips / n,
    )


def typical_overlap_estimate(
    samples: OverlapSamples, normalised: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-layer ``(mean, standard error of the mean, N * Var)`` of ``r`` or ``q``.

    ``normalised=True`` uses ``r_l`` (cosine similarity), otherwise ``q_l``. The variance is the
    unbiased sample variance over networks; ``N * Var`` estimates ``V_l`` of the notes (4.2).
    """
    values = samples.r if normalised else samples.q
    m = values.shape[0]
    if m < 2:
        raise ValueError("need at least 2 networks")
    var = values.var(axis=0, ddof=1)
    return values.mean(axis=0), np.sqrt(var / m), samples.width * var


# ----------------------------------------------------------------------------------------------
# finite-N Markov chains


def _sign_map(q: np.ndarray | float, rho: float) -> np.ndarray:
    """``mu(q) = (2/pi) arcsin(rho q)`` (``rho q`` clipped to [-1, 1])."""
    return (2.0 / np.pi) * np.arcsin(np.clip(rho * np.asarray(q, dtype=float), -1.0, 1.0))


def binomial_chain_distribution(
    rho: float,
    depth: int,
    n: int,
    q0: float = 1.0,
    *,
    all_layers: bool = False,
    log_probability: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact finite-N Gaussian-level law of ``q_L`` for sign units (notes 4.3).

    ``q_l = 2 k / N - 1`` with ``k | q_(l-1) ~ Bin(N, (1 + mu(q_(l-1))) / 2)``,
    ``mu(q) = (2/pi) arcsin(rho q)``, started from ``q_0 = q0``. The law is
    ``P_1 = Bin(N, (1 + mu(q0)) / 2)`` followed by ``depth - 1`` products with the
    ``(N + 1) x (N + 1)`` transition matrix ``T[k', k] = P(k | q' = 2 k' / N - 1)``
    (about ``8 (N + 1)^2`` bytes). Returns ``(grid of q values, probability vector)``; with
    ``all_layers`` the probabilities of layers ``1..L`` as rows of a ``(depth, N + 1)`` array.

    ``log_probability=True`` returns ``ln P`` instead, computed in log space
    (``ln P_l[k] = logsumexp_k' (ln P_(l-1)[k'] + ln T[k', k])``), so that probabilities below
    the double-precision range (``N I_L(q) > 700``) stay finite.
    """
    if depth < 1 or n < 1:
        raise ValueError("depth and n must be positive")
    pmf = scipy.stats.binom.logpmf if log_probability else scipy.stats.binom.pmf
    k = np.arange(n + 1)
    grid = 2.0 * k / n - 1.0
    probs = np.empty((depth, n + 1))
    probs[0] = pmf(k, n, (1.0 + _sign_map(q0, rho)) / 2.0)
    if depth > 1:
        success = (1.0 + _sign_map(grid, rho)) / 2.0
        transition = np.empty((n + 1, n + 1))
        block = max(1, 4_000_000 // (n + 1))
        for lo in range(0, n + 1, block):
            hi = min(n + 1, lo + block)
            transition[lo:hi] = pmf(k[None, :], n, success[lo:hi, None])
        for layer in progress(range(1, depth), total=depth - 1, desc="binomial chain"):
            if not log_probability:
                probs[layer] = probs[layer - 1] @ transition
                continue
            for lo in range(0, n + 1, block):  # column blocks bound the temporaries
                hi = min(n + 1, lo + block)
                probs[layer, lo:hi] = scipy.special.logsumexp(
                    probs[layer - 1][:, None] + transition[:, lo:hi], axis=0
                )
    return grid, (probs if all_layers else probs[-1].copy())


def gaussian_chain_sample_relu(
    rho: float,
    depth: int,
    n: int,
    samples: int,
    rng: np.random.Generator,
    r0: float = 1.0,
    *,
    batch: int | None = None,
    return_path: bool = False,
) -> np.ndarray:
    """Samples of the ReLU normalised overlap ``r_L`` from the Gaussian-level chain (notes 4.4).

    Given ``r_(l-1)``, draw ``N`` iid pairs ``(u, v)`` standard bivariate normal with correlation
    ``c = rho r_(l-1)`` (``u = z1``, ``v = c z1 + sqrt(1 - c^2) z2``) and set
    ``r_l = mean(relu(u) relu(v)) / sqrt(mean(relu(u)^2) mean(relu(v)^2))``; ``r_0 = r0``.
    Returns shape ``(samples,)``, or ``(samples, depth)`` (layers 1..L) with ``return_path``.
    """
    if depth < 1 or n < 1 or samples < 1:
        raise ValueError("depth, n and samples must be positive")
    if batch is None:
        batch = max(1, min(samples, MEMORY_BUDGET // (40 * n)))
    path = np.empty((samples, depth))
    starts = range(0, samples, batch)
    for start in progress(starts, total=len(starts), desc="gaussian chain"):
        b = min(batch, samples - start)
        r = np.full(b, float(r0))
        for layer in range(depth):
            c = np.clip(rho * r, -1.0, 1.0)[:, None]
            z1 = rng.standard_normal((b, n))
            z2 = rng.standard_normal((b, n))
            u = np.maximum(z1, 0.0)
            v = np.maximum(c * z1 + np.sqrt(1.0 - c * c) * z2, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.mean(u * v, axis=1) / np.sqrt(
                    np.mean(u * u, axis=1) * np.mean(v * v, axis=1)
                )
            path[start : start + b, layer] = r
    return path if return_path else path[:, -1].copy()


# ----------------------------------------------------------------------------------------------
# probabilities, rates and the weight correlation


def log_probability_estimate(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """``(ln P_hat, standard error)`` for the bin ``lo <= x < hi`` from iid samples ``values``.

    ``P_hat = count / M``; the delta-method error is ``sqrt((1 - P_hat) / count)``. An empty bin
    gives ``(-inf, inf)``.
    """
    x = np.asarray(values, dtype=float).ravel()
    m = x.size
    if m == 0:
        raise ValueError("values is empty")
    count = int(np.count_nonzero((x >= lo) & (x < hi)))
    if count == 0:
        return -math.inf, math.inf
    prob = count / m
    return math.log(prob), math.sqrt((1.0 - prob) / count)


def empirical_rate(
    values: np.ndarray,
    lo: float,
    hi: float,
    n: int,
    *,
    relative_to: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Empirical rate ``-(1/N) ln P(lo <= x < hi)`` and its standard error.

    With ``relative_to=(lo', hi')`` (a disjoint bin, typically the most probable one) returns
    ``-(1/N) ln[P(bin) / P(bin')]``, whose multinomial delta-method error is
    ``sqrt(1 / count + 1 / count') / N``.
    """
    log_p, se = log_probability_estimate(values, lo, hi)
    if relative_to is None:
        return -log_p / n, se / n
    lo_ref, hi_ref = relative_to
    if lo < hi_ref and lo_ref < hi:
        raise ValueError("relative_to must be a bin disjoint from [lo, hi)")
    log_ref, _ = log_probability_estimate(values, lo_ref, hi_ref)
    x = np.asarray(values, dtype=float).ravel()
    counts = [np.count_nonzero((x >= a) & (x < b)) for a, b in ((lo, hi), (lo_ref, hi_ref))]
    if min(counts) == 0:
        return math.inf if counts[0] == 0 else -math.inf, math.inf
    return (log_ref - log_p) / n, math.sqrt(1.0 / counts[0] + 1.0 / counts[1]) / n


def weight_correlation(perturbation: str, p: float, draws: int, rng: np.random.Generator) -> float:
    """Monte Carlo ``rho = E[W W_hat] / sqrt(E[W^2] E[W_hat^2])`` (notes, section 2).

    ``W ~ N(0, 1)`` (``rho`` is scale-free) and ``W_hat = g(W, xi)`` as in :func:`sample_overlaps`
    (binarized weights are ``sgn(W)``, the standard deviation of ``W``). Closed forms:
    ``sqrt(1 - p)`` (dilution), ``sqrt(2/pi)`` (binarization), ``1 - p + p sqrt(2/pi)``
    (partial binarization), 1 (none).
    """
    _check_perturbation(perturbation, p)
    if draws < 1:
        raise ValueError("draws must be positive")
    chunk = 1_000_000
    sums = np.zeros(3)  # E[W W_hat], E[W^2], E[W_hat^2]
    starts = range(0, draws, chunk)
    for start in progress(starts, total=len(starts), desc="weights"):
        b = min(chunk, draws - start)
        w = rng.standard_normal(b)
        w_hat = _perturb_weights(
            w, perturbation, p, 1.0, rng, np.empty(b), np.empty(b, dtype=np.float32)
        )
        sums += (w @ w_hat, w @ w, w_hat @ w_hat)
    return float(sums[0] / math.sqrt(sums[1] * sums[2]))
