r"""The stationary path of a layered contraction principle by Newton continuation (the IR's
``PathSaddle``).

Unknowns: the path :math:`x = (\theta_1, m_1, \dots, \theta_K, m_K)` (each in
:math:`\mathbb R^d`), and in target mode a last entry, the multiplier :math:`\lambda`.  With
:math:`S = \sum_l \ell(\theta_l, m_l, m_{l-1})` (:math:`m_0` given) and the observable
:math:`g(m_K)`, the Lagrangian is

- target mode: :math:`\mathcal L = S + \lambda\,(g(m_K) - \text{goal})`;
- tilt mode: :math:`\mathcal L = S + \text{goal}\cdot g(m_K)` (:math:`\lambda` = goal).

:func:`system` returns its gradient and its Hessian, banded (half-bandwidth
:math:`3d - 1`); :func:`solve` follows the stationary points from the typical
path (:math:`\theta = 0`, :math:`m_l` = typical step of :math:`m_{l-1}`, goal = :math:`g` there
in target mode, 0 in tilt mode) to the goal: Euler predictor along :func:`saddle_tangent`,
Newton corrector with a backtracking line search on :math:`\|\nabla\mathcal L\|`, steps
doubled after success and halved on failure.

Callbacks (compiled functions of the generated module; ``params`` the tuple of the kernel's
arguments): ``stage(theta, m, previous, params)`` returns :math:`(\ell, \nabla\ell,
\nabla^2\ell)` in :math:`(\theta, m, m')` (3d and 3d x 3d); ``typical(previous, params)`` the
typical :math:`m_l` after :math:`m_{l-1}`; ``observable(m, params)`` returns
:math:`(g, \nabla g, \nabla^2 g)`.  :func:`solve` is a template
(``codegen/algorithms/templates.py``): a generated module holds it spliced with its own
callbacks.
"""

from __future__ import annotations

import math

import numpy as np

from . import cached_jit
from .banded import band_solve
from .templates import callback, template

#: Newton iterations per continuation step at most.
SADDLE_MAX_ITERATIONS = 60
#: Newton has converged when the largest component of the gradient of the Lagrangian is at
#: most this.
SADDLE_TOLERANCE = 1e-11
#: When the line search finds no decrease, the iterate still counts as converged when its
#: gradient is at most this many times SADDLE_TOLERANCE (rounding stops the decrease there).
SADDLE_STALLED_FACTOR = 100.0
#: Target mode: the smallest continuation step (a fraction of the way) before the
#: continuation gives up with NaN.
SADDLE_MIN_STEP = 1e-5
#: Tilt mode: a continuation step this small (times 1/continuation) means a fold of the
#: Legendre map (I_L not convex there): past it the branch would jump, so the result is NaN.
SADDLE_FOLD_STEP = 1.0 / 64
#: A continuation step is refused when Newton's correction exceeds this fraction of the Euler
#: predictor's step (the branch turned or jumped; smaller steps follow it) ...
SADDLE_CORRECTOR_RATIO = 0.5
#: ... plus this absolute slack (a predictor step of 0 allows rounding-sized corrections).
SADDLE_CORRECTOR_SLACK = 1e-9
#: Continuation steps grow by this factor after a success (up to 1/continuation) and shrink
#: by SADDLE_STEP_SHRINK after a failure.
SADDLE_STEP_GROWTH = 2.0
SADDLE_STEP_SHRINK = 0.5
#: Backtracking line search: the step is multiplied by LINE_SEARCH_SHRINK until the gradient's
#: norm decreases by at least the fraction LINE_SEARCH_DECREASE of the step (Armijo) ...
LINE_SEARCH_SHRINK = 0.5
LINE_SEARCH_DECREASE = 1e-4
#: ... and given up below this step.
LINE_SEARCH_MIN_STEP = 1e-4


@callback
def stage(theta: np.ndarray, m: np.ndarray, previous: np.ndarray, params: tuple
          ) -> tuple[float, np.ndarray, np.ndarray]:
    """:math:`(\\ell, \\nabla\\ell, \\nabla^2\\ell)` in :math:`(\\theta, m, m')` (the generated
    module's ``_saddle_N_stage``)."""


