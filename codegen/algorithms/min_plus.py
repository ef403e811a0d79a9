r"""Dynamic programming of a contraction principle on a grid (the IR's ``MinPlusRecursion``).

.. math::
    I_1(x) = J_1(x \mid x_0),\qquad I_{k+1}(x_i) = \min_j \big[I_k(x_j) + J_{k+1}(x_i \mid x_j)\big]

on ``size`` equally spaced points :math:`x_i` of ``[lower, upper]``; the curves are the rows
:math:`I_1..I_K` of a K x G array.  :func:`curves_fixed` and :func:`curves_staged` take the
minimum over every pair of points (:math:`O(G^2)` per stage; the rate is tabulated once when
it does not depend on the stage); :func:`curves_envelope` uses that
:math:`J(x\mid x') = A(x) + X(x)\,m(x') + c(x')`: the minimum over :math:`j` is the lower
envelope of the lines :math:`X \mapsto m_j X + c_j + I_k(x_j)` at :math:`X(x_i)`, built by the
convex-hull trick in :math:`O(G)` per stage after one sort.

``rate(x, x_prev, stage, params)`` returns :math:`J_{stage}(x \mid x_{prev})` (NaN counts as
:math:`+\infty`), ``abscissa(x, params)`` returns :math:`(A(x), X(x))` and
``line(x_prev, params)`` returns :math:`(m(x'), c(x'))`: compiled functions of the generated
module, ``params`` the tuple of the kernel's arguments.  :func:`curves_fixed`,
:func:`curves_staged` and :func:`curves_envelope` are templates
(``codegen/algorithms/templates.py``): a generated module holds them spliced with its own
callbacks.
"""

from __future__ import annotations

import math

import numpy as np

from . import cached_jit
from .templates import callback, template

#: :func:`curves_fixed` tabulates J once when G <= this (a G x G matrix of doubles: 128 MiB
#: at 4096), else it evaluates J afresh in every stage.
DP_MATRIX_LIMIT = 4096
#: At least this many stages and grid points (a grid needs two ends).
MIN_STAGES, MIN_GRID = 1, 2


@callback
def rate(x: float, x_prev: float, stage: float, params: tuple) -> float:
    """:math:`J_{stage}(x \\mid x')` (the generated module's ``_<item>_rate``)."""


@callback
def abscissa(x: float, params: tuple) -> tuple[float, float]:
    """:math:`(A(x), X(x))` of the line envelope (``_<item>_abscissa``)."""


@callback
def line(x_prev: float, params: tuple) -> tuple[float, float]:
    """:math:`(m(x'), c(x'))` of the line envelope (``_<item>_line``)."""


