"""Plain-numpy oracles for the expectation recursions of noisy gradient descent (Borovykh 2019).

An *independent reference implementation*, written by hand from the notes ``borovykh2019.md``
(sections 2-8) with numpy only: no sympy, no numba, nothing from ``derivations``,
``codegen`` or other ``runtime`` modules (only ``runtime.progress`` for progress bars). It
exists to cross-check the derived formulas and the generated kernels of the "expectation
recursions" family.

Network (notes 2): scalar output, fully connected, standard parametrisation, no output bias,

    f(x; w) = v^T phi(W_L ... phi(W_1 x + b_1) ... + b_L),

``W_l`` of shape ``(n_l, n_{l-1})`` (row i = unit i), flattened as
``w = (W_1 row-major, b_1, ..., W_L row-major, b_L, v)``. Loss ``L = 1/2 sum_i (f(x_i) - y_i)^2``
(a sum). Noisy gradient descent ``w_{t+1} = w_t - eta grad L(w_t) + s xi_t``, ``xi ~ N(0, I_P)``,
with ``s = eta sigma`` (``"eta"``) or ``s = sqrt(eta) sigma`` (``"sqrt_eta"``); t counts completed
updates. Tools:

1. :func:`network_jets` -- value, gradient (backpropagation) and Hessian (forward-over-reverse,
   exact given ``phi''``; complex step of the analytic gradient when ``phi''`` is not given).
2. :func:`linearised_prediction` -- order 1 closed forms of notes 3.2 (one eigendecomposition of
   ``Theta = J J^T``, no loop over t).
3. :func:`quadratic_closure_prediction` -- order 2 Gaussian-closure one-step map of notes 4.3 / 6
   and its observables (notes 4.4, 8.5).
4. :func:`simulate_noisy_gd` -- Monte Carlo of noisy GD on the actual network, vectorised over
   paths, antithetic pairs ``(xi, -xi)`` (notes 8.11); :func:`noiseless_gd` -- the ``s = 0`` run.

``python -m netderive.runtime.families.expectation.reference`` reproduces case A of the notes
(section 7).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from netderive.runtime.progress import progress

__all__ = [
    "LinearisedPrediction",
    "MonteCarloResult",
    "NetworkParams",
    "NoiselessRun",
    "QuadraticPrediction",
    "UnstableRecursionError",
    "case_a",
    "flatten_params",
    "initial_weights",
    "linearised_prediction",
    "main",
    "network_jets",
    "noise_scale",
    "noiseless_gd",
    "quadratic_closure_prediction",
    "simulate_noisy_gd",
    "unflatten_params",
]

Activation = Callable[[np.ndarray], np.ndarray]

#: complex-step size of the Hessian fallback (no subtractive cancellation, any tiny step works)
COMPLEX_STEP = 1e-30
#: default number of antithetic pairs per Monte Carlo batch
DEFAULT_BATCH = 8192


class UnstableRecursionError(ArithmeticError):
    """A recursion left its stability region (notes 8.3): ``eta * lambda_max >= 2``."""


class NetworkParams(NamedTuple):
    """Weights of ``f(x) = v^T phi(W_L ... phi(W_1 x + b_1) ... + b_L)``.

    ``hidden_weights[l]`` has shape ``(n_{l+1}, n_l)`` (row i = unit i), ``hidden_biases[l]``
    shape ``(n_{l+1},)`` and ``output_weights`` shape ``(n_L,)``.
    """

    hidden_weights: Sequence[np.ndarray]
    hidden_biases: Sequence[np.ndarray]
    output_weights: np.ndarray


class LinearisedPrediction(NamedTuple):
    """Order 1 (notes 3.2) at the requested steps; arrays have a leading step axis.

    ``mean``/``var``: ``E f_t``, ``Var f_t`` at the test points; ``train_mean``/``train_var``: the
    same at the training points; ``expected_loss = 1/2 sum_i E r_i^2``; ``trace_s = tr S_t``;
    ``mean_weights = m_t = E d_t``.
    """

    steps: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    train_mean: np.ndarray
    train_var: np.ndarray
    expected_loss: np.ndarray
    trace_s: np.ndarray
    mean_weights: np.ndarray


class QuadraticPrediction(NamedTuple):
    """Order 2 Gaussian closure (notes 4.3-4.4, 8.5) at the requested steps.

    ``mean``/``var`` at the test points, ``train_mean``/``train_var`` at the training points,
    ``expected_loss = script-L(m_t, S_t)``, ``trace_kbar = tr K-bar_t``,
    ``trace_hessian_at_mean = tr grad^2 L^(2)(m_t)``, ``closure_indicator = c_t``,
    ``trace_s = tr S_t``, ``mean_weights = m_t``.
    """

    steps: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    train_mean: np.ndarray
    train_var: np.ndarray
    expected_loss: np.ndarray
    trace_kbar: np.ndarray
    trace_hessian_at_mean: np.ndarray
    closure_indicator: np.ndarray
    trace_s: np.ndarray
    mean_weights: np.ndarray


class MonteCarloResult(NamedTuple):
    """Monte Carlo of noisy GD (antithetic pairs); arrays have a leading step axis.

    ``mean``, ``mean_se``, ``var``, ``var_se``: ``E f_t`` and ``Var f_t`` at the test points with
    standard errors (from pair averages; delta method for Var). ``loss_mean``/``loss_se``: the
    training loss. ``mean_displacement``: ``E d_t`` (P,). ``pattern_changed``: fraction of paths
    whose activation pattern ``sign(z)`` at the training or test inputs differs from that at
    ``w_0`` (notes 8.10). ``paths = 2 * pairs``.
    """

    steps: np.ndarray
    mean: np.ndarray
    mean_se: np.ndarray
    var: np.ndarray
    var_se: np.ndarray
    loss_mean: np.ndarray
    loss_se: np.ndarray
    mean_displacement: np.ndarray
    pattern_changed: np.ndarray
    paths: int


class NoiselessRun(NamedTuple):
    """Plain GD (``s = 0``) on the network: outputs at the test points, loss, weights ``w_t``."""

    steps: np.ndarray
    outputs: np.ndarray
    loss: np.ndarray
    weights: np.ndarray


# -- parameters ----------------------------------------------------------------------------------


def _as_params(params: NetworkParams | Sequence) -> NetworkParams:
    ws, bs, v = params
    ws = [np.asarray(w, dtype=float) for w in ws]
    bs = [np.asarray(b, dtype=float) for b in bs]
    v = np.asarray(v, dtype=float)
    if len(ws) != len(bs) or not ws:
        raise ValueError("need as many hidden biases as hidden weight matrices (at least one)")
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"layer {i + 1}: weight shape {w.shape}, bias shape {b.shape}")
        if i and w.shape[1] != ws[i - 1].shape[0]:
            raise ValueError(
                f"layer {i + 1}: {w.shape[1]} inputs, previous width {ws[i - 1].shape[0]}"
            )
    if v.shape != (ws[-1].shape[0],):
        raise ValueError(f"output_weights shape {v.shape}, last width {ws[-1].shape[0]}")
    return NetworkParams(ws, bs, v)


def _layout(params: NetworkParams) -> list[tuple[int, tuple[int, ...]]]:
    """``(offset, shape)`` of ``W_1, b_1, ..., W_L, b_L, v`` in the flat vector."""
    out, off = [], 0
    for w, b in zip(params.hidden_weights, params.hidden_biases, strict=True):
        for a in (w, b):
            out.append((off, a.shape))
            off += a.size
    out.append((off, params.output_weights.shape))
    return out


def flatten_params(params: NetworkParams | Sequence) -> np.ndarray:
    """``w = (W_1 row-major, b_1, ..., W_L row-major, b_L, v)`` as a float vector of length P."""
    p = _as_params(params)
    parts = [a.ravel() for wb in zip(p.hidden_weights, p.hidden_biases, strict=True) for a in wb]
    return np.concatenate([*parts, p.output_weights])


def unflatten_params(w: np.ndarray, like: NetworkParams | Sequence) -> NetworkParams:
    """Inverse of :func:`flatten_params` with the layer shapes of ``like``.

    ``w`` may carry leading batch axes ``(..., P)``; the arrays are then ``(..., *shape)``.
    """
    w = np.asarray(w)
    lay = _layout(_as_params(like))
    arrs = [w[..., o : o + math.prod(s)].reshape(*w.shape[:-1], *s) for o, s in lay]
    return NetworkParams(arrs[0:-1:2], arrs[1:-1:2], arrs[-1])


def initial_weights(init: Mapping[str, Any], widths: Sequence[int], input_dim: int
                    ) -> NetworkParams:
    """The initial weights of a model's ``[init]`` table (notes 7): the explicit
    ``hidden_weights`` (matrix l maps layer l-1 to layer l, row i = unit i), ``hidden_biases``
    and ``output_weights``; or drawn from ``seed``: from ``numpy.random.default_rng(seed)``, in
    this order, ``W_l ~ N(0, 1/n_{l-1})`` of shape ``(n_l, n_{l-1})`` for l = 1..L, then
    ``v ~ N(0, 1/n_L)``; biases 0 (``n_0`` = ``input_dim``, ``n_l`` = ``widths``)."""
    if "seed" not in init:
        return _as_params((init["hidden_weights"], init["hidden_biases"],
                           init["output_weights"]))
    rng = np.random.default_rng(int(init["seed"]))
    fan_ins = [input_dim, *widths[:-1]]
    weights = [rng.standard_normal((units, fan_in)) / np.sqrt(fan_in)
               for units, fan_in in zip(widths, fan_ins, strict=True)]
    biases = [np.zeros(units) for units in widths]
    last = widths[-1]
    return NetworkParams(weights, biases, rng.standard_normal(last) / np.sqrt(last))


def noise_scale(learning_rate: float, sigma: float, noise_scaling: str = "eta") -> float:
    """Per-step noise ``s``: ``eta sigma`` (``"eta"``) or ``sqrt(eta) sigma`` (``"sqrt_eta"``)."""
    if noise_scaling == "eta":
        return learning_rate * sigma
    if noise_scaling == "sqrt_eta":
        return math.sqrt(learning_rate) * sigma
    raise ValueError(f"noise_scaling must be 'eta' or 'sqrt_eta', got {noise_scaling!r}")


# -- jets ----------------------------------------------------------------------------------------


def _value_and_jacobian(
    params: NetworkParams, phi: Activation, dphi: Activation, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list, list]:
    """``f(x_b)`` and per-input gradients ``J[b, p]`` by backpropagation (real or complex)."""
    hs, zs = [x], []
    for w, b in zip(params.hidden_weights, params.hidden_biases, strict=True):
        zs.append(hs[-1] @ w.T + b)
        hs.append(phi(zs[-1]))
    f = hs[-1] @ params.output_weights
    n = x.shape[0]
    gh = np.broadcast_to(params.output_weights, hs[-1].shape)
    blocks = [hs[-1]]  # d f / d v
    for layer in range(len(zs) - 1, -1, -1):
        gz = dphi(zs[layer]) * gh
        blocks.append(gz)  # d f / d b_l
        blocks.append((gz[:, :, None] * hs[layer][:, None, :]).reshape(n, -1))  # d f / d W_l
        gh = gz @ params.hidden_weights[layer]
    return f, np.concatenate(blocks[::-1], axis=1), zs, hs


def network_jets(
    params: NetworkParams | Sequence,
    phi: Activation,
    dphi: Activation,
    d2phi: Activation | None,
    inputs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jets at ``w``: ``f0[b] = f(x_b)``, ``J[b, p] = d_p f(x_b)``, ``H[b, p, q] = d_p d_q f(x_b)``.

    ``J`` by backpropagation. ``H`` by forward-over-reverse differentiation of the backpropagation
    (the directional derivative of every backward quantity along each unit vector ``e_q``), which
    is exact to round-off given ``phi''`` -- also for ReLU with ``phi'' = 0`` away from the kink.
    If ``d2phi`` is None, ``H[:, :, q] = Im grad f(w + i h e_q) / h`` (complex step, also exact to
    round-off, but needs ``phi`` and ``dphi`` analytic and accepting complex arrays, e.g. tanh).
    ``H`` is symmetrised.
    """
    p = _as_params(params)
    x = np.atleast_2d(np.asarray(inputs, dtype=float))
    f0, jac, zs, hs = _value_and_jacobian(p, phi, dphi, x)
    n, n_par = jac.shape
    if d2phi is None:
        w0 = flatten_params(p)
        hess = np.empty((n, n_par, n_par))
        for q in range(n_par):
            wc = w0.astype(complex)
            wc[q] += 1j * COMPLEX_STEP
            _, jc, _, _ = _value_and_jacobian(unflatten_params(wc, p), phi, dphi, x.astype(complex))
            hess[:, :, q] = jc.imag / COMPLEX_STEP
    else:
        hess = _forward_over_reverse(p, dphi, d2phi, zs, hs)
    return f0, jac, 0.5 * (hess + hess.transpose(0, 2, 1))


