"""Independent numpy/scipy reference for deep linear nets with stochastic neurons and weight decay.

This module is an *independent reference implementation*: it is written by hand from the notes on
Ziyin, Li & Meng (2022), "Exact Solutions of a Deep Linear Network" (arXiv:2202.04777), and uses no
generated code and nothing from the ``derivations``, ``codegen`` or other ``runtime`` modules
(only ``runtime.progress`` for progress bars). It exists to cross-check the generated kernels.

Model (depth ``D`` = number of hidden layers, ``D + 1`` weight arrays)::

    f(x) = U^T eps_D W_D ... eps_1 W_1 x,      eps_i = Diag(eps^(i)),  E eps = 1,  Var eps = sigma^2
    L    = E_x E_eps (f(x) - y)^2 + gamma_u ||U||^2 + sum_i gamma_i ||W_i||_F^2

with ``W_1`` of shape ``(d_1, d)``, ``W_i`` of shape ``(d_i, d_{i-1})`` and ``U`` of shape
``(d_D,)``. The data enter only through ``A0 = E[x x^T]``, ``E[x y]`` and ``E[y^2]``. Weights are
always passed as the list ``[W_1, ..., W_D, U]``; decays are ordered the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from netderive.runtime.progress import progress

__all__ = [
    "DataMoments",
    "MinimumResult",
    "balanced_minimiser",
    "end_to_end_predictor",
    "enumerate_dropout_loss",
    "exact_loss",
    "exact_loss_and_gradient",
    "flatten_weights",
    "monte_carlo_loss",
    "multistart_minimum",
    "noise_factor",
    "per_layer_decay",
    "sample_end_to_end_maps",
    "unflatten_weights",
]

Shapes = Sequence[tuple[int, ...]]


@dataclass(frozen=True)
class DataMoments:
    """Second moments of the data: ``A0 = E[x x^T]``, ``E[x y]`` and ``E[y^2]``."""

    input_covariance: np.ndarray
    input_output_covariance: np.ndarray
    output_variance: float

    def __post_init__(self) -> None:
        a0 = np.array(self.input_covariance, dtype=float)
        exy = np.array(self.input_output_covariance, dtype=float)
        if a0.ndim != 2 or a0.shape[0] != a0.shape[1]:
            raise ValueError(f"input_covariance must be square, got shape {a0.shape}")
        if exy.shape != (a0.shape[0],):
            raise ValueError(f"input_output_covariance must have shape ({a0.shape[0]},)")
        object.__setattr__(self, "input_covariance", a0)
        object.__setattr__(self, "input_output_covariance", exy)
        object.__setattr__(self, "output_variance", float(self.output_variance))

    @property
    def dim(self) -> int:
        """Input dimension ``d``."""
        return self.input_covariance.shape[0]


@dataclass(frozen=True)
class MinimumResult:
    """Best minimum of a multistart run.

    ``predictor`` is the mean end-to-end map ``v`` with ``E_eps f(x) = v^T x``; ``layer_norms`` are
    the Frobenius norms of ``[W_1, ..., W_D, U]``; ``losses`` are the final losses of all starts,
    sorted ascending.
    """

    loss: float
    layer_norms: np.ndarray
    predictor: np.ndarray
    weights: tuple[np.ndarray, ...]
    losses: np.ndarray


# ----------------------------------------------------------------------------------------------
# helpers


def per_layer_decay(weight_decay: float | Sequence[float], depth: int) -> np.ndarray:
    """Decay strengths ``[gamma_1, ..., gamma_D, gamma_u]`` (length ``depth + 1``).

    A scalar is broadcast to every layer; a sequence must have length ``depth + 1``.
    """
    if depth < 0:
        raise ValueError("depth must be >= 0")
    gammas = np.asarray(weight_decay, dtype=float)
    if gammas.ndim == 0:
        gammas = np.full(depth + 1, float(gammas))
    elif gammas.shape != (depth + 1,):
        raise ValueError(f"expected {depth + 1} decay strengths, got shape {gammas.shape}")
    else:
        gammas = gammas.copy()
    if np.any(gammas < 0) or not np.all(np.isfinite(gammas)):
        raise ValueError("decay strengths must be finite and non-negative")
    return gammas


def noise_factor(widths: Sequence[int], noise_variance: float) -> float:
    """``s^2 = prod_i (1 + sigma^2 / d_i)`` over the hidden widths."""
    return float(np.prod([1.0 + noise_variance / d for d in widths])) if len(widths) else 1.0


def _check_weights(weights: Sequence[np.ndarray], dim: int) -> list[np.ndarray]:
    ws = [np.asarray(w, dtype=float) for w in weights]
    if not ws:
        raise ValueError("weights must contain at least U")
    fan_in = dim
    for i, w in enumerate(ws[:-1], start=1):
        if w.ndim != 2 or w.shape[1] != fan_in:
            raise ValueError(f"W_{i} has shape {w.shape}, expected (d_{i}, {fan_in})")
        fan_in = w.shape[0]
    if ws[-1].shape != (fan_in,):
        raise ValueError(f"U has shape {ws[-1].shape}, expected ({fan_in},)")
    return ws


def _penalty(ws: Sequence[np.ndarray], gammas: np.ndarray) -> float:
    return float(sum(g * np.sum(w * w) for g, w in zip(gammas, ws, strict=True)))


def end_to_end_predictor(weights: Sequence[np.ndarray]) -> np.ndarray:
    """Mean end-to-end map ``v = W_1^T W_2^T ... W_D^T U`` (so ``E_eps f(x) = v^T x``)."""
    v = np.asarray(weights[-1], dtype=float)
    for w in reversed(weights[:-1]):
        v = np.asarray(w, dtype=float).T @ v
    return v


def flatten_weights(
    weights: Sequence[np.ndarray],
) -> tuple[np.ndarray, tuple[tuple[int, ...], ...]]:
    """Concatenate the raveled weights; return ``(flat, shapes)``."""
    shapes = tuple(tuple(np.shape(w)) for w in weights)
    flat = np.concatenate([np.asarray(w, dtype=float).ravel() for w in weights])
    return flat, shapes


def unflatten_weights(flat_params: np.ndarray, shapes: Shapes) -> list[np.ndarray]:
    """Inverse of :func:`flatten_weights`."""
    flat = np.asarray(flat_params, dtype=float)
    sizes = [math.prod(s) for s in shapes]
    if flat.shape != (sum(sizes),):
        raise ValueError(f"flat_params has shape {flat.shape}, expected ({sum(sizes)},)")
    out, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


# ----------------------------------------------------------------------------------------------
# exact loss and gradient


def _forward(
    ws: Sequence[np.ndarray], data: DataMoments, noise_variance: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Moment recursion: ``H_0 = A0``, ``H_i = G_i + sigma^2 Diag(G_i)``, ``m_i = W_i m_{i-1}``."""
    hs = [data.input_covariance]
    ms = [data.input_output_covariance]
    for w in ws[:-1]:
        g = w @ hs[-1] @ w.T
        g = 0.5 * (g + g.T)
        hs.append(g + noise_variance * np.diag(np.diag(g)))
        ms.append(w @ ms[-1])
    return hs, ms


