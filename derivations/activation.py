"""Activation expressions: whitelisted text in ``x`` to a sympy expression, node by node.

The text of a model file is never given to ``eval``, ``sympify`` or ``parse_expr``.  It is
checked by :func:`derivations.model.check_activation_syntax` (an :mod:`ast` whitelist), and
then every ast node is turned into sympy by one rule of a table: numbers become exact
integers and rationals (``0.5*x`` is ``x/2``), names become ``x``, ``pi`` or ``e``, and
calls of :data:`derivations.model.ACTIVATION_FUNCTIONS` become sympy functions.  The
names ``"sign"`` and ``"relu"`` alone mean ``sign(x)`` and ``max(x, 0)``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

import sympy as sp

from .model import ACTIVATION_ALLOWED, ACTIVATION_FUNCTIONS, ModelError, check_activation_syntax

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


__all__ = ["ACTIVATION_VARIABLE", "FUNCTIONS", "parse_activation"]
