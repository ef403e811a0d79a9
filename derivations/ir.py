"""The intermediate representation: a FormulaSet of a few item kinds.

A FormulaSet is immutable data that the printers in ``codegen`` turn into LaTeX and
into numba kernels.  It knows nothing about any network family.

Items refer to parameters and to *earlier* items by symbol name: a Formula whose
expression contains the symbol ``b_star`` uses the value of the item ``b_star``,
evaluated at the same parameters.  A Root whose variable has the name of a
parameter solves for that parameter; the items it calls then see the iterate.

Item kinds
----------
:data:`ITEM_KINDS` is the one list of them: the printers, the cache's manifest and the test
interpreter find their rule for an item by its kind.

- :class:`Formula`     ``name = expr(params, earlier items)``
- :class:`Recurrence`  ``s_{k+1} = F(s_k, k)`` for ``k = 0..K-1`` from ``s_0``; a loop,
  never unrolled
- :class:`Root`        a zero of ``g(x)`` in a bracket, found by a sign-change scan and
  safeguarded Newton-bisection, selected by an objective or by order
- :class:`Expectation` ``E_z[h(z)]`` over independent standard normals ``z``: closed form,
  or Gauss-Hermite quadrature of a stated order
- :class:`MinPlusRecursion` ``I_{k+1}(x) = min_{x'} [I_k(x') + J(x | x')]`` on a grid (dynamic
  programming of a contraction principle), with an optional lower envelope of lines
- :class:`ArrayProgram` loop nests over fixed-size arrays (index notation): a set-up, a
  one-step map repeated ``steps`` times and a scalar output; for tensor recursions
  (moment maps of training dynamics) whose size is fixed by the model
- :class:`PathSaddle` the stationary path of the action of a layered contraction
  principle (forward/backward saddle-point equations of a path integral), solved as one
  Newton system on the whole path, by continuation from the typical path
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Union

import sympy as sp

from .domain import (  # noqa: F401  (re-exported: the IR's parameter domains)
    NONNEGATIVE,
    NONNEGATIVE_INTEGER,
    POSITIVE,
    POSITIVE_INTEGER,
    REAL,
    Domain,
)

#: Bump when the meaning of the IR or of the generated code changes.
IR_VERSION = "6"


class DerivationError(Exception):
    """A derivation could not be carried out (the message says which step and why)."""


@dataclass(frozen=True)
class Parameter:
    """A named scalar input of the kernels, with its domain and default value."""

    symbol: sp.Symbol
    meaning: str
    domain: Domain = REAL
    default: float | None = None
    latex: str | None = None

    @property
    def name(self) -> str:
        return self.symbol.name

    def __post_init__(self) -> None:
        _check_identifier(self.name, "parameter")
        if self.default is not None and not self.domain.contains(self.default):
            raise DerivationError(
                f"parameter {self.name}: default {self.default!r} is outside {self.domain}"
            )


def _check_identifier(name: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise DerivationError(
            f"{what} name {name!r} must be a Python identifier not starting with '_'"
        )


def _check_steps(what: str, steps: sp.Expr, minimum: int) -> None:
    """A loop bound is a parameter symbol or an integer >= ``minimum``."""
    if not (isinstance(steps, sp.Symbol) or (isinstance(steps, sp.Integer)
                                             and steps >= minimum)):
        raise DerivationError(f"{what}: steps must be a parameter symbol or an integer >= "
                              f"{minimum}")


@dataclass(frozen=True)
class Formula:
    """A closed form ``name = expr``."""

    name: str
    expr: sp.Expr
    meaning: str
    ref: str
    internal: bool = False

    def expressions(self) -> tuple[sp.Expr, ...]:
        return (self.expr,)

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        return ()


@dataclass(frozen=True)
class Recurrence:
    r"""State :math:`s_{k+1} = F(s_k, k)`, :math:`k = 0..K-1`, from :math:`s_0`; value
    ``output`` at :math:`s_K`.

    ``steps`` is a parameter or a fixed positive integer: a loop bound either way, so the
    cost of deriving and compiling does not grow with ``K``.  ``index`` is the symbol of
    ``k`` where the step depends on it.
    """

    name: str
    state: tuple[sp.Symbol, ...]
    step: tuple[sp.Expr, ...]
    init: tuple[sp.Expr, ...]
    steps: sp.Expr  # a Symbol (parameter) or a positive Integer
    output: sp.Expr
    meaning: str
    ref: str
    index: sp.Symbol | None = None
    internal: bool = False

    def __post_init__(self) -> None:
        if not (len(self.state) == len(self.step) == len(self.init)) or not self.state:
            raise DerivationError(
                f"recurrence {self.name}: state, step and init must have one equal, nonzero length"
            )
        _check_steps(f"recurrence {self.name}", self.steps, 0)

    def expressions(self) -> tuple[sp.Expr, ...]:
        return (*self.step, *self.init, self.output, self.steps)

    def loop_bounds(self) -> tuple[sp.Expr, ...]:
        return (self.steps,)

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        return (*self.state, *((self.index,) if self.index is not None else ()))


ROOT_SELECTIONS = ("first", "last", "min_objective")


@dataclass(frozen=True)
class Root:
    r"""A zero :math:`x^*` of ``equation`` :math:`g(x)` in ``bracket``.

    Where the derivation knows where g is monotone, ``monotone_breaks`` holds the points
    that cut the bracket into pieces on each of which g is strictly monotone (the zeros of
    g' inside the bracket, for instance; in any order, ignored when outside the bracket or
    NaN; ``()`` when g is monotone on the whole bracket): each piece then holds at most one
    zero, found from the signs at its ends.  Otherwise (``None``) the bracket is scanned on
    ``scan_points`` equal cells for sign changes.  Each sign change is refined by Newton
    steps on ``derivative`` safeguarded by bisection.  ``select``:
    ``"first"``/``"last"`` take the smallest/largest zero, ``"min_objective"`` takes the
    zero or extra ``candidates`` value with the least ``objective``.  With no zero and
    no candidate the value is ``fallback`` (NaN by default).
    """

    name: str
    variable: sp.Symbol
    equation: sp.Expr
    derivative: sp.Expr
    bracket: tuple[sp.Expr, sp.Expr]
    meaning: str
    ref: str
    scan_points: int = 200
    select: str = "first"
    objective: sp.Expr | None = None
    candidates: tuple[sp.Expr, ...] = ()
    fallback: sp.Expr = sp.nan
    internal: bool = False
    monotone_breaks: tuple[sp.Expr, ...] | None = None

    def __post_init__(self) -> None:
        if self.select not in ROOT_SELECTIONS:
            raise DerivationError(
                f"root {self.name}: select={self.select!r}; allowed: {', '.join(ROOT_SELECTIONS)}"
            )
        if self.select == "min_objective" and self.objective is None:
            raise DerivationError(f"root {self.name}: select='min_objective' needs an objective")
        if self.candidates and self.select != "min_objective":
            raise DerivationError(f"root {self.name}: candidates need select='min_objective'")
        if self.scan_points < 1:
            raise DerivationError(f"root {self.name}: scan_points must be >= 1")

    def expressions(self) -> tuple[sp.Expr, ...]:
        extra = (self.objective,) if self.objective is not None else ()
        return (self.equation, self.derivative, *self.bracket, *extra, *self.candidates,
                self.fallback, *(self.monotone_breaks or ()))

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        return (self.variable,)


EXPECTATION_METHODS = ("closed", "gauss-hermite")


@dataclass(frozen=True)
class Expectation:
    r""":math:`\mathbb E_z[h(z)]` over independent standard normal ``variables``.

    ``method`` is ``"closed"`` (then ``closed_form`` is the value) or
    ``"gauss-hermite:N"`` (tensor-product quadrature with N nodes per variable).
    """

    name: str
    integrand: sp.Expr
    variables: tuple[sp.Symbol, ...]
    method: str
    meaning: str
    ref: str
    closed_form: sp.Expr | None = None
    internal: bool = False

    def __post_init__(self) -> None:
        kind, _, order = self.method.partition(":")
        if kind not in EXPECTATION_METHODS:
            raise DerivationError(
                f"expectation {self.name}: method {self.method!r}; allowed: "
                "'closed' or 'gauss-hermite:N'"
            )
        if kind == "closed" and self.closed_form is None:
            raise DerivationError(f"expectation {self.name}: method 'closed' needs closed_form")
        if kind == "gauss-hermite" and not (order.isdigit() and int(order) >= 1):
            raise DerivationError(f"expectation {self.name}: write 'gauss-hermite:N' with N >= 1")

    @property
    def quadrature_order(self) -> int | None:
        kind, _, order = self.method.partition(":")
        return int(order) if kind == "gauss-hermite" else None

    def expressions(self) -> tuple[sp.Expr, ...]:
        return (self.integrand,) + ((self.closed_form,) if self.closed_form is not None else ())

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        return self.variables


@dataclass(frozen=True)
class MinPlusRecursion:
    r"""Dynamic programming of a contraction principle over ``steps`` = :math:`K` stages.

    .. math::
        I_1(x) = J_1(x \mid x_0),\qquad
        I_{k+1}(x) = \min_{x'\in[a, b]}\big[I_k(x') + J_{k+1}(x \mid x')\big],

    on ``grid_size`` equally spaced points of ``[lower, upper]``; the value is
    :math:`I_K` at ``variable`` (linear interpolation; :math:`+\infty` outside the grid).
    ``step_rate`` is :math:`J` as an expression in ``variable`` (the new state),
    ``previous`` (the old state, bound here) and, if ``index`` is given, the stage number
    :math:`k` (bound here too).  A NaN of :math:`J` counts as :math:`+\infty`.

    ``envelope`` = :math:`(A(x), X(x), m(x'), c(x'))` states that
    :math:`J(x\mid x') = A(x) + X(x)\,m(x') + c(x')` identically; then the minimum is a
    lower envelope of the lines :math:`X \mapsto m_j X + c_j + I_k(x_j)` queried at
    :math:`X(x_i)`: :math:`O(G)` per stage after one sort (convex-hull trick), instead of
    :math:`O(G^2)`.  The envelope must not depend on the stage.
    """

    name: str
    variable: sp.Symbol
    previous: sp.Symbol
    step_rate: sp.Expr
    start: sp.Expr
    steps: sp.Expr  # a Symbol (parameter) or a positive Integer
    lower: sp.Expr
    upper: sp.Expr
    grid_size: sp.Expr  # a Symbol (parameter) or an Integer >= 2
    meaning: str
    ref: str
    envelope: tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr] | None = None
    index: sp.Symbol | None = None
    internal: bool = False

    def __post_init__(self) -> None:
        _check_steps(f"min-plus recursion {self.name}", self.steps, 1)
        if not (isinstance(self.grid_size, sp.Symbol) or (
                isinstance(self.grid_size, sp.Integer) and self.grid_size >= 2)):
            raise DerivationError(f"min-plus recursion {self.name}: grid_size must be a "
                                  "parameter symbol or an integer >= 2")
        if self.envelope is not None:
            if len(self.envelope) != 4:
                raise DerivationError(f"min-plus recursion {self.name}: the envelope is "
                                      "(offset, abscissa, slope, intercept)")
            offset, abscissa, slope, intercept = (sp.sympify(e) for e in self.envelope)
            if self.previous in offset.free_symbols | abscissa.free_symbols:
                raise DerivationError(f"min-plus recursion {self.name}: the envelope's offset "
                                      f"and abscissa must not depend on {self.previous}")
            if self.variable in slope.free_symbols | intercept.free_symbols:
                raise DerivationError(f"min-plus recursion {self.name}: the envelope's slope "
                                      f"and intercept must not depend on {self.variable}")
            if self.index is not None and any(
                    self.index in sp.sympify(e).free_symbols for e in self.envelope):
                raise DerivationError(f"min-plus recursion {self.name}: the envelope must not "
                                      "depend on the stage index")
        names = {self.variable.name, self.previous.name}
        if self.index is not None:
            names.add(self.index.name)
        if len(names) != 2 + (self.index is not None):
            raise DerivationError(f"min-plus recursion {self.name}: variable, previous and "
                                  "index must be different symbols")

    @property
    def curve_variable(self) -> str:
        """Kernels compute whole curves in this argument (one per setting of the others)."""
        return self.variable.name

    def expressions(self) -> tuple[sp.Expr, ...]:
        return (self.step_rate, self.start, self.steps, self.lower, self.upper, self.grid_size,
                *(self.envelope or ()))

    def loop_bounds(self) -> tuple[sp.Expr, ...]:
        return (self.steps, self.grid_size)

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        return (self.previous, *((self.index,) if self.index is not None else ()))


def array_element(name: str, *indices: sp.Expr) -> sp.Expr:
    """The element ``name[indices]`` of an array of an :class:`ArrayProgram`."""
    return sp.Function(name)(*indices)


def array_elements(expr: sp.Expr) -> set[sp.Expr]:
    """The array elements (applied undefined functions) in ``expr``."""
    return {f for f in sp.sympify(expr).atoms(sp.Function)
            if isinstance(f, sp.core.function.AppliedUndef)}


@dataclass(frozen=True)
class ArrayConstant:
    """A fixed array (data of the model file), row-major ``values`` of ``shape``."""

    name: str
    shape: tuple[int, ...]
    values: tuple[float, ...]
    meaning: str

    def __post_init__(self) -> None:
        _check_identifier(self.name, "array")
        size = 1
        for n in self.shape:
            size *= n
        if size != len(self.values):
            raise DerivationError(f"array {self.name}: {len(self.values)} values for shape "
                                  f"{self.shape}")


@dataclass(frozen=True)
class ArrayStatement:
    r"""``target op= value`` for every value of the ``loops`` (index, extent) pairs.

    ``target`` is one array element whose indices are expressions of the loop indices
    (a scatter such as ``dz(a, i, 8 + 2*i + j)`` is allowed); with ``accumulate`` the
    value is added (indices of ``value`` absent from ``target`` are summed over), else
    assigned.  Every index runs over ``range(extent)``.
    """

    target: sp.Expr
    value: sp.Expr
    loops: tuple[tuple[sp.Symbol, int], ...] = ()
    accumulate: bool = False
    meaning: str = ""


@dataclass(frozen=True)
class LargestEigenvalue:
    r"""``target`` = :math:`\lambda_{\max}` of the symmetric leading ``size`` x ``size`` block
    of the 2-D array ``matrix`` (a statement of an :class:`ArrayProgram`).

    The kernels compute it exactly (a symmetric eigenvalue solver) for blocks up to a few
    hundred rows and by Lanczos iteration to a stated tolerance beyond, rounded up by the
    residual so that it is never below :math:`\lambda_{\max}` by more than rounding.
    """

    target: sp.Expr
    matrix: str
    size: int
    meaning: str = ""

    @property
    def loops(self) -> tuple[tuple[sp.Symbol, int], ...]:
        return ()

    @property
    def value(self) -> sp.Expr:
        """Nothing but the target is read through an expression."""
        return sp.Integer(0)


Statement = ArrayStatement | LargestEigenvalue


@dataclass(frozen=True)
class ArrayProgram:
    r"""A loop-nest program over fixed-size arrays, with a scalar result.

    ``constants`` are data arrays; ``arrays`` (name, shape) are work arrays, zero at the
    start.  ``setup`` runs once, ``body`` runs ``steps`` times (a parameter or an integer:
    one step of a recursion, never unrolled), then ``finish`` once; the value is
    ``output``, a scalar expression of array elements, parameters and earlier items (an
    index that is a parameter is truncated to an integer).  Array shapes are fixed when
    the model is derived (widths and data sizes are structural); scalar parameters
    enter the values.
    """

    name: str
    constants: tuple[ArrayConstant, ...]
    arrays: tuple[tuple[str, tuple[int, ...]], ...]
    setup: tuple[Statement, ...]
    steps: sp.Expr
    body: tuple[Statement, ...]
    finish: tuple[Statement, ...]
    output: sp.Expr
    meaning: str
    ref: str
    internal: bool = False

    def __post_init__(self) -> None:
        _check_steps(f"array program {self.name}", self.steps, 0)
        shapes = self.shapes()
        if len(shapes) != len(self.constants) + len(self.arrays):
            raise DerivationError(f"array program {self.name}: an array name is used twice")
        for name in shapes:
            _check_identifier(name, "array")
        for where, statements in (("setup", self.setup), ("body", self.body),
                                  ("finish", self.finish)):
            for st in statements:
                label = f"array program {self.name}, {where} statement {st.target}"
                targets = array_elements(st.target)
                if len(targets) != 1 or st.target not in targets:
                    raise DerivationError(f"{label}: the target must be one array element")
                if st.target.func.__name__ in {c.name for c in self.constants}:
                    raise DerivationError(f"{label}: assigns to a constant array")
                loop_names = [s.name for s, _ in st.loops]
                if len(set(loop_names)) != len(loop_names):
                    raise DerivationError(f"{label}: an index is looped over twice")
                for s, extent in st.loops:
                    if not (isinstance(extent, int) and extent >= 1):
                        raise DerivationError(f"{label}: extent of {s} must be an int >= 1")
                self._check_elements(label, (st.target, st.value), shapes)
                if isinstance(st, LargestEigenvalue):
                    shape = shapes.get(st.matrix)
                    if shape is None or len(shape) != 2 or not (
                            isinstance(st.size, int) and 1 <= st.size <= min(shape)):
                        raise DerivationError(f"{label}: lambda_max needs a declared 2-D array "
                                              "and a block size between 1 and its shape")
        indices = set(self.bound_symbols())
        for st in self.statements():
            stray = (st.target.free_symbols | sp.sympify(st.value).free_symbols) & indices \
                - {s for s, _ in st.loops}
            if stray:
                raise DerivationError(f"array program {self.name}, statement {st.target}: "
                                      f"indices {sorted(s.name for s in stray)} are not looped "
                                      "over")
        if sp.sympify(self.output).free_symbols & indices:
            raise DerivationError(f"array program {self.name}: the output uses a loop index")
        self._check_elements(f"array program {self.name}, output", (self.output,), shapes)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Array name -> shape (constants and work arrays)."""
        out = {c.name: tuple(c.shape) for c in self.constants}
        out.update({name: tuple(shape) for name, shape in self.arrays})
        return out

    @staticmethod
    def _check_elements(label: str, exprs, shapes: dict[str, tuple[int, ...]]) -> None:
        for e in exprs:
            for el in array_elements(e):
                name = el.func.__name__
                if name not in shapes:
                    raise DerivationError(f"{label}: {name} is not a declared array")
                if len(el.args) != len(shapes[name]):
                    raise DerivationError(f"{label}: {name} has {len(shapes[name])} indices, "
                                          f"used with {len(el.args)}")

    @property
    def curve_variable(self) -> str | None:
        """The step count, when it is a parameter: grid kernels run one trajectory per setting
        of the other arguments and record every step asked on the way."""
        return self.steps.name if isinstance(self.steps, sp.Symbol) else None

    def statements(self) -> tuple[Statement, ...]:
        return (*self.setup, *self.body, *self.finish)

    def loop_bounds(self) -> tuple[sp.Expr, ...]:
        return (self.steps,)

    def expressions(self) -> tuple[sp.Expr, ...]:
        out: list[sp.Expr] = [self.steps, self.output]
        for st in self.statements():
            out += [st.target, st.value]
        return tuple(out)

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        seen: dict[str, sp.Symbol] = {}
        for st in self.statements():
            for s, _ in st.loops:
                seen.setdefault(s.name, s)
        return tuple(seen.values())


PATH_SADDLE_MODES = ("target", "tilt")


@dataclass(frozen=True)
class PathSaddle:
    r"""Stationary path of a layered contraction principle (saddle point of a path integral).

    Stages :math:`l = 1..K` carry a conjugate :math:`\theta_l\in\mathbb R^d` and a state
    :math:`m_l\in\mathbb R^d`; :math:`m_0` = ``start``.  The stage function
    :math:`\ell(\theta, m, m')` (``stage``; convex in :math:`\theta`) gives the one-stage rate
    :math:`J(m\mid m') = -\min_\theta \ell(\theta, m, m')`, e.g.
    :math:`\ell = \Lambda(\theta; m') - \theta\cdot m`.  With the observable
    :math:`g(m_K)` and :math:`S = \sum_l \ell(\theta_l, m_l, m_{l-1})`:

    - ``mode="target"``: stationary point of :math:`S + \lambda\,(g(m_K) - \text{goal})`
      in all :math:`\theta_l, m_l` and the multiplier :math:`\lambda`; then
      :math:`I_K(\text{goal}) = -S` and :math:`\lambda = I_K'` where the stationary path
      that the continuation follows is the minimising one (a dynamic programming checks it);
    - ``mode="tilt"``: stationary point of :math:`S + \text{goal}\cdot g(m_K)` in all
      :math:`\theta_l, m_l` (:math:`\lambda` = goal); its value is the SCGF
      :math:`\Lambda_K(\lambda) = S + \lambda g(m_K)`.

    The stationarity conditions are the forward (:math:`\partial_\theta\ell = 0`) and
    backward (:math:`\partial_{m_l}`) saddle-point equations.  They are solved by Newton
    steps on the whole path (a banded system, half-bandwidth 3d - 1) with a backtracking
    line search, starting at the typical path (:math:`\theta = 0`, :math:`\lambda = 0`,
    :math:`m_l` = ``typical_step`` of :math:`m_{l-1}`) and moving the goal from its typical
    value (target) or 0 (tilt) to its value in ``continuation`` steps with an Euler
    predictor (halved on failure).  A step is refused if the corrector moves further than
    half the predictor's step, or if the sign of the determinant says the stationary point
    is not a min-max of the right kind (dK negative eigenvalues); the result is NaN if the
    continuation fails (in tilt mode also at a fold, where :math:`I_K` is not convex).

    ``stage_gradient`` (3d) and ``stage_hessian`` (3d rows of 3d) are the total derivatives
    of ``stage`` in :math:`(\theta, m, m')` in that order (where the stage uses items that
    move with the path, the chain rule through them is the derivation's job: ``sp.diff``
    treats an item symbol as a constant); ``observable_gradient`` (d) and
    ``observable_hessian`` (d rows of d) those of ``observable`` in :math:`m`.  The value is
    ``output``, an expression in ``action`` (S), ``multiplier`` (:math:`\lambda`) and
    ``endpoint`` (:math:`g(m_K)`) and parameters.
    """

    name: str
    conjugate: tuple[sp.Symbol, ...]
    state: tuple[sp.Symbol, ...]
    previous: tuple[sp.Symbol, ...]
    stage: sp.Expr
    stage_gradient: tuple[sp.Expr, ...]
    stage_hessian: tuple[tuple[sp.Expr, ...], ...]
    start: tuple[sp.Expr, ...]
    typical_step: tuple[sp.Expr, ...]
    observable: sp.Expr
    observable_gradient: tuple[sp.Expr, ...]
    observable_hessian: tuple[tuple[sp.Expr, ...], ...]
    goal: sp.Expr
    mode: str
    steps: sp.Expr  # a Symbol (parameter) or a positive Integer
    action: sp.Symbol
    multiplier: sp.Symbol
    endpoint: sp.Symbol
    output: sp.Expr
    meaning: str
    ref: str
    continuation: int = 16
    internal: bool = False

    def __post_init__(self) -> None:
        d = len(self.state)
        what = f"path saddle {self.name}"
        if d == 0 or len(self.conjugate) != d or len(self.previous) != d:
            raise DerivationError(f"{what}: conjugate, state and previous must have one equal, "
                                  "nonzero length")
        if len(self.start) != d or len(self.typical_step) != d:
            raise DerivationError(f"{what}: start and typical_step need {d} entries")
        if len(self.stage_gradient) != 3 * d or len(self.stage_hessian) != 3 * d or any(
                len(row) != 3 * d for row in self.stage_hessian):
            raise DerivationError(f"{what}: the stage gradient has {3 * d} entries and its "
                                  f"Hessian {3 * d} rows of {3 * d}")
        if len(self.observable_gradient) != d or len(self.observable_hessian) != d or any(
                len(row) != d for row in self.observable_hessian):
            raise DerivationError(f"{what}: the observable gradient has {d} entries and its "
                                  f"Hessian {d} rows of {d}")
        if self.mode not in PATH_SADDLE_MODES:
            raise DerivationError(f"{what}: mode={self.mode!r}; allowed: "
                                  f"{', '.join(PATH_SADDLE_MODES)}")
        if self.continuation < 1:
            raise DerivationError(f"{what}: continuation must be >= 1")
        _check_steps(what, self.steps, 1)
        names = [s.name for s in self.bound_symbols()]
        if len(set(names)) != len(names):
            raise DerivationError(f"{what}: conjugate, state, previous, action, multiplier "
                                  "and endpoint must be different symbols")
        local = {
            "stage": (self.stage, *self.stage_gradient, *sum(self.stage_hessian, ())),
            "start": self.start, "goal": (self.goal,), "steps": (self.steps,),
            "typical_step": self.typical_step,
            "observable": (self.observable, *self.observable_gradient,
                           *sum(self.observable_hessian, ())),
            "output": (self.output,),
        }
        allowed = {
            "stage": {*self.conjugate, *self.state, *self.previous},
            "typical_step": set(self.previous), "observable": set(self.state),
            "output": {self.action, self.multiplier, self.endpoint},
        }
        bound = set(self.bound_symbols())
        for part, exprs in local.items():
            extra = {s for e in exprs for s in sp.sympify(e).free_symbols & bound} - allowed.get(
                part, set())
            if extra:
                raise DerivationError(f"{what}: its {part} uses "
                                      f"{', '.join(sorted(s.name for s in extra))}")

    def expressions(self) -> tuple[sp.Expr, ...]:
        return (self.stage, *self.stage_gradient, *sum(self.stage_hessian, ()), *self.start,
                *self.typical_step, self.observable, *self.observable_gradient,
                *sum(self.observable_hessian, ()), self.goal, self.steps, self.output)

    def loop_bounds(self) -> tuple[sp.Expr, ...]:
        return (self.steps,)

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        return (*self.conjugate, *self.state, *self.previous, self.action, self.multiplier,
                self.endpoint)


#: The item kinds of the IR: the one place that lists them.  Each printer has one rule per
#: kind (``codegen/latex.py``: ``_emit_<Kind>``; ``codegen/kernels/<kind>.py``: ``emit``), as
#: has the test interpreter (``_value_<Kind>``); a test fails when one is missing.
ITEM_KINDS: tuple[type, ...] = (Formula, Recurrence, Root, Expectation, MinPlusRecursion,
                                ArrayProgram, PathSaddle)
#: Any item.
Item = Union[ITEM_KINDS]  # noqa: UP007  (built from the tuple, so that the kinds are listed once)
#: IR data that :func:`canonical` prints field by field.
_CANONICAL_DATA: tuple[type, ...] = (Domain, Parameter, ArrayConstant, ArrayStatement,
                                     LargestEigenvalue, *ITEM_KINDS)


def kind_of(item: object) -> type:
    """The kind of an IR item (an entry of :data:`ITEM_KINDS`); TypeError for anything else."""
    if type(item) not in ITEM_KINDS:
        raise TypeError(f"{type(item).__name__} is not an IR item kind; kinds: "
                        f"{', '.join(k.__name__ for k in ITEM_KINDS)}")
    return type(item)


@dataclass(frozen=True)
class FormulaSet:
    """An ordered, immutable set of derived items over named parameters."""

    name: str
    family: str
    source: str
    params: tuple[Parameter, ...]
    items: tuple[Item, ...]
    latex_names: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    #: (item name, what it means): the item's value must be >= 0 for valid parameters
    constraints: tuple[tuple[str, str], ...] = ()
    _index: Mapping[str, Item] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known: dict[str, sp.Symbol] = {}
        for p in self.params:
            if p.name in known:
                raise DerivationError(f"{self.name}: parameter {p.name} given twice")
            known[p.name] = p.symbol
        index: dict[str, Item] = {}
        for item in self.items:
            _check_identifier(item.name, "item")
            if item.name in known:
                raise DerivationError(f"{self.name}: item {item.name} clashes with a name in use")
            bound = {s.name: s for s in item.bound_symbols()}
            for expr in item.expressions():
                for sym in sorted(sp.sympify(expr).free_symbols, key=lambda s: s.name):
                    ref = bound.get(sym.name, known.get(sym.name))
                    if ref is None:
                        raise DerivationError(
                            f"{self.name}: item {item.name} uses {sym.name}, which is neither a "
                            "parameter, an earlier item nor a bound variable"
                        )
                    if ref != sym:
                        raise DerivationError(
                            f"{self.name}: item {item.name} uses symbol {sym.name} with other "
                            "assumptions than its definition"
                        )
            index[item.name] = item
            known[item.name] = item_symbol(item.name)
        unbounded = {p.name for p in self.params if not math.isfinite(p.domain.upper)}
        for item in self.items:
            for bound in getattr(item, "loop_bounds", tuple)():
                if isinstance(bound, sp.Symbol) and bound.name in unbounded:
                    raise DerivationError(
                        f"{self.name}: item {item.name} loops {bound.name} times: the domain of "
                        f"{bound.name} needs a finite upper bound (a documented maximum)")
        for name, _ in self.constraints:
            if name not in index:
                raise DerivationError(f"{self.name}: constraint {name} is not an item")
        object.__setattr__(self, "_index", index)

    # -- access ---------------------------------------------------------------------
    def item(self, name: str) -> Item:
        return self._index[name]

    def param(self, name: str) -> Parameter:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def quantities(self) -> tuple[str, ...]:
        """Names of the public items (the ones ``netderive eval`` accepts)."""
        return tuple(i.name for i in self.items if not i.internal)

    def dependencies(self, item: Item) -> tuple[str, ...]:
        """Names of the earlier items that ``item`` uses directly, in definition order."""
        bound = {s.name for s in item.bound_symbols()}
        used = {s.name for e in item.expressions() for s in sp.sympify(e).free_symbols}
        return tuple(n for n in self._index if n in used - bound and n != item.name)

    def arguments(self, name: str) -> tuple[str, ...]:
        """Parameter names the kernel ``name`` takes, in parameter order.

        The parameters used by the item and (transitively) by its dependencies, less the
        ones that a Root of this item solves for.
        """
        memo = self.__dict__.setdefault("_arguments_memo", {})
        if name in memo:
            return memo[name]
        item = self._index[name]
        param_names = [p.name for p in self.params]
        bound = {s.name for s in item.bound_symbols()}
        used = {s.name for e in item.expressions() for s in sp.sympify(e).free_symbols}
        for dep in self.dependencies(item):
            used.update(self.arguments(dep))
        memo[name] = tuple(n for n in param_names if n in used - bound)
        return memo[name]

    def __str__(self) -> str:
        lines = [f"FormulaSet {self.name} (family {self.family}, from {self.source})"]
        for p in self.params:
            default = "" if p.default is None else f" = {p.default!r}"
            lines.append(f"  param {p.name} in {p.domain}{default}: {p.meaning}")
        for item in self.items:
            lines.append(f"  {type(item).__name__} {item.name}: {item.meaning}")
        return "\n".join(lines)


def item_symbol(name: str) -> sp.Symbol:
    """The symbol that stands for the value of item ``name`` inside later items (the one way
    to get it: :class:`FormulaSet` checks later items against it)."""
    return sp.Symbol(name, real=True)


@functools.lru_cache(maxsize=4096)
def _srepr(expr: sp.Basic) -> str:
    """``srepr``, memoised: items that share large expressions (the stage of two path saddles)
    print them once (measured: 13 s of the ReLU model's 19 s of code generation)."""
    return sp.srepr(expr)


def canonical(obj: object) -> str:
    """Canonical text of IR data: ``srepr`` for sympy objects, stable across processes."""
    if isinstance(obj, sp.Basic):
        return _srepr(obj)
    if isinstance(obj, tuple | list):
        return "(" + ", ".join(canonical(o) for o in obj) + ")"
    if isinstance(obj, _CANONICAL_DATA):
        body = ", ".join(
            f"{f.name}={canonical(getattr(obj, f.name))}" for f in fields(obj) if f.init
        )
        return f"{type(obj).__name__}({body})"
    if isinstance(obj, float):
        return repr(obj)
    if obj is None or isinstance(obj, str | int | bool):
        return repr(obj)
    raise TypeError(f"no canonical form for {type(obj).__name__}")


def content_hash(fs: FormulaSet, extra: Iterable[str] = ()) -> str:
    """sha256 of the canonical text of ``fs`` (never Python's ``hash``)."""
    parts = [
        IR_VERSION,
        sp.__version__,
        fs.name,
        fs.family,
        canonical(fs.params),
        *(canonical(i) for i in fs.items),
        canonical(fs.latex_names),
        canonical(fs.notes),
        canonical(fs.constraints),
        *extra,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
