"""Model-file schemas: keys, value checkers and cross-key hooks (generic; no family).

A family's schema (``derivations/schemas/<family>.py``) is a :class:`Schema` built from these
pieces.  Activation expressions are checked here with :mod:`ast` against a whitelist and
turned into sympy only by :func:`netderive.derivations.activation.parse_activation` during
derivation.  Nothing here imports sympy or numpy.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelError, did_you_mean

#: Functions an activation expression may call, and constants it may name.
ACTIVATION_FUNCTIONS = ("abs", "exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos",
                        "atan", "erf", "sigmoid", "softplus", "max", "min", "sign", "relu")
ACTIVATION_CONSTANTS = ("x", "pi", "e")
ACTIVATION_ALLOWED = ("numbers, x, pi, e, + - * / **, "
                      + " ".join(ACTIVATION_FUNCTIONS))


#: The largest magnitude a number of a model file may have (beyond it the formulas of the
#: families overflow double precision, e.g. s^2 and gamma in the weight-decay reductions).
LARGEST = 1e8

# -- value checkers --------------------------------------------------------------------
Checker = Callable[[str, str, Any, Mapping[str, Any]], Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(lower: float = -math.inf, upper: float = math.inf, lower_open: bool = False,
           upper_open: bool = False) -> Checker:
    """A finite real number in an interval."""
    left = "(" if lower_open or lower == -math.inf else "["
    right = ")" if upper_open or upper == math.inf else "]"
    lo = "-inf" if lower == -math.inf else f"{lower:g}"
    hi = "inf" if upper == math.inf else f"{upper:g}"
    allowed = f"a number in {left}{lo}, {hi}{right}"

    def check(source: str, key: str, value: Any, spec: Mapping[str, Any]) -> float:
        if not _is_number(value):
            raise ModelError(source, key, f"expected a number, got {type(value).__name__}",
                             allowed, value)
        value = float(value)
        if not math.isfinite(value):
            raise ModelError(source, key, "not a finite number", allowed, value)
        if value < lower or value > upper or (lower_open and value == lower) or (
                upper_open and value == upper):
            raise ModelError(source, key, "out of range", allowed, value)
        return value

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def integer(lower: int = 0, upper: int | None = None) -> Checker:
    """A whole number in ``[lower, upper]``."""
    allowed = f"an integer >= {lower}" + (f" and <= {upper}" if upper is not None else "")

    def check(source: str, key: str, value: Any, spec: Mapping[str, Any]) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ModelError(source, key, f"expected an integer, got {type(value).__name__}",
                             allowed, value)
        if value < lower or (upper is not None and value > upper):
            raise ModelError(source, key, "out of range", allowed, value)
        return value

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def choice(*options: str) -> Checker:
    allowed = ", ".join(f'"{o}"' for o in options)

    def check(source: str, key: str, value: Any, spec: Mapping[str, Any]) -> str:
        if value not in options:
            raise ModelError(source, key, "unknown value", allowed, value)
        return value

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def text() -> Checker:
    def check(source: str, key: str, value: Any, spec: Mapping[str, Any]) -> str:
        if not isinstance(value, str):
            raise ModelError(source, key, f"expected a string, got {type(value).__name__}",
                             "a string", value)
        return value

    check.allowed = "a string"  # type: ignore[attr-defined]
    return check


def activation() -> Checker:
    """An elementwise activation: a name (``"sign"``, ``"relu"``) or an expression in x."""

    def check(source: str, key: str, value: Any, spec: Mapping[str, Any]) -> str:
        if not isinstance(value, str):
            raise ModelError(source, key, f"expected a string, got {type(value).__name__}",
                             ACTIVATION_ALLOWED, value)
        check_activation_syntax(source, key, value)
        return value.strip()

    check.allowed = ACTIVATION_ALLOWED  # type: ignore[attr-defined]
    return check


def check_activation_syntax(source: str, key: str, value: str) -> ast.Expression:
    """Parse ``value`` with :mod:`ast` and accept only whitelisted nodes (never ``eval``)."""
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ModelError(source, key, "not a valid expression (or nested too deeply)",
                         ACTIVATION_ALLOWED, value) from None
    for node in ast.walk(tree):
        ok = isinstance(node, ast.Expression | ast.BinOp | ast.UnaryOp | ast.Add | ast.Sub
                        | ast.Mult | ast.Div | ast.Pow | ast.USub | ast.UAdd | ast.Load)
        if isinstance(node, ast.Constant):
            ok = _is_number(node.value)
        elif isinstance(node, ast.Name):
            ok = node.id in ACTIVATION_CONSTANTS or node.id in ACTIVATION_FUNCTIONS
        elif isinstance(node, ast.Call):
            ok = (isinstance(node.func, ast.Name) and node.func.id in ACTIVATION_FUNCTIONS
                  and not node.keywords and 1 <= len(node.args) <= 2)
        if not ok:
            what = ast.unparse(node) if not isinstance(node, ast.operator) else type(
                node).__name__
            name = node.func if isinstance(node, ast.Call) else node
            hint = did_you_mean(name.id, [*ACTIVATION_FUNCTIONS, *ACTIVATION_CONSTANTS]) \
                if isinstance(name, ast.Name) else ""
            raise ModelError(source, key, f"{what!r} is not allowed in an expression{hint}",
                             ACTIVATION_ALLOWED, value)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if "x" not in names and value.strip() not in ("sign", "relu"):
        if not any(isinstance(n, ast.Call) for n in ast.walk(tree)):
            raise ModelError(source, key, "the expression does not depend on x",
                             ACTIVATION_ALLOWED, value)
    return tree


def number_list(item: Checker, length_key: str | None = None, offset: int = 0,
                min_length: int = 1) -> Checker:
    """A list of values, each checked by ``item``; its length may be tied to another key."""
    allowed = f"a list of {getattr(item, 'allowed', 'values')}"
    if length_key:
        allowed = f"a list of {length_key}{'+' + str(offset) if offset else ''} items, each " \
                  + getattr(item, "allowed", "a value")

    def check(source: str, key: str, value: Any, spec: Mapping[str, Any]) -> tuple:
        if not isinstance(value, list):
            raise ModelError(source, key, f"expected a list, got {type(value).__name__}",
                             allowed, value)
        if len(value) < min_length:
            raise ModelError(source, key, "empty list", allowed, value)
        if length_key is not None and length_key in spec:
            want = spec[length_key] + offset
            if len(value) != want:
                raise ModelError(source, key, f"has {len(value)} entries, expected {want}",
                                 allowed, value)
        return tuple(item(source, f"{key}[{i}]", v, spec) for i, v in enumerate(value))

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def either(*checkers: Checker, allowed: str) -> Checker:
    """The first checker that accepts the value; else an error listing ``allowed``."""

    def check(source: str, key: str, value: Any, spec: Mapping[str, Any]) -> Any:
        errors = []
        for c in checkers:
            try:
                return c(source, key, value, spec)
            except ModelError as exc:
                errors.append(exc)
        # a list for a list-checker or a number for a number-checker: report the closest
        closest = errors[1] if isinstance(value, list) and len(errors) > 1 else errors[0]
        raise ModelError(source, closest.key, closest.problem, allowed, value)

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


@dataclass(frozen=True)
class Key:
    """One key of a schema: its checker, whether required, its default and meaning."""

    check: Checker
    meaning: str
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Schema:
    """The keys of one family; ``tables`` are sub-tables such as ``[data]``."""

    keys: Mapping[str, Key]
    tables: Mapping[str, Mapping[str, Key]] = field(default_factory=dict)
    #: cross-key check, called with the validated values (raises ModelError)
    validate: Callable[[str, dict[str, Any]], None] | None = None
    #: ``complete(source, values, overrides)``: the overrides of top-level keys with the keys
    #: that follow from them (e.g. equal widths repeated to a new depth), or a ModelError that
    #: says which key to give too
    complete: Callable[[str, Mapping[str, Any], dict[str, Any]], dict[str, Any]] | None = None


#: A positive number up to :data:`LARGEST`.
POSITIVE_NUMBER = number(0.0, LARGEST, lower_open=True)
