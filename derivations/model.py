"""Model files: TOML, validated against a schema per family, with one-line errors.

Nothing here imports sympy: loading and hashing a model is fast, so that an unchanged
``netderive build`` costs well under a second.  Activation expressions are checked
here with :mod:`ast` against a whitelist and turned into sympy only by
:func:`derivations.activation.parse_activation` during derivation.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Functions an activation expression may call, and constants it may name.
ACTIVATION_FUNCTIONS = ("abs", "exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos",
                        "atan", "erf", "sigmoid", "softplus", "max", "min", "sign", "relu")
ACTIVATION_CONSTANTS = ("x", "pi", "e")
ACTIVATION_ALLOWED = ("numbers, x, pi, e, + - * / **, "
                      + " ".join(ACTIVATION_FUNCTIONS))


class ModelError(Exception):
    """Bad model input: ``<source>: <key> = <value>: <problem>; allowed: <what>`` (one line)."""

    def __init__(self, source: str, key: str, problem: str, allowed: str = "",
                 value: Any = None, show_value: bool = True) -> None:
        shown = f" = {_short(value)}" if show_value and value is not None else ""
        text = f"{source}: {key}{shown}: {problem}"
        if allowed:
            text += f"; allowed: {allowed}"
        # one line, whatever the file name, key or value contains
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(text)
        self.source, self.key, self.problem, self.allowed = source, key, problem, allowed


#: How close (difflib ratio) an unknown name must be to a known one to be suggested.
SUGGESTION_CUTOFF = 0.6


def did_you_mean(name: str, options: Iterable[str], where: Mapping[str, str] | None = None
                 ) -> str:
    """`` (did you mean 'x'?)`` naming the option closest to ``name``, or ``""`` if none is
    close; ``where`` maps an option to where it belongs (e.g. ``[data]``)."""
    options = list(options)
    same_letters = [o for o in options if o.lower() == name.lower()]
    close = same_letters or difflib.get_close_matches(name, options, n=1,
                                                      cutoff=SUGGESTION_CUTOFF)
    if not close:
        return ""
    place = (where or {}).get(close[0])
    return f" (did you mean {close[0]!r}{' under ' + place if place else ''}?)"


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | list | dict) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    #: keys whose change needs a fresh derivation (all of them, for now)
    structural: tuple[str, ...] = ()
    #: ``complete(source, values, overrides)``: the overrides of top-level keys with the keys
    #: that follow from them (e.g. equal widths repeated to a new depth), or a ModelError that
    #: says which key to give too
    complete: Callable[[str, Mapping[str, Any], dict[str, Any]], dict[str, Any]] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A validated model: the family and its normalised values (lists become tuples)."""

    source: str
    family: str
    values: Mapping[str, Any]
    #: False when the cross-key checks (e.g. positive definiteness) were deferred
    cross_checked: bool = field(default=True, compare=False)

    @property
    def stem(self) -> str:
        return Path(self.source).stem or self.family

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def canonical(self) -> str:
        """Canonical JSON text of the model: the input of its cache key."""
        return json.dumps({"family": self.family, **_plain(self.values)}, sort_keys=True)

    def with_values(self, overrides: Mapping[str, Any], source: str | None = None) -> ModelSpec:
        """A re-validated copy with some top-level keys replaced (and the keys that follow from
        them, by the family's ``Schema.complete``)."""
        source = source or self.source
        overrides = dict(overrides)
        complete = _schemas()[self.family].complete
        if complete is not None:
            overrides = complete(source, self.values, overrides)
        raw = {"family": self.family, **_plain(self.values), **overrides}
        return parse_model(raw, source)

    def with_cross_checks(self) -> ModelSpec:
        """This model after the family's cross-key checks (raises ModelError)."""
        if self.cross_checked:
            return self
        schema = _schemas()[self.family]
        if schema.validate is not None:
            schema.validate(self.source, _plain(self.values))
        return ModelSpec(self.source, self.family, self.values)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _schemas() -> dict[str, Schema]:
    from . import schemas

    return schemas.SCHEMAS


