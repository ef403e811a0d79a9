"""parse_activation: whitelisted text -> sympy, node by node; everything else a ModelError.
activation_bound: sup |phi| over the reals, decided symbolically, against numpy."""

from __future__ import annotations

import math
import signal
import time

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import special

from netderive.derivations import activation
from netderive.derivations.activation import (
    ACTIVATION_VARIABLE,
    FUNCTIONS,
    activation_bound,
    parse_activation,
)
from netderive.derivations.model import ACTIVATION_FUNCTIONS, ModelError

X = ACTIVATION_VARIABLE
POINTS = (-2.3719, -0.61, -0.0371, 0.2843, 0.5, 1.0913, 3.217)


def numeric(expr: sp.Expr, value: float) -> float:
    return float(expr.xreplace({X: sp.Float(value, 30)}).evalf(30))


def erf_scaled(v: float) -> float:
    return math.erf(v / math.sqrt(2))


VALID = {
    "tanh(x)": math.tanh,
    "erf(x/sqrt(2))": erf_scaled,
    "max(x, 0)": lambda v: max(v, 0.0),
    "min(x, 0.5)": lambda v: min(v, 0.5),
    "0.5*x": lambda v: 0.5 * v,
    "relu": lambda v: max(v, 0.0),
    "relu(x - 1)": lambda v: max(v - 1, 0.0),
    "sign": lambda v: float(np.sign(v)),
    "sigmoid(x)": lambda v: 1 / (1 + math.exp(-v)),
    "softplus(x)": lambda v: math.log1p(math.exp(v)),
    "abs(x)**1.5 + exp(-x**2) - log(1 + x**2)": lambda v: (
        abs(v) ** 1.5 + math.exp(-v * v) - math.log(1 + v * v)
    ),
    "sin(pi*x) + cos(e*x) + atan(x) + sinh(x)/cosh(x)": lambda v: (
        math.sin(math.pi * v) + math.cos(math.e * v) + math.atan(v) + math.tanh(v)
    ),
    "-x**2 / +2": lambda v: -v * v / 2,
    "  2**x  ": lambda v: 2.0**v,
}


@pytest.mark.parametrize("text", list(VALID))
def test_valid_expressions_evaluate_right(text: str) -> None:
    expr = parse_activation(text, "m.toml")
    assert expr.free_symbols == {X}
    for v in POINTS:
        assert math.isclose(numeric(expr, v), VALID[text](v), rel_tol=1e-13, abs_tol=1e-15), v


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("tanh(x)", sp.tanh(X)),
        ("erf(x/sqrt(2))", sp.erf(X / sp.sqrt(2))),
        ("max(x, 0)", sp.Max(X, 0)),
        ("0.5*x", X / 2),
        ("0.1*x", X / 10),
        ("x**0.5", sp.sqrt(X)),
        ("relu", sp.Max(X, 0)),
        ("sign", sp.sign(X)),
        ("sigmoid(x)", 1 / (1 + sp.exp(-X))),
        ("softplus(x)", sp.log(1 + sp.exp(X))),
        ("3*x", 3 * X),
        ("pi*x + e", sp.pi * X + sp.E),
    ],
)
def test_exact_structure(text: str, want: sp.Expr) -> None:
    got = parse_activation(text)
    assert got == want
    assert not got.atoms(sp.Float)  # numbers are exact integers and rationals


def test_variable_is_the_real_x() -> None:
    assert X == sp.Symbol("x", real=True)
    assert parse_activation("x").free_symbols == {sp.Symbol("x", real=True)}


def test_every_whitelisted_function_has_a_rule() -> None:
    assert set(FUNCTIONS) == set(ACTIVATION_FUNCTIONS)