def _forward_over_reverse(
    p: NetworkParams, dphi: Activation, d2phi: Activation, zs: list, hs: list
) -> np.ndarray:
    """Hessian rows: tangents of the backpropagation along all P unit directions at once."""
    n_par = sum(math.prod(s) for _, s in _layout(p))
    tw = unflatten_params(np.eye(n_par), p)  # tangent weights, leading axis = direction k
    n = hs[0].shape[0]
    # forward tangents dz_l, dh_l: shape (P, n, n_l)
    dzs, dhs = [], [None]
    for layer, w in enumerate(p.hidden_weights):
        dz = np.einsum("nj,kij->kni", hs[layer], tw.hidden_weights[layer])
        dz = dz + tw.hidden_biases[layer][:, None, :]
        if dhs[-1] is not None:
            dz = dz + dhs[-1] @ w.T
        dzs.append(dz)
        dhs.append(dphi(zs[layer]) * dz)
    # backward: gh = df/dh_l (n, n_l) and its tangent dgh (P, n, n_l)
    gh = np.broadcast_to(p.output_weights, hs[-1].shape)
    dgh = np.broadcast_to(tw.output_weights[:, None, :], dhs[-1].shape)
    blocks = [dhs[-1]]  # tangent of d f / d v = h_L
    for layer in range(len(zs) - 1, -1, -1):
        d1 = dphi(zs[layer])
        gz = d1 * gh
        dgz = d2phi(zs[layer]) * dzs[layer] * gh + d1 * dgh
        blocks.append(dgz)
        dgw = dgz[:, :, :, None] * hs[layer][None, :, None, :]
        if dhs[layer] is not None:
            dgw = dgw + gz[None, :, :, None] * dhs[layer][:, :, None, :]
        blocks.append(dgw.reshape(n_par, n, -1))
        dgh = dgz @ p.hidden_weights[layer] + np.einsum("ni,kij->knj", gz, tw.hidden_weights[layer])
        gh = gz @ p.hidden_weights[layer]
    hk = np.concatenate(blocks[::-1], axis=2)  # hk[k, b, p] = d_k d_p f(x_b)
    return np.ascontiguousarray(hk.transpose(1, 2, 0))