def exact_loss(
    weights: Sequence[np.ndarray],
    data: DataMoments,
    noise_variance: float,
    weight_decay: float | Sequence[float],
) -> float:
    """Exact noise-averaged loss.

    ``L = E[y^2] - 2 U^T m_D + U^T H_D U + sum_i gamma_i ||W_i||_F^2 + gamma_u ||U||^2``, with
    ``H_D``, ``m_D`` from the forward moment recursion (uses ``E eps eps^T = 11^T + sigma^2 I``).
    """
    ws = _check_weights(weights, data.dim)
    gammas = per_layer_decay(weight_decay, len(ws) - 1)
    hs, ms = _forward(ws, data, noise_variance)
    u = ws[-1]
    data_loss = data.output_variance - 2.0 * u @ ms[-1] + u @ hs[-1] @ u
    return float(data_loss) + _penalty(ws, gammas)


def exact_loss_and_gradient(
    flat_params: np.ndarray,
    shapes: Shapes,
    data: DataMoments,
    noise_variance: float,
    weight_decay: float | Sequence[float],
) -> tuple[float, np.ndarray]:
    """Exact loss and its gradient w.r.t. the flattened ``[W_1, ..., W_D, U]``.

    Backward pass: ``K_D = U U^T``, ``g_D = U``; for ``i = D..1``:
    ``K~ = K_i + sigma^2 Diag(K_i)``,
    ``dL/dW_i = -2 g_i m_{i-1}^T + 2 K~ W_i H_{i-1} + 2 gamma_i W_i``,
    ``K_{i-1} = W_i^T K~ W_i``, ``g_{i-1} = W_i^T g_i``;
    ``dL/dU = -2 m_D + 2 H_D U + 2 gamma_u U``.
    """
    ws = _check_weights(unflatten_weights(flat_params, shapes), data.dim)
    depth = len(ws) - 1
    gammas = per_layer_decay(weight_decay, depth)
    hs, ms = _forward(ws, data, noise_variance)
    u = ws[-1]
    loss = data.output_variance - 2.0 * u @ ms[-1] + u @ hs[-1] @ u + _penalty(ws, gammas)

    grads: list[np.ndarray] = [np.empty(0)] * (depth + 1)
    grads[depth] = -2.0 * ms[-1] + 2.0 * hs[-1] @ u + 2.0 * gammas[depth] * u
    k = np.outer(u, u)
    g = u
    for i in range(depth, 0, -1):  # layer i uses ws[i - 1], H_{i-1} = hs[i - 1]
        w = ws[i - 1]
        kt = k + noise_variance * np.diag(np.diag(k))
        grads[i - 1] = (
            -2.0 * np.outer(g, ms[i - 1]) + 2.0 * kt @ w @ hs[i - 1] + 2.0 * gammas[i - 1] * w
        )
        k = w.T @ kt @ w
        g = w.T @ g
    return float(loss), np.concatenate([gr.ravel() for gr in grads])