INVALID = [
    "__import__('os')",
    "x.__class__",
    "lambda: 1",
    "tanh(x",
    "foo(x)",
    "x if x else 1",
    "[x]",
    "'a'",
    "1",
    "tanh(x, x, x)",
    "tanh(x, x)",
    "max(x)",
    "tanh(1)",
    "exp",
    "tanh + x",
    "x(1)",
    "y * x",
    "x == 1",
    "x and 1",
    "True * x",
    "1j * x",
    "x[0]",
    "sin(x=1)",
    "x // 2",
    "x % 2",
    "~x",
    "x / 0",
    "log(0) * x",
    "sqrt(-1) * x",
    "(-8)**(1/3) * x",
    "9**9**9 * x",
    "1e999 * x",
    "",
    "x; import os",
    "-" * 5000 + "x",
    "(" * 300 + "x" + ")" * 300,
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_expressions_raise_a_one_line_model_error(text: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_activation(text, "models/m.toml", "activation")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("models/m.toml: activation")
    assert "allowed:" in message
    assert info.value.key == "activation"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tanh(x, x)", "tanh takes 1 argument"),
        ("max(x)", "max takes 2 arguments"),
        ("min(x, x, x)", "min(x, x, x)"),
        ("tanh(1)", "does not depend on x"),
        ("1", "does not depend on x"),
        ("x / 0", "division by zero"),
        ("tanh + x", "tanh is a function"),
        ("9**9**9 * x", "too large"),
    ],
)
def test_error_messages_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_activation(text, "m.toml", "layers.activation")
    assert words in str(info.value)
    assert "layers.activation" in str(info.value)


def test_never_evaluates_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec/sympify called on activation text")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(sp, "sympify", refuse)
    monkeypatch.setattr(sp, "parse_expr", refuse, raising=False)
    assert parse_activation("tanh(x) + 0.25*x") == sp.tanh(X) + X / 4


def test_non_string_is_refused() -> None:
    with pytest.raises(ModelError, match="expected a string"):
        parse_activation(3, "m.toml")  # type: ignore[arg-type]


# -- property: random whitelisted trees round-trip ---------------------------------------------
# A tree is (text, reference function on mpmath numbers).  Functions that are not total on
# the reals get arguments that keep them defined (log(1 + u**2), sqrt(1 + u**2)); exp gets a
# bounded argument; sign only x minus a literal, so that no evaluation sits on its jump.
LITERALS = st.sampled_from(["0.5", "2", "3", "0.25", "1.5", "pi", "e", "7"])
LITERAL_VALUE = {
    "0.5": mpmath.mpf(1) / 2,
    "2": 2,
    "3": 3,
    "0.25": mpmath.mpf(1) / 4,
    "1.5": mpmath.mpf(3) / 2,
    "pi": mpmath.pi,
    "e": mpmath.e,
    "7": 7,
}


def _leaf():
    x = st.just(("x", lambda v: v))
    lit = LITERALS.map(lambda s: (s, lambda v, s=s: mpmath.mpf(LITERAL_VALUE[s])))
    sign = LITERALS.map(
        lambda s: (f"sign(x - {s})", lambda v, s=s: mpmath.sign(v - LITERAL_VALUE[s]))
    )
    return st.one_of(x, x, lit, sign, st.just(("relu(x)", lambda v: max(v, 0))))


def _sigmoid(u):
    return 1 / (1 + mpmath.exp(-u))


UNARY = {
    "tanh": mpmath.tanh,
    "sin": mpmath.sin,
    "cos": mpmath.cos,
    "atan": mpmath.atan,
    "erf": mpmath.erf,
    "abs": abs,
    "sigmoid": _sigmoid,
    "relu": lambda u: max(u, 0),
    "softplus": lambda u: mpmath.log(1 + mpmath.exp(mpmath.tanh(u))),
    "exp": lambda u: mpmath.exp(mpmath.tanh(u)),
    "sinh": lambda u: mpmath.sinh(mpmath.atan(u)),
    "cosh": lambda u: mpmath.cosh(mpmath.atan(u)),
    "log": lambda u: mpmath.log(1 + u**2),
    "sqrt": lambda u: mpmath.sqrt(1 + u**2),
}
UNARY_TEXT = {
    "softplus": "softplus(tanh({}))",
    "exp": "exp(tanh({}))",
    "sinh": "sinh(atan({}))",
    "cosh": "cosh(atan({}))",
    "log": "log(1 + ({})**2)",
    "sqrt": "sqrt(1 + ({})**2)",
}