def family_names() -> list[str]:
    return sorted(_schemas())


def parse_model(raw: Mapping[str, Any], source: str, cross_checks: bool = True) -> ModelSpec:
    """Validate a model given as a mapping (as read from TOML).

    ``cross_checks=False`` defers the family's checks across keys (they may need numpy);
    a cached build of the same canonical model proves they passed before.
    """
    schemas = _schemas()
    family = raw.get("family")
    if family is None:
        raise ModelError(source, "family", "missing", ", ".join(f'"{f}"' for f in schemas),
                         show_value=False)
    if not isinstance(family, str) or family not in schemas:
        raise ModelError(source, "family", "unknown family",
                         ", ".join(f'"{f}"' for f in sorted(schemas)), family)
    schema = schemas[family]
    values: dict[str, Any] = {}
    known = set(schema.keys) | set(schema.tables) | {"family"}
    places = {k: f"[{t}]" for t, keys in schema.tables.items() for k in keys}
    for key in raw:
        if key not in known:
            if key in places:
                problem = f"belongs under {places[key]}, not at the top level"
            else:
                problem = f"unknown key for family {family}" + did_you_mean(
                    key, [*known, *places], places)
            raise ModelError(source, key, problem, ", ".join(sorted(known)), show_value=False)
    for key, spec_key in schema.keys.items():
        values.update(_check_key(source, key, key, spec_key, raw, values))
    for table, keys in schema.tables.items():
        sub = raw.get(table)
        if sub is None:
            if any(k.required for k in keys.values()):
                raise ModelError(source, f"[{table}]", "missing table",
                                 ", ".join(sorted(keys)), show_value=False)
            sub = {}
        if not isinstance(sub, Mapping):
            raise ModelError(source, table, "expected a table", f"[{table}] with keys "
                             + ", ".join(sorted(keys)), show_value=False)
        for key in sub:
            if key not in keys:
                if key in known or key in places:
                    where = ("at the top level (above the first [table] header)"
                             if key in known else f"under {places[key]}")
                    problem = f"belongs {where}, not under [{table}]"
                else:
                    problem = "unknown key" + did_you_mean(key, keys)
                raise ModelError(source, f"{table}.{key}", problem, ", ".join(sorted(keys)),
                                 show_value=False)
        checked: dict[str, Any] = {}
        for key, spec_key in keys.items():
            checked.update(_check_key(source, f"{table}.{key}", key, spec_key, sub,
                                      {**values, **checked}))
        values[table] = checked
    if schema.validate is not None and cross_checks:
        schema.validate(source, values)
    return ModelSpec(source, family, values, cross_checked=cross_checks or schema.validate is None)


def _check_key(source: str, label: str, key: str, spec_key: Key, raw: Mapping[str, Any],
               context: Mapping[str, Any]) -> dict[str, Any]:
    if key not in raw:
        if spec_key.required:
            raise ModelError(source, label, "missing",
                             getattr(spec_key.check, "allowed", ""), show_value=False)
        return {} if spec_key.default is None else {key: spec_key.default}
    return {key: spec_key.check(source, label, raw[key], context)}


def load_model(path: str | Path, cross_checks: bool = True) -> ModelSpec:
    """Read and validate a TOML model file (see :func:`parse_model` for ``cross_checks``)."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(source, "file", "no such file", "a path to a .toml model file",
                         show_value=False) from None
    except OSError as exc:
        raise ModelError(source, "file", f"cannot be read ({exc.strerror})",
                         "a readable .toml model file", show_value=False) from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError(source, "file", "not UTF-8 text", "a TOML file",
                         show_value=False) from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(source, "file", f"not valid TOML ({exc})", "a TOML file",
                         show_value=False) from None
    return parse_model(raw, source, cross_checks)
