r"""Activation expressions: whitelisted text in ``x`` to a sympy expression, node by node.

The text of a model file is never given to ``eval``, ``sympify`` or ``parse_expr``.  It is
checked by :func:`derivations.model.check_activation_syntax` (an :mod:`ast` whitelist), and
then every ast node is turned into sympy by one rule of a table: numbers become exact
integers and rationals (``0.5*x`` is ``x/2``), names become ``x``, ``pi`` or ``e``, and
calls of :data:`derivations.model.ACTIVATION_FUNCTIONS` become sympy functions.  The
names ``"sign"`` and ``"relu"`` alone mean ``sign(x)`` and ``max(x, 0)``.

:func:`activation_bound` decides :math:`\sup_x|\phi(x)|` over the reals symbolically.
"""

from __future__ import annotations

import ast
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import NamedTuple

import mpmath
import sympy as sp
from sympy.calculus.util import continuous_domain

from .errors import ModelError
from .schema import ACTIVATION_ALLOWED, ACTIVATION_FUNCTIONS, check_activation_syntax

#: The variable of every activation expression.
ACTIVATION_VARIABLE = sp.Symbol("x", real=True)

#: Names an expression may use as values.
CONSTANTS: dict[str, sp.Expr] = {"x": ACTIVATION_VARIABLE, "pi": sp.pi, "e": sp.E}

#: Whole expressions that are a bare function name: the function applied to ``x``.
BARE_NAMES = ("sign", "relu")

#: Largest natural log of the size of a power of two numbers: ``9**9**9`` is refused.
MAX_NUMERIC_LOG = 10_000

#: Function name -> (number of arguments, sympy builder).
FUNCTIONS: dict[str, tuple[int, Callable[..., sp.Expr]]] = {
    "abs": (1, sp.Abs),
    "exp": (1, sp.exp),
    "log": (1, sp.log),
    "sqrt": (1, sp.sqrt),
    "tanh": (1, sp.tanh),
    "sinh": (1, sp.sinh),
    "cosh": (1, sp.cosh),
    "sin": (1, sp.sin),
    "cos": (1, sp.cos),
    "atan": (1, sp.atan),
    "erf": (1, sp.erf),
    "sigmoid": (1, lambda u: 1 / (1 + sp.exp(-u))),
    "softplus": (1, lambda u: sp.log(1 + sp.exp(u))),
    "max": (2, sp.Max),
    "min": (2, sp.Min),
    "sign": (1, sp.sign),
    "relu": (1, lambda u: sp.Max(u, 0)),
}

_BINARY: dict[type, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}

_UNARY: dict[type, Callable[[sp.Expr], sp.Expr]] = {
    ast.USub: lambda a: -a,
    ast.UAdd: lambda a: a,
}

if set(FUNCTIONS) != set(ACTIVATION_FUNCTIONS):  # pragma: no cover - a programming error
    raise ImportError("derivations.activation.FUNCTIONS must match model.ACTIVATION_FUNCTIONS")