def _extend(children):
    def unary(name, child):
        text, fn = child
        return UNARY_TEXT.get(name, name + "({})").format(text), lambda v: UNARY[name](fn(v))

    def binary(op, left, right):
        (lt, lf), (rt, rf) = left, right
        if op == "max":
            return f"max({lt}, {rt})", lambda v: max(lf(v), rf(v))
        if op == "min":
            return f"min({lt}, {rt})", lambda v: min(lf(v), rf(v))
        if op == "/":
            return f"({lt}) / (2 + tanh({rt}))", lambda v: lf(v) / (2 + mpmath.tanh(rf(v)))
        if op == "**":
            return f"({lt})**2", lambda v: lf(v) ** 2
        ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
        return f"({lt}) {op} ({rt})", lambda v: ops[op](lf(v), rf(v))

    def negate(child):
        text, fn = child
        return f"-({text})", lambda v: -fn(v)

    return st.one_of(
        st.builds(unary, st.sampled_from(sorted(UNARY)), children),
        st.builds(
            binary, st.sampled_from(["+", "-", "*", "/", "**", "max", "min"]), children, children
        ),
        st.builds(negate, children),
    )


TREES = st.recursive(_leaf(), _extend, max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES)
def test_random_trees_round_trip(tree) -> None:
    text, reference = tree
    try:
        expr = parse_activation(text, "m.toml")
    except ModelError as exc:
        # only possible when the tree is constant in x (e.g. "x - x")
        assert "does not depend on x" in str(exc), (text, str(exc))
        with mpmath.workdps(40):
            values = [reference(mpmath.mpf(v)) for v in POINTS]
        assert all(mpmath.almosteq(v, values[0], 1e-25) for v in values), text
        assume(False)
        return
    fn = sp.lambdify(X, expr, modules="mpmath")
    with mpmath.workdps(40):
        for v in POINTS:
            want = reference(mpmath.mpf(v))
            got = fn(mpmath.mpf(v))
            assert mpmath.almosteq(got, want, 1e-25, 1e-25), (text, v, got, want)


# -- sup |phi| over the reals, decided symbolically ---------------------------------------------
# Each activation with an independent numpy version and its exact supremum (oo: unbounded).
SQRT2 = math.sqrt(2.0)
BOUNDS = {
    "tanh(x)": (np.tanh, sp.Integer(1)),
    "erf(x/sqrt(2))": (lambda v: special.erf(v / SQRT2), sp.Integer(1)),
    "x/(1+abs(x))": (lambda v: v / (1 + np.abs(v)), sp.Integer(1)),
    "sigmoid(x)": (special.expit, sp.Integer(1)),
    "relu": (lambda v: np.maximum(v, 0.0), sp.oo),
    "x**3": (lambda v: v**3, sp.oo),
    "x/sqrt(1+x**2)": (lambda v: v / np.sqrt(1 + v * v), sp.Integer(1)),
    "2*tanh(x)+1": (lambda v: 2 * np.tanh(v) + 1, sp.Integer(3)),
    "exp(-x**2)": (lambda v: np.exp(-v * v), sp.Integer(1)),
    "sin(x)": (np.sin, sp.Integer(1)),
    "sign": (np.sign, sp.Integer(1)),
    "-3*sign(x)": (lambda v: -3 * np.sign(v), sp.Integer(3)),
    "atan(x)": (np.arctan, sp.pi / 2),
    "x*exp(-x**2)": (lambda v: v * np.exp(-v * v), sp.exp(-sp.Rational(1, 2)) / sp.sqrt(2)),
    "x/(1+x**2)": (lambda v: v / (1 + v * v), sp.Rational(1, 2)),
    "tanh(abs(x)) - 0.5": (lambda v: np.tanh(np.abs(v)) - 0.5, sp.Rational(1, 2)),
    "min(max(x, -2), 1)": (lambda v: np.clip(v, -2.0, 1.0), sp.Integer(2)),
    "softplus(x)": (lambda v: np.logaddexp(0.0, v), sp.oo),
    "max(x, 0.1*x)": (lambda v: np.maximum(v, 0.1 * v), sp.oo),
    "1/(x - 1)": (lambda v: 1 / (v - 1), sp.oo),  # a pole: unbounded at x = 1
}
#: Where the numpy versions are evaluated: a fine grid, far out (saturation) and next to the
#: pole of 1/(x - 1).
WIDE = np.concatenate([np.linspace(-100.0, 100.0, 200_001),
                       [-1e15, -1e8, -1e3, 1e3, 1e8, 1e15, 1 + 1e-9]])