@callback
def typical(previous: np.ndarray, params: tuple) -> np.ndarray:
    """The typical :math:`m_l` after :math:`m_{l-1}` (``_saddle_N_typical``)."""


@callback
def observable(m: np.ndarray, params: tuple) -> tuple[float, np.ndarray, np.ndarray]:
    """:math:`(g, \\nabla g, \\nabla^2 g)` at :math:`m` (``_saddle_N_observable``)."""


@template
def system(x: np.ndarray, goal: float, target: bool, steps: int, start: np.ndarray,
           params: tuple) -> tuple[np.ndarray, np.ndarray, float, float, float, np.ndarray]:
    """Gradient ``f`` and banded Hessian ``rows`` of the Lagrangian at ``x``
    (``rows[i, j - i + kl]``, kl = 3d - 1, width 3 kl + 1 as :func:`banded.band_solve` reads
    it), the action :math:`S`, the multiplier, :math:`g(m_K)` and :math:`\\nabla g(m_K)`.

    Stage l couples :math:`(\\theta_l, m_l)` with :math:`m_{l-1}`: within 3d - 1 positions.
    In target mode the last row and column (the multiplier) couple with :math:`m_K`, the last
    d path entries before it: within the band too."""
    d = start.shape[0]
    n = x.shape[0]
    n_local = 3 * d
    kl = n_local - 1
    f = np.zeros(n)
    rows = np.zeros((n, 3 * kl + 1))
    action = 0.0
    index = np.empty(n_local, dtype=np.int64)  # position in x of each local variable
    previous = np.empty(d)
    for layer in range(steps):
        b = 2 * d * layer
        for j in range(d):
            previous[j] = start[j] if layer == 0 else x[b - d + j]
            index[j] = b + j
            index[d + j] = b + d + j
            index[2 * d + j] = -1 if layer == 0 else b - d + j  # -1: m_0, not unknown
        value, gradient, hessian = stage(x[b:b + d], x[b + d:b + 2 * d], previous, params)
        action += value
        for a in range(n_local):
            ia = index[a]
            if ia < 0:
                continue
            f[ia] += gradient[a]
            for c in range(n_local):
                ic = index[c]
                if ic >= 0:
                    rows[ia, ic - ia + kl] += hessian[a, c]
    end = 2 * d * steps - d
    g, g_gradient, g_hessian = observable(x[end:end + d], params)
    multiplier = x[n - 1] if target else goal
    for a in range(d):
        f[end + a] += multiplier * g_gradient[a]
        for c in range(d):
            rows[end + a, c - a + kl] += multiplier * g_hessian[a, c]
        if target:
            rows[end + a, n - 1 - end - a + kl] += g_gradient[a]
            rows[n - 1, end + a - (n - 1) + kl] += g_gradient[a]
    if target:
        f[n - 1] = g - goal
    return f, rows, action, multiplier, g, g_gradient


@cached_jit
def saddle_tangent(rows: np.ndarray, g_gradient: np.ndarray, target: bool, steps: int
                   ) -> np.ndarray:
    """:math:`dx/d\\text{goal}` on the branch of stationary paths whose Lagrangian has the
    banded Hessian ``rows`` and :math:`\\nabla g(m_K)` = ``g_gradient``: the solution of
    :math:`H\\,t = -\\partial_{\\text{goal}}\\nabla\\mathcal L` (zero if H is singular)."""
    d = g_gradient.shape[0]
    n = rows.shape[0]
    rhs = np.zeros(n)
    if target:
        rhs[n - 1] = 1.0
    else:
        end = 2 * d * steps - d
        for a in range(d):
            rhs[end + a] = -g_gradient[a]
    tangent, _ = band_solve(rows, rhs, 3 * d - 1)
    if not np.all(np.isfinite(tangent)):
        return np.zeros(n)
    return tangent