class _Builder:
    """Turns a whitelisted ast into sympy; one ``_build_<Node>`` method per node type."""

    def __init__(self, text: str, source: str, key: str) -> None:
        self.text, self.source, self.key = text, source, key

    def error(self, problem: str) -> ModelError:
        return ModelError(self.source, self.key, problem, ACTIVATION_ALLOWED, self.text)

    def build(self, node: ast.AST) -> sp.Expr:
        meth = getattr(self, f"_build_{type(node).__name__}", None)
        if meth is None:
            raise self.error(f"{type(node).__name__} is not allowed in an expression")
        return meth(node)

    def _build_Expression(self, node: ast.Expression) -> sp.Expr:
        if isinstance(node.body, ast.Name) and node.body.id in BARE_NAMES:
            return FUNCTIONS[node.body.id][1](ACTIVATION_VARIABLE)
        return self.build(node.body)

    def _build_Constant(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"{value!r} is not a number")
        if isinstance(value, int):
            return sp.Integer(value)
        if not math.isfinite(value):
            written = ast.get_source_segment(self.text.strip(), node) or ast.unparse(node)
            raise self.error(f"{written} is too large for a float")
        return sp.Rational(str(value))  # exact: 0.5 is 1/2, 0.1 is 1/10

    def _build_Name(self, node: ast.Name) -> sp.Expr:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            raise self.error(f"{node.id} is a function: call it, as in {node.id}(x)")
        raise self.error(f"unknown name {node.id!r}")

    def _build_UnaryOp(self, node: ast.UnaryOp) -> sp.Expr:
        rule = _UNARY.get(type(node.op))
        if rule is None:
            raise self.error(f"operator {type(node.op).__name__} is not allowed")
        return rule(self.build(node.operand))

    def _build_BinOp(self, node: ast.BinOp) -> sp.Expr:
        left, right = self.build(node.left), self.build(node.right)
        if isinstance(node.op, ast.Pow):
            return self.power(left, right)
        rule = _BINARY.get(type(node.op))
        if rule is None:
            raise self.error(f"operator {type(node.op).__name__} is not allowed")
        return rule(left, right)

    def power(self, base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
        if base.is_number and exponent.is_number:
            # |base**exponent| = exp(exponent * log|base|): refuse exact numbers too big to hold
            size = sp.N(abs(exponent) * abs(sp.log(abs(base))), 15) if base != 0 else 0
            if not (size == 0 or size.is_finite) or size > MAX_NUMERIC_LOG:
                raise self.error("a power of numbers too large to compute exactly")
        return base**exponent

    def _build_Call(self, node: ast.Call) -> sp.Expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self.error(f"{ast.unparse(node.func)!r} is not a known function")
        name = node.func.id
        if node.keywords:
            raise self.error(f"{name} takes no keyword arguments")
        arity, rule = FUNCTIONS[name]
        if len(node.args) != arity:
            plural = "s" if arity != 1 else ""
            raise self.error(f"{name} takes {arity} argument{plural}, got {len(node.args)}")
        return rule(*(self.build(a) for a in node.args))


def parse_activation(text: str, source: str = "<activation>", key: str = "activation") -> sp.Expr:
    """The sympy expression in :data:`ACTIVATION_VARIABLE` written by ``text``.

    Raises :class:`~derivations.model.ModelError` (one line: source, key, value, problem,
    what is allowed) for anything outside the whitelist, a wrong number of arguments, an
    expression that does not depend on ``x`` or one that is undefined (``1/0``).
    """
    if not isinstance(text, str):
        raise ModelError(
            source, key, f"expected a string, got {type(text).__name__}", ACTIVATION_ALLOWED, text
        )
    builder = _Builder(text, source, key)
    try:
        tree = check_activation_syntax(source, key, text)
        expr = builder.build(tree)
    except (RecursionError, MemoryError):
        raise builder.error("the expression is nested too deeply") from None
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise builder.error("the expression is undefined or infinite (a division by zero?)")
    for sub in sp.preorder_traversal(expr):
        if sub.is_number and sub.is_extended_real is False:
            raise builder.error(f"{sub} is not a real number")
    if ACTIVATION_VARIABLE not in expr.free_symbols:
        raise builder.error("the expression does not depend on x")
    return expr


# -- the supremum of |phi| ---------------------------------------------------------------

#: Entire functions that :func:`sympy.calculus.util.continuous_domain` does not know: for the
#: domain of continuity they are replaced by ``exp`` (entire too, so the domain of ``f(u(x))``
#: is that of ``u`` either way).
ENTIRE_UNKNOWN_TO_SYMPY = (sp.erf,)

#: Functions a supremum may contain and still be printed exactly (else it becomes a Float of
#: :data:`BOUND_DIGITS` digits): the whitelist's own and the inverses that solving brings.
EXACT_BOUND_FUNCTIONS = (sp.exp, sp.log, sp.tanh, sp.sinh, sp.cosh, sp.sin, sp.cos, sp.atan,
                         sp.erf, sp.asin, sp.acos, sp.asinh, sp.acosh, sp.atanh)
#: Significant digits of a supremum that is not printable exactly, and of the numeric guard.
BOUND_DIGITS = 30

#: Seconds sympy may spend on one supremum before it counts as undecided (``solveset`` takes
#: 160 s on the critical points of ``cos(3*x) + sin(x)``; every bundled and tested activation
#: takes under 1 s).  Enforced by a SIGALRM timer on the main thread only.
BOUND_SECONDS = 10.0

#: Numeric guard of a finite supremum: |phi| on an equal-step grid of
#: :data:`GUARD_POINTS` points on [-:data:`GUARD_RANGE`, :data:`GUARD_RANGE`] and at
#: +-:data:`GUARD_FAR` must not exceed it by more than :data:`GUARD_SLACK` (relative).
GUARD_RANGE = 50
GUARD_POINTS = 2001
GUARD_FAR = (10**3, 10**6, 10**12)
GUARD_SLACK = mpmath.mpf(10) ** -20


class ActivationBound(NamedTuple):
    r""":math:`\sup_x|\phi(x)|` over the reals, and how it was decided."""

    value: sp.Expr  # a finite nonnegative real number, or oo (unbounded or undecided)
    decided: bool  # False: sympy could not decide, and value is oo (never a wrong "bounded")
    reason: str  # one line


class _Unbounded(Exception):
    """|phi| is unbounded (the message says where)."""


class _Undecided(Exception):
    """sympy cannot decide (the message says what failed)."""


class _OutOfTime(BaseException):
    """:data:`BOUND_SECONDS` have passed (a BaseException: sympy's own ``except Exception``
    clauses must not swallow it)."""


def activation_bound(phi: sp.Expr, x: sp.Symbol = ACTIVATION_VARIABLE) -> ActivationBound:
    r""":math:`\sup_{x\in\mathbb R}|\phi(x)|` decided symbolically, or ``oo``.

    ``phi`` is cut into pieces on which it is one smooth expression (``Abs``, ``sign``,
    ``Max``, ``Min`` rewritten as ``Piecewise``).  On each piece's interval the candidates for
    the extremes of :math:`\phi` are the one-sided limits at its ends (``limit``, also at
    :math:`\pm\infty`, where an oscillating limit gives its accumulation bounds), the
    one-sided limits at isolated discontinuities, and the values at the zeros of
    :math:`\phi'` (``solveset``); a periodic expression on the whole line is studied on one
    period, a single point (``sign(0) = 0``) by its value.  Then
    :math:`\sup|\phi| = \max|\text{candidates}|`.  An infinite limit means unbounded
    (``oo``, ``decided``).  Anything sympy cannot decide within :data:`BOUND_SECONDS`
    (critical points not found, a limit left unevaluated, a piece not real and continuous on
    its interval) gives ``oo`` with ``decided=False``: never a wrong "bounded".  A finite
    supremum is checked against :math:`|\phi|` on a grid and far out; an excess (a sympy
    error) also gives ``oo``, undecided.
    """
    try:
        with _time_budget(BOUND_SECONDS):
            value, count = _supremum(phi, x)
    except _Unbounded as exc:
        return ActivationBound(sp.oo, True, f"unbounded: {exc}")
    except _Undecided as exc:
        return _undecided(str(exc))
    except _OutOfTime:
        return _undecided(f"sympy took more than {BOUND_SECONDS:g} s")
    excess = _numeric_excess(phi, x, value)
    if excess is not None:
        return _undecided(f"|phi({excess})| exceeds the symbolic supremum {value}, a sympy "
                          "error")
    return ActivationBound(value, True, f"the largest |phi| of {count} candidates: limits at "
                           "the ends of the pieces, critical points")


def _undecided(why: str) -> ActivationBound:
    return ActivationBound(sp.oo, False, f"not decided symbolically ({why}); taken as "
                           "unbounded")


def _supremum(phi: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, int]:
    """``(sup |phi|, number of candidates)``, exact where printable; raises
    :class:`_Unbounded` or :class:`_Undecided`."""
    if phi.has(sp.Max, sp.Min):  # the sets of their pieces can take long: an infinite limit
        for end in (-sp.oo, sp.oo):  # of the whole decides at once
            try:
                _limit(phi, x, end, "+" if end == -sp.oo else "-")
            except _Undecided:
                pass
    candidates = [value for expr, where in _pieces(phi, x)
                  for value in _extremes(expr, where, x)]
    sizes = [(sp.Abs(c).evalf(BOUND_DIGITS), c) for c in candidates]
    if not all(size.is_real and size.is_finite for size, _ in sizes):
        raise _Undecided("a candidate extreme is not a finite real number")
    largest = sp.Abs(max(sizes, key=lambda pair: pair[0])[1])
    value = sp.simplify(largest)
    if not (value.is_number and value.is_real):
        value = largest
    if value.has(sp.CRootOf) or any(not isinstance(f, EXACT_BOUND_FUNCTIONS)
                                    for f in value.atoms(sp.Function)):
        value = sp.Float(value.evalf(BOUND_DIGITS), BOUND_DIGITS)
    return value, len(candidates)


@contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`_OutOfTime` in the block after ``seconds`` (SIGALRM).  Without a limit
    off the main thread, where there is no ``setitimer``, or when a timer is already set."""
    if (not hasattr(signal, "setitimer") or threading.current_thread()
            is not threading.main_thread() or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _pieces(phi: sp.Expr, x: sp.Symbol) -> list[tuple[sp.Expr, sp.Set]]:
    """``(expression, set)`` pairs that partition the reals, ``phi`` smooth in each
    expression (a ``Piecewise`` from ``Abs``, ``sign``, ``Max``, ``Min``)."""
    folded = sp.piecewise_fold(phi.rewrite(sp.Piecewise))
    if not isinstance(folded, sp.Piecewise):
        return [(folded, sp.S.Reals)]
    pieces: list[tuple[sp.Expr, sp.Set]] = []
    covered: sp.Set = sp.S.EmptySet
    for expr, condition in folded.args:
        where = sp.S.Reals if condition == sp.true else _sympy(
            lambda c=condition: c.as_set(), f"the set where {condition}")
        where = sp.Complement(where.intersect(sp.S.Reals), covered, evaluate=True)
        covered = sp.Union(covered, where)
        if where != sp.S.EmptySet:
            pieces.append((expr, where))
    if covered != sp.S.Reals:
        raise _Undecided(f"the pieces of {folded} do not cover the reals")
    return pieces


def _extremes(expr: sp.Expr, where: sp.Set, x: sp.Symbol) -> list[sp.Expr]:
    """Candidates for the infimum and supremum of ``expr`` on ``where`` (a union of
    intervals and points)."""
    out: list[sp.Expr] = []
    for part in where.args if isinstance(where, sp.Union) else (where,):
        if isinstance(part, sp.FiniteSet):
            out += [expr.subs(x, point) for point in part]
        elif isinstance(part, sp.Interval):
            out += _interval_extremes(expr, part, x)
        else:
            raise _Undecided(f"the piece {expr} lives on {part}")
    return out


def _interval_extremes(expr: sp.Expr, interval: sp.Interval, x: sp.Symbol) -> list[sp.Expr]:
    """Candidates on one interval: one-sided limits at its ends and at isolated
    discontinuities, values at the zeros of the derivative."""
    if x not in expr.free_symbols:
        return [expr]
    if interval == sp.S.Reals:
        period = _sympy(lambda: sp.periodicity(expr, x), f"the period of {expr}")
        if period is not None and period.is_positive:
            interval = sp.Interval(0, period)
    smooth = expr.replace(lambda e: isinstance(e, ENTIRE_UNKNOWN_TO_SYMPY),
                          lambda e: sp.exp(e.args[0]))
    continuous = _sympy(lambda: continuous_domain(smooth, x, interval),
                        f"where {expr} is continuous")
    gaps = sp.Complement(interval, continuous, evaluate=True)
    if gaps != sp.S.EmptySet and not isinstance(gaps, sp.FiniteSet):
        raise _Undecided(f"{expr} is not real and continuous on all of {interval}")
    points = () if gaps == sp.S.EmptySet else tuple(gaps)
    out: list[sp.Expr] = []
    for end, side in ((interval.start, "+"), (interval.end, "-")):
        out += _limit(expr, x, end, side)
    for point in points:
        out += _limit(expr, x, point, "+") + _limit(expr, x, point, "-")
    interior = interval.interior - gaps
    critical = _sympy(lambda: sp.solveset(sp.diff(expr, x), x, interior),
                      f"the critical points of {expr}")
    for part in critical.args if isinstance(critical, sp.Union) else (critical,):
        if part == sp.S.EmptySet:
            continue
        if isinstance(part, sp.FiniteSet):
            out += [expr.subs(x, point) for point in part]
        elif isinstance(part, sp.Interval):  # phi' = 0 there: phi is constant on it
            out += _limit(expr, x, part.start, "+")
        else:
            raise _Undecided(f"critical points of {expr} not found ({type(part).__name__})")
    return out


def _limit(expr: sp.Expr, x: sp.Symbol, point: sp.Expr, side: str) -> list[sp.Expr]:
    """The one-sided limit at ``point`` (at +-oo: the limit there) as candidates: the value,
    or the ends of its accumulation bounds; an infinite limit raises :class:`_Unbounded`."""
    value = _sympy(lambda: _one_sided_limit(expr, x, point, side),
                   f"the limit of {expr} at {point}")
    ends = [value.min, value.max] if isinstance(value, sp.AccumBounds) else [value]
    for end in ends:
        if end in (sp.oo, -sp.oo, sp.zoo):
            where = point if point in (sp.oo, -sp.oo) else f"{point}{side}"
            raise _Unbounded(f"{expr} -> {end} as x -> {where}")
        if not (end.is_number and end.is_extended_real and end.is_finite):
            raise _Undecided(f"the limit of {expr} as x -> {point} is {end}")
    return ends


@lru_cache(maxsize=256)
def _one_sided_limit(expr: sp.Expr, x: sp.Symbol, point: sp.Expr, side: str) -> sp.Expr:
    """``sympy.limit`` (memoised: the limits of the whole of ``phi`` at +-oo are taken first,
    and again for its pieces)."""
    return sp.limit(expr, x, point, side)


def _sympy(call: Callable[[], object], what: str) -> object:
    """``call()``; any exception of sympy's solvers and limits means "undecided"."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - sympy raises many types when it cannot decide
        raise _Undecided(f"{what}: {type(exc).__name__}") from None


def _numeric_excess(phi: sp.Expr, x: sp.Symbol, bound: sp.Expr) -> str | None:
    """A guard point where ``|phi|`` exceeds ``bound`` by more than :data:`GUARD_SLACK`
    (relative), or None (mpmath at :data:`BOUND_DIGITS` digits)."""
    f = sp.lambdify(x, phi, modules="mpmath")
    with mpmath.workdps(BOUND_DIGITS):
        ceiling = mpmath.mpf(str(sp.N(bound, BOUND_DIGITS))) * (1 + GUARD_SLACK) + GUARD_SLACK
        step = mpmath.mpf(2 * GUARD_RANGE) / (GUARD_POINTS - 1)
        grid = [-GUARD_RANGE + k * step for k in range(GUARD_POINTS)]
        for point in grid + [mpmath.mpf(sign * far) for far in GUARD_FAR for sign in (-1, 1)]:
            try:
                value = f(point)
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
            if isinstance(value, mpmath.mpf) and mpmath.isfinite(value) and abs(value) > ceiling:
                return mpmath.nstr(point, 8)
    return None


__all__ = ["ACTIVATION_VARIABLE", "FUNCTIONS", "ActivationBound", "activation_bound",
           "parse_activation"]
