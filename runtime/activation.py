r"""Activation functions for the independent references: the whitelisted text of a model file
evaluated with numpy, with its derivatives by forward-mode automatic differentiation.

The text (``"tanh(x)"``, ``"max(x, 0)"``, ``"x/(1+abs(x))"``, the bare names ``"sign"`` and
``"relu"``) is parsed with :mod:`ast` and walked with the same whitelist as the model files
(numbers, ``x``, ``pi``, ``e``, ``+ - * / **`` and :data:`FUNCTIONS`); it is never given to
``eval``.  Every node becomes a function of ``x`` that returns its *jet*
:math:`(u, u', \dots, u^{(K)})`, :math:`K \le` :data:`MAX_ORDER`, propagated through each
operation: Leibniz's rule for products, Faa di Bruno's formula for a function of a node,

.. math::  h' = g_1 u',\quad h'' = g_2 u'^2 + g_1 u'',\quad
           h''' = g_3 u'^3 + 3 g_2 u' u'' + g_1 u''',

with :math:`g_k = g^{(k)}(u)`.  Kinks are differentiated away from the kink, as the
derivation does (its Dirac deltas dropped): ``sign`` has derivative 0, ``abs`` derivative
``sign(u) u'``, and ``max(a, b)`` the derivatives ``H(a-b) a^(k) + H(b-a) b^(k)`` (``H(0) =
1/2``: at a tie the mean of both, as sympy's ``Heaviside``).

This module imports numpy and scipy only: the references that use it never depend on the
derivations they check.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import scipy.special

#: Highest derivative a jet carries.
MAX_ORDER = 3
#: Names an expression may use as values.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
#: The variable of every activation expression.
VARIABLE = "x"
#: Whole expressions that are a bare function name: the function applied to ``x``.
BARE_NAMES = ("sign", "relu")
#: ``H(0)`` of the Heaviside weights of ``max``/``min`` at a tie (sympy's convention).
HEAVISIDE_AT_ZERO = 0.5

#: A jet component: an array, or a float where it is the same at every point (0 and 1 are
#: kept as floats so that the derivatives of ``x`` and of constants cost nothing).
Part = float | np.ndarray
Jet = tuple[Part, ...]


class ActivationSyntaxError(ValueError):
    """The text is not a whitelisted expression in ``x`` (one line)."""


# -- arithmetic on jet components (floats 0 and 1 short-circuit) ---------------------------------

def _add(a: Part, b: Part) -> Part:
    if isinstance(a, float) and a == 0.0:
        return b
    if isinstance(b, float) and b == 0.0:
        return a
    return a + b


def _mul(a: Part, b: Part) -> Part:
    for u, v in ((a, b), (b, a)):
        if isinstance(u, float):
            if u == 0.0:
                return 0.0
            if u == 1.0:
                return v
    return a * b


def _sum(parts: Sequence[Part]) -> Part:
    out: Part = 0.0
    for p in parts:
        out = _add(out, p)
    return out


# -- jet rules --------------------------------------------------------------------------------

def _constant(value: float, order: int) -> Jet:
    return (float(value), *([0.0] * order))


def _jet_add(a: Jet, b: Jet) -> Jet:
    return tuple(_add(u, v) for u, v in zip(a, b, strict=True))


def _jet_neg(a: Jet) -> Jet:
    return tuple(_mul(-1.0, u) for u in a)


def _jet_mul(a: Jet, b: Jet) -> Jet:
    """Leibniz: :math:`(ab)^{(n)} = \\sum_k \\binom{n}{k} a^{(k)} b^{(n-k)}`."""
    return tuple(_sum([_mul(float(math.comb(n, k)), _mul(a[k], b[n - k]))
                       for k in range(n + 1)]) for n in range(len(a)))


def _compose(outer: Sequence[Part], u: Jet) -> Jet:
    """Faa di Bruno to third order: the jet of ``g(u)`` from ``outer = (g, g', ...)`` at u."""
    order = len(u) - 1
    out = [outer[0]]
    if order >= 1:
        out.append(_mul(outer[1], u[1]))
    if order >= 2:
        out.append(_add(_mul(outer[2], _mul(u[1], u[1])), _mul(outer[1], u[2])))
    if order >= 3:
        out.append(_sum([_mul(outer[3], _mul(u[1], _mul(u[1], u[1]))),
                         _mul(3.0, _mul(outer[2], _mul(u[1], u[2]))),
                         _mul(outer[1], u[3])]))
    return tuple(out)


def _power_outer(u: Part, c: float, order: int) -> list[Part]:
    """``u**c`` and its derivatives ``c (c-1) ... u**(c-k)`` (a zero coefficient: 0)."""
    out: list[Part] = [np.power(u, c)]
    coefficient = 1.0
    for k in range(order):
        coefficient *= c - k
        out.append(0.0 if coefficient == 0.0 else coefficient * np.power(u, c - k - 1))
    return out


def _upto(order: int, *terms: Callable[[], Part]) -> list[Part]:
    """``terms[0]() .. terms[order]()``: only the derivatives asked for are computed."""
    return [term() for term in terms[:order + 1]]


def _exp_outer(u: Part, order: int) -> list[Part]:
    e = np.exp(u)
    return [e] * (order + 1)


def _log_outer(u: Part, order: int) -> list[Part]:
    return [np.log(u), *(_power_outer(u, -1.0, order - 1) if order else [])]


def _tanh_outer(u: Part, order: int) -> list[Part]:
    t = np.tanh(u)
    if not order:
        return [t]
    d = 1.0 - t * t
    return _upto(order, lambda: t, lambda: d, lambda: -2.0 * t * d,
                 lambda: d * (6.0 * t * t - 2.0))


def _sinh_outer(u: Part, order: int) -> list[Part]:
    s = np.sinh(u)
    c = np.cosh(u) if order else 0.0
    return [s, c, s, c][:order + 1]


def _cosh_outer(u: Part, order: int) -> list[Part]:
    c = np.cosh(u)
    s = np.sinh(u) if order else 0.0
    return [c, s, c, s][:order + 1]


def _sin_outer(u: Part, order: int) -> list[Part]:
    s = np.sin(u)
    c = np.cos(u) if order else 0.0
    return _upto(order, lambda: s, lambda: c, lambda: -s, lambda: -c)


def _cos_outer(u: Part, order: int) -> list[Part]:
    c = np.cos(u)
    s = np.sin(u) if order else 0.0
    return _upto(order, lambda: c, lambda: -s, lambda: -c, lambda: s)


def _atan_outer(u: Part, order: int) -> list[Part]:
    w = 1.0 / (1.0 + u * u) if order else 0.0
    return _upto(order, lambda: np.arctan(u), lambda: w, lambda: -2.0 * u * w * w,
                 lambda: (6.0 * u * u - 2.0) * w * w * w)


def _erf_outer(u: Part, order: int) -> list[Part]:
    g = 2.0 / math.sqrt(math.pi) * np.exp(-u * u) if order else 0.0
    return _upto(order, lambda: scipy.special.erf(u), lambda: g, lambda: -2.0 * u * g,
                 lambda: (4.0 * u * u - 2.0) * g)


def _sigmoid_outer(u: Part, order: int) -> list[Part]:
    s = scipy.special.expit(u)
    d = s * (1.0 - s) if order else 0.0
    return _upto(order, lambda: s, lambda: d, lambda: d * (1.0 - 2.0 * s),
                 lambda: d * (1.0 - 6.0 * s + 6.0 * s * s))


def _softplus_outer(u: Part, order: int) -> list[Part]:
    value = np.logaddexp(0.0, u)
    return [value, *_sigmoid_outer(u, order - 1)] if order else [value]


def _sign_outer(u: Part, order: int) -> list[Part]:
    return [np.sign(u), *([0.0] * order)]


def _abs_outer(u: Part, order: int) -> list[Part]:
    return _upto(order, lambda: np.abs(u), lambda: np.sign(u), lambda: 0.0, lambda: 0.0)


#: Functions of one argument: name -> (g, g', ..., g^(order)) at u.
UNARY: dict[str, Callable[[Part, int], list[Part]]] = {
    "abs": _abs_outer,
    "exp": _exp_outer,
    "log": _log_outer,
    "sqrt": lambda u, order: _power_outer(u, 0.5, order),
    "tanh": _tanh_outer,
    "sinh": _sinh_outer,
    "cosh": _cosh_outer,
    "sin": _sin_outer,
    "cos": _cos_outer,
    "atan": _atan_outer,
    "erf": _erf_outer,
    "sigmoid": _sigmoid_outer,
    "softplus": _softplus_outer,
    "sign": _sign_outer,
}


def _extreme(a: Jet, b: Jet, largest: bool) -> Jet:
    """``max(a, b)`` (``min`` if not ``largest``): the value, and the derivatives of the
    larger (smaller) argument, their mean at a tie."""
    value = np.maximum(a[0], b[0]) if largest else np.minimum(a[0], b[0])
    if len(a) == 1:
        return (value,)
    gap = a[0] - b[0] if largest else b[0] - a[0]
    wa = np.heaviside(gap, HEAVISIDE_AT_ZERO)
    constant_b = all(isinstance(db, float) and db == 0.0 for db in b[1:])
    wb = 0.0 if constant_b else 1.0 - wa  # H(-g) = 1 - H(g), also at a tie
    return (value, *(_add(_mul(wa, da), _mul(wb, db)) for da, db in zip(a[1:], b[1:],
                                                                         strict=True)))


#: Functions of two arguments (``relu(u)`` is ``max(u, 0)``).
BINARY: dict[str, Callable[[Jet, Jet], Jet]] = {
    "max": lambda a, b: _extreme(a, b, True),
    "min": lambda a, b: _extreme(a, b, False),
}

#: Every whitelisted function and its number of arguments (the model files' whitelist).
FUNCTIONS: dict[str, int] = {**{name: 1 for name in UNARY}, **{name: 2 for name in BINARY},
                             "relu": 1}


# -- the parsed expression ----------------------------------------------------------------------

#: A compiled node: (x, order) -> the jet of the node at x.
Node = Callable[[np.ndarray, int], Jet]


def _depends_on_x(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == VARIABLE for n in ast.walk(node))


class _Compiler:
    """A whitelisted ast to a jet function; one ``_node_<Type>`` method per node type."""

    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, problem: str) -> ActivationSyntaxError:
        return ActivationSyntaxError(f"activation {self.text!r}: {problem}; allowed: numbers, "
                                     f"{VARIABLE}, pi, e, + - * / **, " + " ".join(FUNCTIONS))

    def compile(self, node: ast.AST) -> Node:
        method = getattr(self, f"_node_{type(node).__name__}", None)
        if method is None:
            raise self.error(f"{type(node).__name__} is not allowed in an expression")
        return method(node)

    def _node_Expression(self, node: ast.Expression) -> Node:
        if isinstance(node.body, ast.Name) and node.body.id in BARE_NAMES:
            call = ast.Call(ast.Name(node.body.id, ast.Load()), [ast.Name(VARIABLE, ast.Load())],
                            [])
            return self.compile(call)
        return self.compile(node.body)

    def _node_Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"{value!r} is not a number")
        number = float(value)
        return lambda x, order: _constant(number, order)

    def _node_Name(self, node: ast.Name) -> Node:
        if node.id == VARIABLE:
            return lambda x, order: (x, 1.0, *([0.0] * (order - 1)))[:order + 1]
        if node.id in CONSTANTS:
            value = CONSTANTS[node.id]
            return lambda x, order: _constant(value, order)
        raise self.error(f"unknown name {node.id!r}")

    def _node_UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda x, order: _jet_neg(operand(x, order))
        if isinstance(node.op, ast.UAdd):
            return operand
        raise self.error(f"operator {type(node.op).__name__} is not allowed")

    def _node_BinOp(self, node: ast.BinOp) -> Node:
        left, right = self.compile(node.left), self.compile(node.right)
        op = node.op
        if isinstance(op, ast.Add):
            return lambda x, order: _jet_add(left(x, order), right(x, order))
        if isinstance(op, ast.Sub):
            return lambda x, order: _jet_add(left(x, order), _jet_neg(right(x, order)))
        if isinstance(op, ast.Mult):
            return lambda x, order: _jet_mul(left(x, order), right(x, order))
        if isinstance(op, ast.Div):
            def divide(x: np.ndarray, order: int) -> Jet:
                b = right(x, order)
                return _jet_mul(left(x, order), _compose(_power_outer(b[0], -1.0, order), b))
            return divide
        if isinstance(op, ast.Pow):
            return self._power(node, left, right)
        raise self.error(f"operator {type(op).__name__} is not allowed")

    def _power(self, node: ast.BinOp, left: Node, right: Node) -> Node:
        """``u**c`` by the power rule for an exponent free of x, else ``exp(v log u)``."""
        if not _depends_on_x(node.right):
            def power(x: np.ndarray, order: int) -> Jet:
                u, c = left(x, order), float(right(x, 0)[0])
                return _compose(_power_outer(u[0], c, order), u)
            return power

        def general(x: np.ndarray, order: int) -> Jet:
            u, v = left(x, order), right(x, order)
            exponent = _jet_mul(v, _compose(_log_outer(u[0], order), u))
            jet = _compose(_exp_outer(exponent[0], order), exponent)
            return (np.power(u[0], v[0]), *jet[1:])  # the value also where u = 0
        return general

    def _node_Call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self.error(f"{ast.unparse(node.func)!r} is not a known function")
        name = node.func.id
        if node.keywords or len(node.args) != FUNCTIONS[name]:
            raise self.error(f"{name} takes {FUNCTIONS[name]} positional argument(s)")
        args = [self.compile(a) for a in node.args]
        if name == "relu":
            (arg,) = args
            return lambda x, order: _extreme(arg(x, order), _constant(0.0, order), True)
        if name in BINARY:
            rule = BINARY[name]
            first, second = args
            return lambda x, order: rule(first(x, order), second(x, order))
        outer = UNARY[name]
        (arg,) = args

        def call(x: np.ndarray, order: int) -> Jet:
            u = arg(x, order)
            return _compose(outer(u[0], order), u)
        return call