@template
def solve(goal: float, target: bool, steps: int, start: np.ndarray, continuation: int,
          params: tuple) -> tuple[np.ndarray, float, float, float]:
    """The stationary path ``x`` (last entry :math:`\\lambda` in target mode), :math:`S`,
    :math:`\\lambda` and :math:`g(m_K)` at ``goal``, by continuation from the typical path in
    steps of at most 1/continuation of the way; NaNs if the continuation fails.

    A continuation step is refused (and halved) when Newton does not converge, when the sign
    of the Hessian's determinant is not :math:`(-1)^{dK}` (dK negative eigenvalues: a
    min-max in :math:`(\\theta, m)`; other stationary points are of the wrong kind), or when
    the corrector moves further than SADDLE_CORRECTOR_RATIO of the predictor's step."""
    d = start.shape[0]
    half_band = 3 * d - 1
    n = 2 * d * steps + (1 if target else 0)
    parity = -1.0 if (d * steps) % 2 else 1.0  # sign of det: d K negative eigenvalues
    x = np.zeros(n)
    m = start.copy()
    for layer in range(steps):
        m = typical(m, params)
        for j in range(d):
            x[2 * d * layer + d + j] = m[j]
    g0, _, _ = observable(m, params)
    goal0 = g0 if target else 0.0
    fail = (np.full(n, np.nan), math.nan, math.nan, math.nan)
    if not (math.isfinite(goal) and math.isfinite(goal0)):
        return fail
    done = 0.0
    current = goal0
    largest_step = 1.0 / continuation
    step = largest_step
    smallest_step = SADDLE_MIN_STEP if target else SADDLE_FOLD_STEP / continuation
    f, rows, action, multiplier, g, g_gradient = system(x, goal0, target, steps, start,
                                                        params)
    tangent = saddle_tangent(rows, g_gradient, target, steps)
    while done < 1.0:
        upto = min(1.0, done + step)
        goal_here = goal0 + (goal - goal0) * upto
        predicted = x + (goal_here - current) * tangent  # Euler predictor
        xn = predicted.copy()
        f, rows, action, multiplier, g, g_gradient = system(xn, goal_here, target, steps,
                                                            start, params)
        norm = np.sqrt(np.sum(f * f))
        ok = False
        det = 0.0
        for _ in range(SADDLE_MAX_ITERATIONS):
            if not math.isfinite(norm):
                break
            if np.max(np.abs(f)) <= SADDLE_TOLERANCE:
                ok = True
                break
            dx, det = band_solve(rows, -f, half_band)
            if not np.all(np.isfinite(dx)):
                break
            alpha = 1.0
            accepted = False
            while alpha > LINE_SEARCH_MIN_STEP:
                xt = xn + alpha * dx
                ft, rows_t, _, _, _, g_gradient_t = system(xt, goal_here, target, steps,
                                                           start, params)
                norm_t = np.sqrt(np.sum(ft * ft))
                if (math.isfinite(norm_t)
                        and norm_t <= (1.0 - LINE_SEARCH_DECREASE * alpha) * norm):
                    xn, f, rows, g_gradient, norm = xt, ft, rows_t, g_gradient_t, norm_t
                    accepted = True
                    break
                alpha *= LINE_SEARCH_SHRINK
            if not accepted:
                ok = np.max(np.abs(f)) <= SADDLE_STALLED_FACTOR * SADDLE_TOLERANCE
                break
        if ok and det != 0.0 and det != parity:
            ok = False  # a stationary path of the wrong kind (not a saddle)
        allowed = (SADDLE_CORRECTOR_RATIO * np.max(np.abs(predicted - x))
                   + SADDLE_CORRECTOR_SLACK)
        if ok and np.max(np.abs(xn - predicted)) > allowed:
            ok = False  # the corrector left the branch: a fold or a jump
        if ok:
            x, done, current = xn, upto, goal_here
            tangent = saddle_tangent(rows, g_gradient, target, steps)  # rows: at x
            step = min(SADDLE_STEP_GROWTH * step, largest_step)
        else:
            step *= SADDLE_STEP_SHRINK
            if step < smallest_step:
                return fail
    f, rows, action, multiplier, g, g_gradient = system(x, goal, target, steps, start,
                                                        params)
    return x, action, multiplier, g