# -- order 1 -------------------------------------------------------------------------------------


def _steps_array(steps: Sequence[int]) -> np.ndarray:
    t = np.asarray(list(steps), dtype=np.int64)
    if t.ndim != 1 or t.size == 0 or np.any(t < 0) or np.any(np.diff(t) < 0):
        raise ValueError(f"steps must be a non-empty sorted list of ints >= 0, got {list(steps)}")
    return t


def linearised_prediction(
    f0_train: np.ndarray,
    J_train: np.ndarray,
    train_targets: np.ndarray,
    f0_test: np.ndarray,
    J_test: np.ndarray,
    learning_rate: float,
    s: float,
    steps: Sequence[int],
) -> LinearisedPrediction:
    """Order 1 closed forms (notes 3.2) via ``Theta = J J^T = sum_a lambda_a u_a u_a^T``.

    With ``q_a = 1 - eta lambda_a``, ``c_a(x) = Theta(x, X) u_a`` and ``G_t(q) = sum_{k<t} q^2k``:
    ``E f_t(x) = f0(x) - sum_a c_a (1 - q_a^t) (u_a . r0) / lambda_a`` and
    ``Var f_t(x) = s^2 {t [kappa(x) - sum_a c_a^2 / lambda_a] + sum_a c_a^2 G_t(q_a) / lambda_a}``;
    ``E f_t(X) = Y + A^t r0`` (zero modes keep their part of r0),
    ``Cov f_t(X) = s^2 sum_a lambda_a G_t(q_a) u_a u_a^T``,
    ``tr S_t = s^2 [t (P - rank) + sum_a G_t(q_a)]``,
    ``m_t = -J^T sum_a u_a (1 - q_a^t) (u_a . r0) / lambda_a``.
    Zero modes of Theta (``n > P`` or rank-deficient J) are dropped: they do not move f.
    Raises :class:`UnstableRecursionError` if ``eta lambda_max >= 2``.
    """
    t = _steps_array(steps).astype(float)
    jx, jt = np.asarray(J_train, float), np.asarray(J_test, float)
    r0 = np.asarray(f0_train, float) - np.asarray(train_targets, float)
    lam, u = np.linalg.eigh(jx @ jx.T)
    keep = lam > 1e-12 * max(lam.max(), 1e-300)
    lam, u = lam[keep], u[:, keep]
    eta = learning_rate
    if eta * lam.max() >= 2.0:
        raise UnstableRecursionError(
            f"order 1 unstable: eta * lambda_max(Theta) = {eta * lam.max():.6g} >= 2"
        )
    q = 1.0 - eta * lam
    qt = q[None, :] ** t[:, None]  # (T, modes)
    geom = (1.0 - qt**2) / (eta * lam * (2.0 - eta * lam))  # G_t(q_a)
    ur = u.T @ r0
    c = (jt @ jx.T) @ u  # (n*, modes)
    kappa = np.einsum("bp,bp->b", jt, jt)
    decay = (1.0 - qt) * ur / lam  # (T, modes)
    mean = np.asarray(f0_test, float)[None, :] - decay @ c.T
    post = kappa - (c**2) @ (1.0 / lam)
    var = s**2 * (t[:, None] * post[None, :] + geom @ (c**2 / lam).T)
    train_mean = np.asarray(f0_train, float)[None, :] - ((1.0 - qt) * ur) @ u.T
    train_var = s**2 * (geom * lam) @ (u**2).T
    res = train_mean - np.asarray(train_targets, float)[None, :]
    expected_loss = 0.5 * (np.sum(res**2, axis=1) + train_var.sum(axis=1))
    trace_s = s**2 * (t * (jx.shape[1] - lam.size) + geom.sum(axis=1))
    mean_weights = -(decay @ u.T) @ jx
    return LinearisedPrediction(
        t.astype(np.int64), mean, var, train_mean, train_var, expected_loss, trace_s, mean_weights
    )