@pytest.mark.parametrize("text", list(BOUNDS))
def test_activation_bound_is_the_supremum(text: str) -> None:
    """sup |phi| decided symbolically (exact); against numpy: no |phi| above it, and the
    largest |phi| on the grid or far out within 1e-6 of it (or growing without bound)."""
    f, want = BOUNDS[text]
    got = activation_bound(parse_activation(text))
    assert got.decided, got.reason
    assert sp.simplify(got.value - want) == 0 if want != sp.oo else got.value == sp.oo, got
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        sizes = np.abs(f(WIDE))
    largest = float(np.nanmax(sizes))
    if want == sp.oo:
        assert largest > 1e6
        assert got.reason.startswith("unbounded")
    else:
        assert largest <= float(want) * (1 + 1e-12)
        assert largest == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("text", ["tanh(x) + sin(x)", "sin(pi*x) + cos(e*x)", "x*sin(x)",
                                  "max(erf(x), 0.5)", "sqrt(x)*exp(-x**2)"])
def test_activation_bound_undecided_is_never_bounded(text: str) -> None:
    """What sympy cannot decide (critical points not found, a limit it cannot take, pieces
    whose sets it cannot find, a function not real on all of the line) is +oo, marked
    undecided, with the reason."""
    got = activation_bound(parse_activation(text))
    assert got.value == sp.oo and not got.decided
    assert got.reason.startswith("not decided symbolically (") and "unbounded" in got.reason


def test_activation_bound_has_a_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """``solveset`` takes minutes on the critical points of cos(3x) + sin(x): after
    BOUND_SECONDS the supremum is undecided (+oo), and the timer is gone afterwards."""
    monkeypatch.setattr(activation, "BOUND_SECONDS", 0.5)
    handler = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    got = activation_bound(parse_activation("cos(3*x) + sin(x)"))
    assert time.perf_counter() - start < 5
    assert got.value == sp.oo and not got.decided and "0.5 s" in got.reason
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is handler


def test_activation_bound_numeric_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong symbolic supremum (as a sympy error would give) is caught by the numeric guard:
    +oo, undecided."""
    monkeypatch.setattr(activation, "_supremum", lambda phi, x: (sp.Rational(9, 10), 2))
    got = activation_bound(parse_activation("tanh(x)"))
    assert got.value == sp.oo and not got.decided and "exceeds" in got.reason


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES)
def test_activation_bound_of_random_trees(tree) -> None:
    """Random whitelisted trees: a finite supremum is never exceeded by the tree's own mpmath
    reference (random points and far out, 40 digits); a decided "unbounded" grows far out
    beyond every value on [-50, 50]."""
    text, reference = tree
    try:
        phi = parse_activation(text, "m.toml")
    except ModelError:
        assume(False)
        return
    got = activation_bound(phi)
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    near = [*rng.uniform(-50, 50, 400), *POINTS]
    far = [s * 10.0**k for k in (3, 6, 12, 24) for s in (-1, 1)]
    with mpmath.workdps(40):
        inner = max(abs(reference(mpmath.mpf(v))) for v in near)
        outer = max(abs(reference(mpmath.mpf(v))) for v in far)
        if got.value != sp.oo:
            ceiling = mpmath.mpf(str(sp.N(got.value, 40))) * (1 + mpmath.mpf(10) ** -25)
            assert max(inner, outer) <= ceiling, (text, got)
        elif got.decided:
            assert outer > inner, (text, got)