@template
def first_stage(lower: float, upper: float, size: float, start: float, stages: float,
                params: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The grid and a K x G array whose row 0 is :math:`I_1 = J_1(\\cdot \\mid x_0)` (NaN
    read as :math:`+\\infty`; the other rows are to be filled)."""
    n_stages = max(int(stages), MIN_STAGES)
    n_grid = max(int(size), MIN_GRID)
    x = np.linspace(lower, upper, n_grid)
    curves = np.empty((n_stages, n_grid))
    for i in range(n_grid):
        value = rate(x[i], start, 1.0, params)
        curves[0, i] = value if value == value else math.inf
    return x, curves


@template
def stage_rate(x: float, x_prev: float, stage: float, params: tuple) -> float:
    """:math:`J_{stage}(x \\mid x')`, NaN read as :math:`+\\infty`."""
    value = rate(x, x_prev, stage, params)
    return value if value == value else math.inf


@template
def curves_staged(lower: float, upper: float, size: float, start: float, stages: float,
                  params: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Grid and curves :math:`I_1..I_K` by the plain :math:`O(G^2)` minimum per stage, the
    rate evaluated for every stage and pair (it depends on the stage)."""
    x, curves = first_stage(lower, upper, size, start, stages, params)
    n_stages, n_grid = curves.shape
    for k in range(1, n_stages):
        for i in range(n_grid):
            best = math.inf
            for j in range(n_grid):
                previous = curves[k - 1, j]
                if previous == math.inf:
                    continue
                value = previous + stage_rate(x[i], x[j], float(k + 1), params)
                if value < best:
                    best = value
            curves[k, i] = best
    return x, curves


@template
def curves_fixed(lower: float, upper: float, size: float, start: float, stages: float,
                 params: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Grid and curves :math:`I_1..I_K` by the plain :math:`O(G^2)` minimum per stage, for a
    rate that does not depend on the stage: tabulated once as a G x G matrix when
    G <= :data:`DP_MATRIX_LIMIT`."""
    x, curves = first_stage(lower, upper, size, start, stages, params)
    n_stages, n_grid = curves.shape
    tabulate = n_grid <= DP_MATRIX_LIMIT
    table = np.empty((n_grid if tabulate else 0, n_grid if tabulate else 0))
    if tabulate:
        for i in range(n_grid):
            for j in range(n_grid):
                table[i, j] = stage_rate(x[i], x[j], 1.0, params)
    for k in range(1, n_stages):
        last = curves[k - 1]
        for i in range(n_grid):
            best = math.inf
            if tabulate:
                row = table[i]
                for j in range(n_grid):  # branch-free: inf + J = inf
                    best = min(best, last[j] + row[j])
            else:
                for j in range(n_grid):
                    if last[j] < math.inf:
                        best = min(best, last[j] + stage_rate(x[i], x[j], 1.0, params))
            curves[k, i] = best
    return x, curves


@cached_jit
def lower_envelope(slopes: np.ndarray, intercepts: np.ndarray, order: np.ndarray,
                   hull_slopes: np.ndarray, hull_intercepts: np.ndarray) -> int:
    """The lines of the lower envelope of :math:`X \\mapsto s_j X + b_j`, in
    ``hull_slopes/hull_intercepts[:h]`` (returns h) by decreasing slope; ``order`` sorts the
    slopes in decreasing order.  Lines with a non-finite slope or intercept are left out."""
    h = 0
    for t in range(order.shape[0]):
        j = order[t]
        s = slopes[j]
        b = intercepts[j]
        if not (math.isfinite(s) and math.isfinite(b)):
            continue
        if h > 0 and hull_slopes[h - 1] == s:  # parallel: keep the lower one
            if b >= hull_intercepts[h - 1]:
                continue
            h -= 1
        # drop the last line while the new one and the one before it cover it
        while h >= 2 and ((b - hull_intercepts[h - 2]) * (hull_slopes[h - 2] - hull_slopes[h - 1])
                          <= (hull_intercepts[h - 1] - hull_intercepts[h - 2])
                          * (hull_slopes[h - 2] - s)):
            h -= 1
        hull_slopes[h] = s
        hull_intercepts[h] = b
        h += 1
    return h


@cached_jit
def query_envelope(hull_slopes: np.ndarray, hull_intercepts: np.ndarray, h: int,
                   offsets: np.ndarray, abscissae: np.ndarray, order: np.ndarray,
                   out: np.ndarray) -> None:
    """``out[i]`` = :math:`A_i + \\min_j (s_j X_i + b_j)` over the ``h`` hull lines (+inf if
    none, or where :math:`X_i` or the value is not finite); ``order`` sorts the abscissae
    :math:`X_i` increasingly, so one pointer walks the hull."""
    p = 0
    for t in range(order.shape[0]):
        i = order[t]
        xi = abscissae[i]
        if h == 0 or not math.isfinite(xi):
            out[i] = math.inf
            continue
        while p + 1 < h and (hull_slopes[p + 1] * xi + hull_intercepts[p + 1]
                             <= hull_slopes[p] * xi + hull_intercepts[p]):
            p += 1
        value = offsets[i] + hull_slopes[p] * xi + hull_intercepts[p]
        out[i] = value if value == value else math.inf


@template
def curves_envelope(lower: float, upper: float, size: float, start: float, stages: float,
                    params: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Grid and curves :math:`I_1..I_K` by the lower envelope of lines, :math:`O(G)` per
    stage after one sort of the slopes and one of the abscissae (the rate must not depend on
    the stage)."""
    x, curves = first_stage(lower, upper, size, start, stages, params)
    n_stages, n_grid = curves.shape
    offsets = np.empty(n_grid)
    abscissae = np.empty(n_grid)
    slopes = np.empty(n_grid)
    constants = np.empty(n_grid)
    for i in range(n_grid):
        offsets[i], abscissae[i] = abscissa(x[i], params)
        slopes[i], constants[i] = line(x[i], params)
    lines = np.argsort(-slopes)  # slopes descending (NaN last)
    queries = np.argsort(abscissae)  # abscissae ascending
    hull_slopes = np.empty(n_grid)
    hull_intercepts = np.empty(n_grid)
    for k in range(1, n_stages):
        h = lower_envelope(slopes, constants + curves[k - 1], lines, hull_slopes,
                           hull_intercepts)
        query_envelope(hull_slopes, hull_intercepts, h, offsets, abscissae, queries,
                       curves[k])
    return x, curves


@cached_jit
def interpolate_grid(x: np.ndarray, y: np.ndarray, t: float) -> float:
    """Linear interpolation of ``y`` on the equally spaced grid ``x`` at ``t``; +inf outside
    the grid (NaN at a NaN)."""
    n = x.shape[0]
    if not (x[0] <= t <= x[n - 1]):
        return math.inf if t == t else math.nan
    u = (t - x[0]) / (x[1] - x[0])
    j = min(int(u), n - 2)
    w = u - j
    if w == 0.0:
        return y[j]
    if w == 1.0:
        return y[j + 1]
    return (1.0 - w) * y[j] + w * y[j + 1]
