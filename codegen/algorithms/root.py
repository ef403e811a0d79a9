r"""Zeros of :math:`g(x)` in a bracket, and the choice among them (the IR's ``Root``).

The bracket :math:`[a, b]` is cut into pieces on which g is monotone, where the derivation
knows them, else into ``cells`` equal cells; a piece whose ends have values of opposite signs
(both finite) holds a zero, found by Newton steps safeguarded by bisection
(:func:`refine_root`); a value exactly 0 at a piece's end is a zero too.  :func:`root_search`
returns the first zero, the last one, or the zero or extra candidate with the least
objective; with none of them it returns the fallback.

``equation(x, params)`` returns :math:`(g(x), g'(x))` and ``objective(x, params)`` a number:
compiled functions of the generated module, ``params`` the tuple of the kernel's arguments.
:func:`root_search` is a template (``codegen/algorithms/templates.py``): a generated module
holds it spliced with its own ``equation`` and ``objective``.
"""

from __future__ import annotations

import math

from . import cached_jit
from .templates import callback, template

#: Newton-bisection stops when its step, or the bracket it keeps, is at most this times
#: (1 + |x|): a few units in the last place of a double.
ROOT_TOLERANCE = 1e-14
#: Iterations of :func:`refine_root` at most (each one at least halves the bracket when Newton
#: leaves it, so 200 is far below any float spacing; Newton ends in a handful).
ROOT_MAX_ITERATIONS = 200

#: Codes of ``Root.select`` (``select`` argument of :func:`root_search`).
FIRST, LAST, MIN_OBJECTIVE = 0, 1, 2
SELECTIONS = {"first": FIRST, "last": LAST, "min_objective": MIN_OBJECTIVE}


#: Golden-ratio fraction: the stride of :func:`spreading_stride` (any contiguous block of
#: indices maps to runs spread over the whole sweep).
GOLDEN_FRACTION = 0.6180339887498949


@cached_jit
def spreading_stride(runs: int) -> int:
    """A stride s coprime with ``runs``, near the golden fraction of it: r -> r s mod runs is
    a permutation of 0..runs-1 that spreads any contiguous block of r over the sweep (grid
    kernels give each thread a contiguous block)."""
    stride = max(1, int(GOLDEN_FRACTION * runs))
    while math.gcd(stride, runs) != 1:
        stride += 1
    return stride


@callback
def equation(x: float, params: tuple) -> tuple[float, float]:
    """g(x) and g'(x) at the iterate (the generated module's ``_<root>_equation``)."""


@callback
def objective(x: float, params: tuple) -> float:
    """The objective of ``min_objective`` (the generated module's ``_<root>_objective``)."""


@template
def refine_root(a: float, b: float, ga: float, gb: float, dga: float, dgb: float,
                params: tuple) -> float:
    """A zero of g in ``[a, b]`` where g changes sign (``ga``, ``gb``: g at the ends, ``dga``,
    ``dgb``: g' there): Newton steps :math:`x - g/g'`, replaced by the bisection of the bracket
    kept so far when they leave it (or g' is 0 or not finite).

    The start is the first Newton step from an end that stays inside the bracket (from the
    end with the smaller |g| if both do: on a convex or concave piece one of them does, and
    Newton then converges monotonically), else the false-position point."""
    from_a = a - ga / dga
    from_b = b - gb / dgb
    inside_a = a < from_a < b
    inside_b = a < from_b < b
    if inside_a and (not inside_b or abs(ga) <= abs(gb)):
        x = from_a
    elif inside_b:
        x = from_b
    else:
        x = a - ga * (b - a) / (gb - ga)
        if not (a < x < b):
            x = 0.5 * (a + b)
    for _ in range(ROOT_MAX_ITERATIONS):
        g, dg = equation(x, params)
        if g == 0.0:
            return x
        if (g < 0.0) == (ga < 0.0):
            a, ga = x, g
        else:
            b = x
        step = g / dg if dg != 0.0 else math.inf
        if abs(step) <= ROOT_TOLERANCE * (1.0 + abs(x)):
            # converged: the Newton point, kept in the bracket (rounding may put it a few
            # units in the last place outside, where bisection would creep for ~40 steps)
            return min(max(x - step, a), b)
        xn = x - step
        if not (a < xn < b) or not math.isfinite(xn):
            xn = 0.5 * (a + b)
        if b - a <= ROOT_TOLERANCE * (1.0 + abs(x)):
            return xn
        x = xn
    return x


@template
def offer(x: float, select: int, best: float, best_objective: float, params: tuple
          ) -> tuple[float, float]:
    """The choice ``(best, best_objective)`` once the zero or candidate ``x`` is offered:
    :data:`LAST` takes it (zeros come in increasing order); :data:`MIN_OBJECTIVE` takes it if
    its ``objective`` is less (the first of equals stays; NaN never wins)."""
    if select == LAST:
        return x, best_objective
    value = objective(x, params)
    if value < best_objective:
        return x, value
    return best, best_objective


@template
def root_search(lower: float, upper: float, cells: int, breaks: tuple, select: int,
                candidates: tuple, fallback: float, params: tuple) -> float:
    """The zero of ``equation`` in ``[lower, upper]`` chosen by ``select``.

    ``cells > 0``: the bracket is scanned on that many equal cells; ``cells == 0``: it is cut
    at ``breaks`` (a tuple, in any order; NaNs and those outside the bracket ignored) into
    pieces on each of which g is monotone.  A cell or piece whose ends have values of
    opposite signs holds a zero (refined by :func:`refine_root`); a zero exactly at an end
    counts.  :data:`FIRST` / :data:`LAST`: the smallest / largest zero found;
    :data:`MIN_OBJECTIVE`: the zero or entry of ``candidates`` (a tuple; NaN entries never
    win) with the least ``objective`` (the first of equals).  ``fallback`` when there is
    none.  Tuples, not arrays: nothing is allocated per call."""
    best = fallback
    best_objective = math.inf
    if select == MIN_OBJECTIVE:
        for c in candidates:
            best, best_objective = offer(c, select, best, best_objective, params)
    pieces = cells if cells > 0 else len(breaks) + 1
    xa = lower
    ga, dga = equation(xa, params)
    for j in range(1, pieces + 1):
        if cells > 0:
            xb = lower + (upper - lower) * j / cells
        else:  # the next break above xa, or the upper end
            xb = upper
            for b in breaks:
                if xa < b < xb:
                    xb = b
        gb, dgb = equation(xb, params)
        r = math.nan
        if ga == 0.0:
            r = xa
        elif (ga < 0.0) != (gb < 0.0) and math.isfinite(ga) and math.isfinite(gb):
            r = refine_root(xa, xb, ga, gb, dga, dgb, params)
        if not math.isnan(r):
            if select == FIRST:
                return r
            best, best_objective = offer(r, select, best, best_objective, params)
        xa, ga, dga = xb, gb, dgb
        if cells == 0 and xb == upper:
            break
    if ga == 0.0:  # a zero at the upper end
        if select == FIRST:
            return xa
        best, best_objective = offer(xa, select, best, best_objective, params)
    return best