# -- order 2 -------------------------------------------------------------------------------------


def quadratic_closure_prediction(
    f0_train: np.ndarray,
    J_train: np.ndarray,
    H_train: np.ndarray,
    train_targets: np.ndarray,
    f0_test: np.ndarray,
    J_test: np.ndarray,
    H_test: np.ndarray,
    learning_rate: float,
    s: float,
    steps: Sequence[int],
) -> QuadraticPrediction:
    """Order 2 Gaussian-closure map (notes 4.3, loop body 6), every quantity from the old (m, S).

    ``a_i = J_i + H_i m``, ``rho_i = r0_i + J_i m + m H_i m / 2 + tr(H_i S) / 2``,
    ``g = sum_i [rho_i a_i + H_i S a_i]``, ``K = sum_i [a_i a_i^T + rho_i H_i + H_i S H_i]``,
    ``m' = m - eta g``, ``S' = (I - eta K) S (I - eta K) + s^2 I`` (symmetrised), ``m_0 = S_0 = 0``.
    Observables (notes 4.4): ``E f = f0 + J m + m H m / 2 + tr(H S) / 2``,
    ``Var f = a^T S a + tr(H S H S) / 2``,
    ``script-L = 1/2 sum_i [rho_i^2 + a_i^T S a_i + tr(H_i S H_i S) / 2]``,
    ``tr K = sum_i [|a_i|^2 + rho_i tr H_i + tr(H_i S H_i)]``,
    ``tr grad^2 L^(2)(m) = sum_i [|a_i|^2 + rbar_i tr H_i]``,
    ``c_t = max_i tr(H_i S H_i S) / (2 a_i^T S a_i)`` (0 at S = 0).
    Raises :class:`UnstableRecursionError` if ``eta lambda_max(K_t) >= 2`` at a step taken.
    """
    t_req = _steps_array(steps)
    jx, hx = np.asarray(J_train, float), np.asarray(H_train, float)
    jt, ht = np.asarray(J_test, float), np.asarray(H_test, float)
    y = np.asarray(train_targets, float)
    f0x, f0t = np.asarray(f0_train, float), np.asarray(f0_test, float)
    n_par = jx.shape[1]
    eta, eye = learning_rate, np.eye(n_par)
    tr_hx = np.trace(hx, axis1=1, axis2=2)
    m, S = np.zeros(n_par), np.zeros((n_par, n_par))
    rows: dict[str, list] = {k: [] for k in QuadraticPrediction._fields[1:]}

    def moments(jac: np.ndarray, hes: np.ndarray, f0: np.ndarray) -> tuple:
        a = jac + hes @ m
        hs = hes @ S
        mean = f0 + jac @ m + 0.5 * np.einsum("p,ipq,q->i", m, hes, m)
        mean += 0.5 * np.trace(hs, axis1=1, axis2=2)
        lin = np.einsum("ip,pq,iq->i", a, S, a)
        quad = 0.5 * np.einsum("ipq,iqp->i", hs, hs)
        return a, hs, mean, lin, quad

    for t in range(int(t_req[-1]) + 1):
        a, hs, ef, lin, quad = moments(jx, hx, f0x)  # ef = E f(x_i) = y_i + rho_i
        rho = ef - y
        if t in t_req:
            _, _, eft, lint, quadt = moments(jt, ht, f0t)
            for _ in range(int(np.count_nonzero(t_req == t))):
                rows["mean"].append(eft)
                rows["var"].append(lint + quadt)
                rows["train_mean"].append(ef)
                rows["train_var"].append(lin + quad)
                rows["expected_loss"].append(0.5 * np.sum(rho**2 + lin + quad))
                aa = np.einsum("ip,ip->i", a, a)
                rows["trace_kbar"].append(np.sum(aa + rho * tr_hx) + np.einsum("ipq,iqp->", hs, hx))
                rbar = rho - 0.5 * np.trace(hs, axis1=1, axis2=2)
                rows["trace_hessian_at_mean"].append(np.sum(aa + rbar * tr_hx))
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(lin > 0, quad / lin, 0.0)
                rows["closure_indicator"].append(float(ratio.max()))
                rows["trace_s"].append(np.trace(S))
                rows["mean_weights"].append(m.copy())
        if t == t_req[-1]:
            break
        g = rho @ a + np.einsum("ipr,ir->p", hs, a)
        K = a.T @ a + np.einsum("i,ipq->pq", rho, hx) + np.sum(hs @ hx, axis=0)
        K = 0.5 * (K + K.T)
        lmax = np.linalg.eigvalsh(K)[-1]
        if not np.isfinite(lmax) or eta * lmax >= 2.0:
            raise UnstableRecursionError(
                f"order 2 unstable at step {t}: eta * lambda_max(K-bar) = {eta * lmax:.6g} >= 2"
            )
        M = eye - eta * K
        m = m - eta * g
        S = M @ S @ M + s**2 * eye
        S = 0.5 * (S + S.T)
    return QuadraticPrediction(t_req, *(np.array(rows[k]) for k in QuadraticPrediction._fields[1:]))


# -- Monte Carlo on the network ------------------------------------------------------------------