# ----------------------------------------------------------------------------------------------
# sampled / enumerated noise


def _maps_from_masks(ws: Sequence[np.ndarray], eps: Sequence[np.ndarray]) -> np.ndarray:
    """Batched end-to-end maps ``a_eps = W_1^T E_1 W_2^T ... E_D U`` for noise ``eps[i]: (B, d_i)``.

    Returns an array of shape ``(B, d)``; ``f(x) = a_eps^T x`` for each draw.
    """
    depth = len(ws) - 1
    if depth == 0:
        return ws[0][None, :]
    v = eps[depth - 1] * ws[-1][None, :]  # (B, d_D)
    for i in range(depth, 1, -1):  # multiply by W_i, then noise of layer i-1
        v = np.einsum("bj,jk->bk", v, ws[i - 1]) * eps[i - 2]
    return np.einsum("bj,jk->bk", v, ws[0])


def _data_loss_of_maps(a: np.ndarray, data: DataMoments) -> np.ndarray:
    """``a^T A0 a - 2 a^T E[xy] + E[y^2]`` for each row ``a``."""
    quad = np.einsum("bi,ij,bj->b", a, data.input_covariance, a)
    return quad - 2.0 * a @ data.input_output_covariance + data.output_variance


def enumerate_dropout_loss(
    weights: Sequence[np.ndarray],
    data: DataMoments,
    keep_probability: float,
    weight_decay: float | Sequence[float],
) -> float:
    """Exact dropout loss by brute force over all ``2^(d_1 + ... + d_D)`` Bernoulli masks.

    ``eps = Bernoulli(q) / q`` per hidden unit (``sigma^2 = (1 - q) / q``); each mask has
    probability ``q^k (1 - q)^(N - k)``. Intended for small nets only (``N <= 20``).
    """
    q = float(keep_probability)
    if not 0.0 < q <= 1.0:
        raise ValueError("keep_probability must lie in (0, 1]")
    ws = _check_weights(weights, data.dim)
    gammas = per_layer_decay(weight_decay, len(ws) - 1)
    widths = [w.shape[0] for w in ws[:-1]]
    n_units = sum(widths)
    if n_units > 20:
        raise ValueError(f"{n_units} hidden units: 2^{n_units} masks is too many to enumerate")
    masks = np.array(list(itertools.product((0.0, 1.0), repeat=n_units))).reshape(-1, n_units)
    kept = masks.sum(axis=1)
    probs = q**kept * (1.0 - q) ** (n_units - kept)
    bounds = np.cumsum([0, *widths])
    eps = [masks[:, bounds[i] : bounds[i + 1]] / q for i in range(len(widths))]
    losses = _data_loss_of_maps(_maps_from_masks(ws, eps), data)
    return float(probs @ losses) + _penalty(ws, gammas)


