r"""Zeros of :math:`g(x)` in a bracket, and the choice among them (the IR's ``Root``).

The bracket :math:`[a, b]` is cut into ``cells`` equal cells; a cell whose ends have values of
opposite signs (both finite) holds a zero, found by Newton steps safeguarded by bisection
(:func:`refine_root`); a value exactly 0 at a cell's end is a zero too.  :func:`select_root`
returns the first zero, the last one, or the zero or extra candidate with the least
objective; with none of them it returns the fallback.

``equation(x, params)`` returns :math:`(g(x), g'(x))` and ``objective(x, params)`` a number:
compiled functions of the generated module, ``params`` the tuple of the kernel's arguments.
:func:`root_search` is a template (``codegen/algorithms/templates.py``): a generated module
holds it spliced with its own ``equation`` and ``objective``.
"""

from __future__ import annotations

import math

import numpy as np

from .templates import callback, template

#: Newton-bisection stops when its step, or the bracket it keeps, is at most this times
#: (1 + |x|): a few units in the last place of a double.
ROOT_TOLERANCE = 1e-14
#: Iterations of :func:`refine_root` at most (each one at least halves the bracket when Newton
#: leaves it, so 200 is far below any float spacing; Newton ends in a handful).
ROOT_MAX_ITERATIONS = 200

#: Codes of ``Root.select`` (``select`` argument of :func:`select_root`).
FIRST, LAST, MIN_OBJECTIVE = 0, 1, 2
SELECTIONS = {"first": FIRST, "last": LAST, "min_objective": MIN_OBJECTIVE}


@callback
def equation(x: float, params: tuple) -> tuple[float, float]:
    """g(x) and g'(x) at the iterate (the generated module's ``_<root>_equation``)."""


@callback
def objective(x: float, params: tuple) -> float:
    """The objective of ``min_objective`` (the generated module's ``_<root>_objective``)."""


@template
def refine_root(a: float, b: float, ga: float, params: tuple) -> float:
    """A zero of g in ``[a, b]`` where g changes sign (``ga`` = g(a)): Newton steps
    :math:`x - g/g'`, replaced by the bisection of the bracket kept so far when they leave it
    (or g' is 0 or not finite)."""
    x = 0.5 * (a + b)
    for _ in range(ROOT_MAX_ITERATIONS):
        g, dg = equation(x, params)
        if g == 0.0:
            return x
        if (g < 0.0) == (ga < 0.0):
            a, ga = x, g
        else:
            b = x
        xn = x - g / dg if dg != 0.0 else 0.5 * (a + b)
        if not (a < xn < b) or not math.isfinite(xn):
            xn = 0.5 * (a + b)
        if (abs(xn - x) <= ROOT_TOLERANCE * (1.0 + abs(x))
                or b - a <= ROOT_TOLERANCE * (1.0 + abs(x))):
            return xn
        x = xn
    return x


@template
def root_search(lower: float, upper: float, cells: int, select: int, candidates: np.ndarray,
                fallback: float, params: tuple) -> float:
    """The zero of ``equation`` in ``[lower, upper]`` chosen by ``select``:
    :data:`FIRST` / :data:`LAST`: the smallest / largest zero found by the scan of ``cells``
    cells; :data:`MIN_OBJECTIVE`: the zero or entry of ``candidates`` (an array) with the least
    ``objective`` (the first of equals).  ``fallback`` when there is none."""
    best = fallback
    best_objective = math.inf
    if select == MIN_OBJECTIVE:
        for c in candidates:
            value = objective(c, params)
            if value < best_objective:
                best, best_objective = c, value
    xa = lower
    ga, _ = equation(xa, params)
    for j in range(1, cells + 1):
        xb = lower + (upper - lower) * j / cells
        gb, _ = equation(xb, params)
        r = math.nan
        if ga == 0.0:
            r = xa
        elif (ga < 0.0) != (gb < 0.0) and math.isfinite(ga) and math.isfinite(gb):
            r = refine_root(xa, xb, ga, params)
        if not math.isnan(r):
            if select == FIRST:
                return r
            if select == LAST:
                best = r
            else:
                value = objective(r, params)
                if value < best_objective:
                    best, best_objective = r, value
        xa, ga = xb, gb
    if ga == 0.0:  # a zero at the upper end
        if select == FIRST:
            return xa
        if select == LAST:
            best = xa
        else:
            value = objective(xa, params)
            if value < best_objective:
                best = xa
    return best