class _Net:
    """The network evaluated on a batch of weight vectors ``w`` of shape ``(B, P)``."""

    def __init__(self, params: NetworkParams, phi: Activation, dphi: Activation) -> None:
        self.params, self.phi, self.dphi = params, phi, dphi
        self.lay = _layout(params)
        self.n_par = sum(math.prod(s) for _, s in self.lay)

    def views(self, w: np.ndarray) -> list[np.ndarray]:
        b = w.shape[0]
        return [w[:, o : o + math.prod(s)].reshape(b, *s) for o, s in self.lay]

    def forward(self, w: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, list, list]:
        """``f (B, n)``; pre-activations ``z_l (B, n_l, n)`` and ``h_l`` (units x inputs)."""
        arrs = self.views(w)
        hs, zs = [xt], []
        for layer in range(len(self.params.hidden_weights)):
            wl, bl = arrs[2 * layer], arrs[2 * layer + 1]
            zs.append(np.matmul(wl, hs[-1]) + bl[:, :, None])
            hs.append(self.phi(zs[-1]))
        f = np.einsum("bj,bjn->bn", arrs[-1], hs[-1])
        return f, zs, hs

    def loss_grad(
        self, w: np.ndarray, xt: np.ndarray, y: np.ndarray, out: np.ndarray
    ) -> tuple[np.ndarray, list]:
        """Loss ``1/2 sum_i r_i^2`` per path; its gradient written into ``out (B, P)``."""
        arrs = self.views(w)
        f, zs, hs = self.forward(w, xt)
        r = f - y
        gh = arrs[-1][:, :, None] * r[:, None, :]  # dL/dh_L  (B, n_L, n)
        o, _ = self.lay[-1]
        out[:, o:] = np.einsum("bjn,bn->bj", hs[-1], r)
        for layer in range(len(zs) - 1, -1, -1):
            gz = self.dphi(zs[layer]) * gh
            (ow, sw), (ob, _) = self.lay[2 * layer], self.lay[2 * layer + 1]
            out[:, ob : ob + sw[0]] = gz.sum(axis=2)
            hprev = hs[layer]
            gw = np.matmul(gz, np.swapaxes(hprev, -1, -2))
            out[:, ow : ow + sw[0] * sw[1]] = gw.reshape(w.shape[0], -1)
            if layer:
                gh = np.matmul(np.swapaxes(arrs[2 * layer], -1, -2), gz)
        return 0.5 * np.sum(r**2, axis=1), zs


def _pattern(zs: list) -> np.ndarray:
    return np.concatenate([(z > 0).reshape(z.shape[0], -1) for z in zs], axis=1)