def _sample_noise(
    widths: Sequence[int], noise_variance: float, n: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Dropout noise ``Bernoulli(q) / q`` with ``q = 1 / (1 + sigma^2)``, shape ``(n, d_i)``."""
    if noise_variance < 0:
        raise ValueError("noise_variance must be non-negative")
    if noise_variance == 0:
        return [np.ones((n, d)) for d in widths]
    q = 1.0 / (1.0 + noise_variance)
    return [(rng.random((n, d)) < q) / q for d in widths]


def sample_end_to_end_maps(
    weights: Sequence[np.ndarray], noise_variance: float, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Sample ``draws`` dropout realisations; return their maps ``a_eps`` (``f(x) = a_eps^T x``).

    Noise is ``Bernoulli(q) / q`` with ``q = 1 / (1 + sigma^2)``; shape ``(draws, d)``.
    """
    ws = [np.asarray(w, dtype=float) for w in weights]
    eps = _sample_noise([w.shape[0] for w in ws[:-1]], noise_variance, draws, rng)
    return _maps_from_masks(ws, eps)


def monte_carlo_loss(
    weights: Sequence[np.ndarray],
    data: DataMoments,
    noise_variance: float,
    weight_decay: float | Sequence[float],
    *,
    draws: int,
    rng: np.random.Generator,
    batch: int = 10000,
) -> tuple[float, float]:
    """Monte Carlo dropout loss: ``(mean, standard error)``.

    Per draw the net is linear, ``f(x) = a_eps^T x``, so the data average is exact:
    ``E_x (f - y)^2 = a^T A0 a - 2 a^T E[xy] + E[y^2]``. The penalty is deterministic and is added
    to the mean. Noise ``eps = Bernoulli(q) / q``, ``q = 1 / (1 + sigma^2)``.
    """
    if draws < 2:
        raise ValueError("need at least 2 draws for a standard error")
    ws = _check_weights(weights, data.dim)
    gammas = per_layer_decay(weight_decay, len(ws) - 1)
    widths = [w.shape[0] for w in ws[:-1]]
    sizes = [min(batch, draws - start) for start in range(0, draws, batch)]
    per_draw = []
    for n in progress(sizes, total=len(sizes), desc="monte carlo"):
        eps = _sample_noise(widths, noise_variance, n, rng)
        per_draw.append(_data_loss_of_maps(_maps_from_masks(ws, eps), data))
    values = np.concatenate(per_draw)
    stderr = float(values.std(ddof=1) / math.sqrt(draws))
    return float(values.mean()) + _penalty(ws, gammas), stderr


# ----------------------------------------------------------------------------------------------
# closed form and numerical minimisation


def balanced_minimiser(
    b: float,
    widths: Sequence[int],
    data: DataMoments,
    noise_variance: float,
    weight_decay: float,
) -> list[np.ndarray]:
    """Closed-form balanced rank-1 weights for layer scale ``b`` (equal decay ``gamma``).

    ``r_i = 1 / sqrt(d_i)`` (all entries), ``U = b r_D``, ``W_i = b r_i r_{i-1}^T`` (``i >= 2``),
    ``W_1 = r_1 w^T`` with ``w = b^D (b^(2D) s^2 A0 + gamma I)^(-1) E[xy]`` and
    ``s^2 = prod_i (1 + sigma^2 / d_i)``. It is a stationary point of the loss when ``||w|| = b``.
    ``b = 0`` gives all-zero weights.
    """
    depth = len(widths)
    if depth < 1:
        raise ValueError("balanced_minimiser needs at least one hidden layer")
    gamma = float(weight_decay)
    rs = [np.full(d, 1.0 / math.sqrt(d)) for d in widths]
    if b == 0:
        w = np.zeros(data.dim)
    else:
        s2 = noise_factor(widths, noise_variance)
        lhs = b ** (2 * depth) * s2 * data.input_covariance + gamma * np.eye(data.dim)
        w = b**depth * np.linalg.solve(lhs, data.input_output_covariance)
    weights = [np.outer(rs[0], w)]
    weights += [b * np.outer(rs[i], rs[i - 1]) for i in range(1, depth)]
    weights.append(b * rs[-1])
    return weights


def _random_init(shapes: Shapes, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian entries with standard deviation ``scale / sqrt(fan_in)``."""
    parts = []
    for shape in shapes:
        fan_in = shape[-1] if len(shape) == 2 else shape[0]
        parts.append(rng.standard_normal(shape).ravel() * scale / math.sqrt(fan_in))
    return np.concatenate(parts)


def multistart_minimum(
    widths: Sequence[int],
    data: DataMoments,
    noise_variance: float,
    weight_decay: float | Sequence[float],
    *,
    starts: int = 20,
    rng: np.random.Generator,
    init_scales: Sequence[float] = (0.1, 0.5, 1.0, 2.0),
) -> MinimumResult:
    """Numerical global minimum of :func:`exact_loss` over the full network.

    L-BFGS-B with the analytic gradient from the all-zero start plus ``starts`` Gaussian starts
    (std ``scale / sqrt(fan_in)``, cycling through ``init_scales``, so both the origin basin and
    the nonzero basin are explored). Returns the best run.
    """
    widths = [int(d) for d in widths]
    fan_ins = [data.dim, *widths]
    shapes: tuple[tuple[int, ...], ...] = tuple(
        (widths[i], fan_ins[i]) for i in range(len(widths))
    ) + ((fan_ins[-1],),)
    gammas = per_layer_decay(weight_decay, len(widths))
    n_params = sum(math.prod(s) for s in shapes)
    inits = [np.zeros(n_params)]
    inits += [_random_init(shapes, init_scales[k % len(init_scales)], rng) for k in range(starts)]
    options = {"gtol": 1e-12, "ftol": 1e-15, "maxiter": 50000, "maxfun": 100000, "maxcor": 30}

    best_x, best_loss, losses = inits[0], math.inf, []
    for x0 in progress(inits, total=len(inits), desc="multistart"):
        res = scipy.optimize.minimize(
            exact_loss_and_gradient,
            x0,
            args=(shapes, data, noise_variance, gammas),
            jac=True,
            method="L-BFGS-B",
            options=options,
        )
        loss = exact_loss(unflatten_weights(res.x, shapes), data, noise_variance, gammas)
        losses.append(loss)
        if loss < best_loss:
            best_x, best_loss = res.x, loss
    weights = tuple(unflatten_weights(best_x.copy(), shapes))
    return MinimumResult(
        loss=best_loss,
        layer_norms=np.array([np.linalg.norm(w) for w in weights]),
        predictor=end_to_end_predictor(weights),
        weights=weights,
        losses=np.sort(np.array(losses)),
    )