@lru_cache(maxsize=64)
def compile_activation(text: str) -> Node:
    """The jet function of the activation ``text`` (raises :class:`ActivationSyntaxError`)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ActivationSyntaxError(f"activation {text!r}: not a valid expression") from None
    return _Compiler(text).compile(tree)


def activation_jet(text: str, x: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
    r""":math:`(\phi(x), \phi'(x), \dots, \phi^{(order)}(x))`, each an array of ``x``'s shape."""
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"order {order}: allowed 0..{MAX_ORDER}")
    x = np.asarray(x, dtype=float)
    with np.errstate(all="ignore"):  # nan and inf are values here, as in the kernels
        jet = compile_activation(text)(x, order)
    return tuple(np.broadcast_to(np.asarray(part, dtype=float), x.shape) for part in jet)


def activation_derivative(text: str, k: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    r"""The vectorised function :math:`x \mapsto \phi^{(k)}(x)` of the activation ``text``."""
    compile_activation(text)  # a syntax error now, not at the first call

    def phi(x: np.ndarray) -> np.ndarray:
        return activation_jet(text, x, k)[k]

    phi.__name__ = text if k == 0 else f"({text}){chr(39) * k}"
    return phi


def activation_functions(text: str, order: int) -> tuple[Callable[[np.ndarray], np.ndarray],
                                                         ...]:
    r""":math:`\phi, \phi', \dots, \phi^{(order)}` of the activation ``text``."""
    return tuple(activation_derivative(text, k) for k in range(order + 1))


__all__ = ["FUNCTIONS", "MAX_ORDER", "ActivationSyntaxError", "activation_derivative",
           "activation_functions", "activation_jet", "compile_activation"]