def _pair_sums(plus: np.ndarray, minus: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Sums over pairs of ``u``, ``v``, ``u^2``, ``v^2``, ``u v``: ``u``/``v`` = pair means of
    ``f - c``/``(f - c)^2``; shape ``(5, ...)``."""
    dp, dm = plus - shift, minus - shift
    u, v = 0.5 * (dp + dm), 0.5 * (dp * dp + dm * dm)
    return np.stack([u.sum(0), v.sum(0), (u * u).sum(0), (v * v).sum(0), (u * v).sum(0)])


def _pair_moments(
    sums: np.ndarray, n: int, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, its SE, Var (``mean f^2 - (mean f)^2`` over paths) and its delta-method SE.

    With pair means ``u`` of ``f - c`` and ``v`` of ``(f - c)^2``: ``Var = vbar - ubar^2`` and
    ``SE^2 = Var_pairs(v - 2 ubar u) / n``."""
    mu, nu = sums[0] / n, sums[1] / n
    cuu = (sums[2] - n * mu * mu) / (n - 1)
    cvv = (sums[3] - n * nu * nu) / (n - 1)
    cuv = (sums[4] - n * mu * nu) / (n - 1)
    var_se2 = (cvv - 4.0 * mu * cuv + 4.0 * mu * mu * cuu) / n
    return (
        shift + mu,
        np.sqrt(np.maximum(cuu, 0.0) / n),
        nu - mu * mu,
        np.sqrt(np.maximum(var_se2, 0.0)),
    )


def _simulate_batch(
    net: _Net,
    w0: np.ndarray,
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
    learning_rate: float,
    s: float,
    t_req: np.ndarray,
    ref: NoiselessRun,
    pat0: np.ndarray,
    bp: int,
    seed: np.random.SeedSequence,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One batch of ``bp`` antithetic pairs: per requested step the pair sums of f (centred on
    the noiseless run), of the loss, the summed displacement and the count of changed patterns."""
    xt, y, xs = data
    rng = np.random.default_rng(seed)
    n_rec = t_req.size
    fsum = np.zeros((n_rec, 5, xs.shape[1]))
    lsum = np.zeros((n_rec, 5))
    dsum = np.zeros((n_rec, net.n_par))
    changed = np.zeros(n_rec)
    w = np.tile(w0, (2 * bp, 1))
    grad = np.empty_like(w)
    for t in range(int(t_req[-1]) + 1):
        loss, zx = net.loss_grad(w, xt, y, grad)
        hits = np.flatnonzero(t_req == t)
        if hits.size:
            fs, zs, _ = net.forward(w, xs)
            pat = np.concatenate([_pattern(zx), _pattern(zs)], axis=1)
            n_changed = np.count_nonzero(np.any(pat != pat0, axis=1))
            dw = (w - w0).sum(axis=0)
            k0 = hits[0]
            fsum[hits] = _pair_sums(fs[:bp], fs[bp:], ref.outputs[k0])
            lsum[hits] = _pair_sums(loss[:bp], loss[bp:], ref.loss[k0])
            dsum[hits] = dw
            changed[hits] = n_changed
        if t == t_req[-1]:
            break
        w -= learning_rate * grad
        if s:
            xi = rng.standard_normal((bp, net.n_par))
            xi *= s
            w[:bp] += xi
            w[bp:] -= xi
    return fsum, lsum, dsum, changed


def simulate_noisy_gd(
    params: NetworkParams | Sequence,
    phi: Activation,
    dphi: Activation,
    train_inputs: np.ndarray,
    train_targets: np.ndarray,
    test_inputs: np.ndarray,
    learning_rate: float,
    s: float,
    steps: Sequence[int],
    pairs: int,
    seed: int | np.random.SeedSequence | None,
    batch: int = DEFAULT_BATCH,
) -> MonteCarloResult:
    """Monte Carlo of ``w_{t+1} = w_t - eta grad L(w_t) + s xi_t`` on the actual network.

    ``2 * pairs`` paths from the fixed ``w_0 = params`` as antithetic pairs ``(xi, -xi)`` (the same
    xi sequence with opposite signs), float64, ``batch`` pairs at a time (batch j draws from the
    j-th child of ``SeedSequence(seed)``). SEs come from the pair averages
    (notes 8.11): ``SE(E f) = sd(ubar) / sqrt(pairs)``; ``Var f`` is ``mean(f^2) - mean(f)^2``
    over all paths, with the delta-method SE from the pair averages of ``f`` and ``f^2``.
    """
    if pairs < 2 or batch < 1:
        raise ValueError(f"need pairs >= 2 and batch >= 1, got pairs={pairs}, batch={batch}")
    p = _as_params(params)
    net = _Net(p, phi, dphi)
    t_req = _steps_array(steps)
    ref = noiseless_gd(p, phi, dphi, train_inputs, train_targets, test_inputs, learning_rate, t_req)
    xt = np.atleast_2d(np.asarray(train_inputs, float)).T.copy()  # (d0, n)
    xs = np.atleast_2d(np.asarray(test_inputs, float)).T.copy()
    y = np.asarray(train_targets, float)
    w0 = flatten_params(p)
    _, z0x, _ = net.forward(w0[None, :], xt)
    _, z0s, _ = net.forward(w0[None, :], xs)
    pat0 = np.concatenate([_pattern(z0x), _pattern(z0s)], axis=1)
    sizes = [min(batch, pairs - i) for i in range(0, pairs, batch)]
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    jobs = list(zip(sizes, ss.spawn(len(sizes)), strict=True))

    def run(job: tuple[int, np.random.SeedSequence]) -> tuple:
        return _simulate_batch(
            net, w0, (xt, y, xs), learning_rate, s, t_req, ref, pat0, job[0], job[1]
        )

    parts = [run(job) for job in progress(jobs, total=len(jobs), desc="noisy GD paths")]
    fsum, lsum, dsum, changed = (sum(part[i] for part in parts) for i in range(4))
    fmom = [_pair_moments(fsum[k], pairs, ref.outputs[k]) for k in range(t_req.size)]
    lmom = [_pair_moments(lsum[k], pairs, ref.loss[k]) for k in range(t_req.size)]
    return MonteCarloResult(
        t_req,
        *(np.array([mom[i] for mom in fmom]) for i in range(4)),
        np.array([mom[0] for mom in lmom]),
        np.array([mom[1] for mom in lmom]),
        dsum / (2 * pairs),
        changed / (2 * pairs),
        2 * pairs,
    )


def noiseless_gd(
    params: NetworkParams | Sequence,
    phi: Activation,
    dphi: Activation,
    train_inputs: np.ndarray,
    train_targets: np.ndarray,
    test_inputs: np.ndarray,
    learning_rate: float,
    steps: Sequence[int],
) -> NoiselessRun:
    """Plain GD ``w_{t+1} = w_t - eta grad L(w_t)``: test outputs ``f_t(x)``, ``L(w_t)``, w_t."""
    p = _as_params(params)
    net = _Net(p, phi, dphi)
    t_req = _steps_array(steps)
    xt = np.atleast_2d(np.asarray(train_inputs, float)).T.copy()
    xs = np.atleast_2d(np.asarray(test_inputs, float)).T.copy()
    y = np.asarray(train_targets, float)
    w = flatten_params(p)[None, :].copy()
    grad = np.empty_like(w)
    outs, losses, weights = [], [], []
    for t in range(int(t_req[-1]) + 1):
        loss, _ = net.loss_grad(w, xt, y, grad)
        for _ in range(int(np.count_nonzero(t_req == t))):
            outs.append(net.forward(w, xs)[0][0])
            losses.append(loss[0])
            weights.append(w[0].copy())
        if t == t_req[-1]:
            break
        w -= learning_rate * grad
    return NoiselessRun(t_req, np.array(outs), np.array(losses), np.array(weights))


# -- case A of the notes (section 7) -------------------------------------------------------------


def case_a() -> dict:
    """Case A of the notes (7.1): tanh, 2-4-1, P = 16, n = 4 training and 2 test points."""
    params = NetworkParams(
        [np.array([[0.9, -0.6], [-0.4, 1.1], [1.3, 0.5], [-0.7, -1.2]])],
        [np.array([0.1, -0.2, 0.3, 0.05])],
        np.array([0.8, -0.5, 0.6, -0.9]),
    )
    return {
        "params": params,
        "phi": np.tanh,
        "dphi": lambda z: 1.0 - np.tanh(z) ** 2,
        "d2phi": lambda z: -2.0 * np.tanh(z) * (1.0 - np.tanh(z) ** 2),
        "train_inputs": np.array([[-1.0, 0.5], [0.0, -1.0], [1.0, 1.0], [0.5, -0.5]]),
        "train_targets": np.array([-1.35, -0.07, 1.43, 1.12]),
        "test_inputs": np.array([[0.3, 0.8], [-0.8, -0.6]]),
        "settings": {"A1": (0.05, 0.2), "A2": (0.1, 0.25)},
        "steps": [1, 10, 50, 200],
    }


#: notes 7.2
_NOTES_72 = {
    "f0(X)": [-1.473060, 0.03247533, 1.511743, 1.023186],
    "r0": [-0.1230596, 0.1024753, 0.08174311, -0.09681358],
    "f0(x*)": [0.8633034, -1.2059997],
    "eig Theta": [0.4524749, 2.932431, 4.931065, 5.927509],
    "Theta(x*,X) row 1": [0.5448164, -1.215403, 3.249358, 0.3615083],
    "Theta(x*,X) row 2": [1.423404, 2.155343, -2.181824, 0.5748864],
    "kappa(x*)": [3.128604, 3.283756],
    "NTK posterior var": [0.2524598, 0.7016936],
    "tr H (X, x*)": [3.500421, -0.3596604, -1.157622, -1.339560, -0.5268684, 1.516827],
    "tr/min/max hess L(w0)": [13.81092, -0.18425, 5.9595],
    "tr Theta": [14.24348],
}
#: notes 7.3 / 7.5: per setting, per t: (E f MC, SE) x2, order1 x2, order2 x2, (Var MC, SE) x2,
#: Var order1 x2, Var order2 x2, noiseless GD x2 (points x*1, x*2)
_NOTES_73 = {
    "A1": {
        1: (
            [(0.8613201, 4.4e-07), (-1.1965137, 4.7e-07)],
            [0.8613524, -1.1965847],
            [0.8613195, -1.1965127],
            [(3.10714e-04, 9.8e-07), (3.26658e-04, 1.0e-06)],
            [3.128604e-04, 3.283756e-04],
            [3.108266e-04, 3.262343e-04],
            [0.8613459, -1.1965884],
        ),
        10: (
            [(0.8653459, 3.1e-06), (-1.1724639, 3.7e-06)],
            [0.8651726, -1.1726715],
            [0.8652882, -1.1725220],
            [(9.99840e-04, 3.2e-06), (1.36389e-03, 4.3e-06)],
            [1.023148e-03, 1.394679e-03],
            [1.001278e-03, 1.373016e-03],
            [0.8656603, -1.1730094],
        ),
        50: (
            [(0.8754344, 1.1e-05), (-1.2042993, 1.6e-05)],
            [0.8749467, -1.2048777],
            [0.8748025, -1.2049017],
            [(1.92765e-03, 6.0e-06), (4.04088e-03, 1.3e-05)],
            [2.049576e-03, 4.337204e-03],
            [2.000501e-03, 4.142847e-03],
            [0.8768364, -1.2057069],
        ),
        200: (
            [(0.8754222, 3.9e-05), (-1.2280942, 5.9e-05)],
            [0.8773554, -1.2302904],
            [0.8723095, -1.2280555],
            [(5.46910e-03, 1.7e-05), (1.28715e-02, 3.8e-05)],
            [5.836692e-03, 1.488726e-02],
            [5.369992e-03, 1.161726e-02],
            [0.8803608, -1.2312187],
        ),
    },
    "A2": {
        1: (
            [(0.8592170, 2.7e-06), (-1.1867138, 2.9e-06)],
            [0.8594014, -1.1871697],
            [0.8592105, -1.1867109],
            [(1.93615e-03, 6.1e-06), (2.02783e-03, 6.4e-06)],
            [1.955378e-03, 2.052347e-03],
            [1.931182e-03, 2.026914e-03],
            [0.8593759, -1.1871845],
        ),
        10: (
            [(0.8702442, 1.7e-05), (-1.1777243, 2.2e-05)],
            [0.8713302, -1.1800165],
            [0.8698872, -1.1781707],
            [(4.19387e-03, 1.3e-05), (6.75656e-03, 2.1e-05)],
            [4.358620e-03, 7.044431e-03],
            [4.280246e-03, 6.900136e-03],
            [0.8722031, -1.1803280],
        ),
        50: (
            [(0.8711133, 6.4e-05), (-1.2169921, 9.0e-05)],
            [0.8766682, -1.2229937],
            [0.8675154, -1.2178068],
            [(1.01047e-02, 3.0e-05), (2.13554e-02, 6.2e-05)],
            [1.067384e-02, 2.488429e-02],
            [1.055933e-02, 2.119062e-02],
            [0.8793332, -1.2239436],
        ),
        200: (
            [(0.8529990, 2.0e-04), (-1.2227572, 2.7e-04)],
            [0.8774346, -1.2311312],
            [0.8468527, -1.2267424],
            [(3.14862e-02, 8.7e-05), (6.26572e-02, 1.6e-04)],
            [3.434201e-02, 9.067557e-02],
            [2.092150e-02, 3.499507e-02],
            [0.8804598, -1.2319356],
        ),
    },
}
#: notes 7.4: per setting, per t: (E L MC, SE), E L order 1, E L order 2, tr K-bar, c_t
#: notes 7.5: order 2 at sigma = 0, (x*1, x*2) per setting and t
_NOTES_75_O2 = {
    "A1": {
        1: [0.8613458, -1.1965885],
        10: [0.8656403, -1.1730331],
        50: [0.8764986, -1.2061486],
        200: [0.8793280, -1.2308821],
    },
    "A2": {
        1: [0.8593751, -1.1871849],
        10: [0.8721263, -1.1804532],
        50: [0.8785884, -1.2242886],
        200: [0.8793809, -1.2313785],
    },
}
_NOTES_74 = {
    "A1": {
        1: ((0.0183144, 1.3e-06), 0.0183299, 0.0183149, 13.86665, 0.000),
        10: ((0.0109798, 3.1e-06), 0.0109281, 0.0109624, 14.13724, 0.004),
        50: ((0.0036427, 3.4e-06), 0.0035858, 0.0036943, 14.63767, 0.082),
        200: ((0.0022194, 3.4e-06), 0.0022040, 0.0034193, 15.14546, 0.740),
    },
    "A2": {
        1: ((0.0194703, 8.1e-06), 0.0195529, 0.0194675, 13.94278, 0.001),
        10: ((0.0128602, 1.2e-05), 0.0126937, 0.0130146, 14.43122, 0.041),
        50: ((0.0080233, 1.2e-05), 0.0078464, 0.0112363, 15.29049, 0.570),
        200: ((0.0079585, 1.1e-05), 0.0077241, 0.0154803, 15.35240, 1.452),
    },
}


def _case_a_intermediates(case: dict) -> dict[str, np.ndarray]:
    p, phi, dphi, d2 = case["params"], case["phi"], case["dphi"], case["d2phi"]
    xs = np.vstack([case["train_inputs"], case["test_inputs"]])
    f0, jac, hes = network_jets(p, phi, dphi, d2, xs)
    n = len(case["train_targets"])
    jx, jt = jac[:n], jac[n:]
    r0 = f0[:n] - case["train_targets"]
    theta = jx @ jx.T
    cross = jt @ jx.T
    kappa = np.einsum("bp,bp->b", jt, jt)
    hess_l = jx.T @ jx + np.einsum("i,ipq->pq", r0, hes[:n])
    ev = np.linalg.eigvalsh(hess_l)
    return {
        "f0(X)": f0[:n],
        "r0": r0,
        "f0(x*)": f0[n:],
        "eig Theta": np.linalg.eigvalsh(theta),
        "Theta(x*,X) row 1": cross[0],
        "Theta(x*,X) row 2": cross[1],
        "kappa(x*)": kappa,
        "NTK posterior var": kappa - np.einsum("bi,ij,bj->b", cross, np.linalg.inv(theta), cross),
        "tr H (X, x*)": np.trace(hes, axis1=1, axis2=2),
        "tr/min/max hess L(w0)": np.array([np.trace(hess_l), ev[0], ev[-1]]),
        "tr Theta": np.array([np.trace(theta)]),
    }


def main(pairs: int = 100_000, seed: int = 2019) -> None:
    """Reproduce case A (notes 7) and print it next to the notes' values."""
    case = case_a()
    p, phi, dphi, d2 = case["params"], case["phi"], case["dphi"], case["d2phi"]
    xx, yy, xs = case["train_inputs"], case["train_targets"], case["test_inputs"]
    steps = case["steps"]
    n = len(yy)
    t0 = time.perf_counter()
    f0, jac, hes = network_jets(p, phi, dphi, d2, np.vstack([xx, xs]))
    t_jets = time.perf_counter() - t0
    print("Case A (notes 7): tanh 2-4-1, P = 16, loss 1/2 sum, noise s = eta sigma")
    print(f"jets (value, backprop gradient, forward-over-reverse Hessian): {t_jets * 1e3:.2f} ms")
    print("\nIntermediate values (notes 7.2): max |ours - notes|")
    for key, ours in _case_a_intermediates(case).items():
        ref = np.array(_NOTES_72[key])
        err = np.max(np.abs(ours - ref))
        print(f"  {key:24s} {err:.1e}   ours {np.array2string(ours, precision=7)}")
    seeds = np.random.SeedSequence(seed).spawn(len(case["settings"]))
    for (name, (eta, sigma)), sd in zip(case["settings"].items(), seeds, strict=True):
        s = noise_scale(eta, sigma, "eta")
        t0 = time.perf_counter()
        o1 = linearised_prediction(f0[:n], jac[:n], yy, f0[n:], jac[n:], eta, s, steps)
        t_o1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        o2 = quadratic_closure_prediction(
            f0[:n], jac[:n], hes[:n], yy, f0[n:], jac[n:], hes[n:], eta, s, steps
        )
        t_o2 = time.perf_counter() - t0
        t0 = time.perf_counter()
        o2q = quadratic_closure_prediction(
            f0[:n], jac[:n], hes[:n], yy, f0[n:], jac[n:], hes[n:], eta, 0.0, steps
        )
        gd = noiseless_gd(p, phi, dphi, xx, yy, xs, eta, steps)
        t_gd = time.perf_counter() - t0
        t0 = time.perf_counter()
        mc = simulate_noisy_gd(p, phi, dphi, xx, yy, xs, eta, s, steps, pairs, sd)
        t_mc = time.perf_counter() - t0
        print(f"\n{name}: eta = {eta}, sigma = {sigma}, s = eta sigma = {s:g}")
        print(
            f"  timings: order 1 {t_o1 * 1e3:.2f} ms, order 2 {t_o2 * 1e3:.1f} ms, "
            f"noiseless GD + order 2 at s = 0 {t_gd * 1e3:.1f} ms, "
            f"MC {mc.paths} paths to t = {steps[-1]}: {t_mc:.1f} s"
        )
        hdr = (
            "  t   x    | E f MC (ours +- SE)     notes MC               z    | o1 diff   "
            "o2 diff   GD diff   o2(s=0) diff"
        )
        print(hdr)
        for k, t in enumerate(steps):
            mcn, o1n, o2n, vmcn, vo1n, vo2n, gdn = _NOTES_73[name][t]
            for j in range(2):
                se = math.hypot(mc.mean_se[k, j], mcn[j][1])
                z = (mc.mean[k, j] - mcn[j][0]) / se
                print(
                    f"  {t:<3d} x*{j + 1} | {mc.mean[k, j]:+.7f} +- {mc.mean_se[k, j]:.1e}  "
                    f"{mcn[j][0]:+.7f} +- {mcn[j][1]:.1e} {z:+5.2f} | "
                    f"{o1.mean[k, j] - o1n[j]:+.1e}  {o2.mean[k, j] - o2n[j]:+.1e}  "
                    f"{gd.outputs[k, j] - gdn[j]:+.1e}  "
                    f"{o2q.mean[k, j] - _NOTES_75_O2[name][t][j]:+.1e}"
                )
        print(
            "  t   x    | Var MC (ours +- SE)       notes MC                z    | o1 rel   o2 rel"
        )
        for k, t in enumerate(steps):
            _, _, _, vmcn, vo1n, vo2n, _ = _NOTES_73[name][t]
            for j in range(2):
                se = math.hypot(mc.var_se[k, j], vmcn[j][1])
                z = (mc.var[k, j] - vmcn[j][0]) / se
                print(
                    f"  {t:<3d} x*{j + 1} | {mc.var[k, j]:.5e} +- {mc.var_se[k, j]:.1e}  "
                    f"{vmcn[j][0]:.5e} +- {vmcn[j][1]:.1e} {z:+5.2f} | "
                    f"{o1.var[k, j] / vo1n[j] - 1:+.1e} {o2.var[k, j] / vo2n[j] - 1:+.1e}"
                )
        print(
            "  t   | E L MC (ours +- SE)    notes MC              z     | o1 diff  o2 diff  "
            "| tr Kbar diff | c_t (notes) | tr S o1, o2"
        )
        for k, t in enumerate(steps):
            lmc, l1, l2, trk, ct = _NOTES_74[name][t]
            se = math.hypot(mc.loss_se[k], lmc[1])
            z = (mc.loss_mean[k] - lmc[0]) / se
            print(
                f"  {t:<3d} | {mc.loss_mean[k]:.7f} +- {mc.loss_se[k]:.1e}  {lmc[0]:.7f} +- "
                f"{lmc[1]:.1e} {z:+5.2f} | {o1.expected_loss[k] - l1:+.0e}  "
                f"{o2.expected_loss[k] - l2:+.0e} | {o2.trace_kbar[k] - trk:+.1e} | "
                f"{o2.closure_indicator[k]:.3f} ({ct:.3f}) | "
                f"{o1.trace_s[k]:.5f}, {o2.trace_s[k]:.5f}"
            )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Case A of the notes borovykh2019.md, section 7")
    parser.add_argument("--pairs", type=int, default=100_000, help="antithetic pairs per setting")
    parser.add_argument("--seed", type=int, default=2019)
    args = parser.parse_args()
    main(args.pairs, args.seed)
