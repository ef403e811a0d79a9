"""Model files: TOML, validated against the schema of their family, with one-line errors.

Nothing here imports sympy: loading and hashing a model is fast, so that an unchanged
``netderive build`` costs well under a second.  The schemas are found through the family
registry (:mod:`netderive.derivations.families`).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SUGGESTION_CUTOFF, ModelError, did_you_mean  # noqa: F401 (re-exported)
from .families import FAMILIES, schema_of
from .schema import (  # noqa: F401 (re-exported: the checkers of the family schemas)
    ACTIVATION_ALLOWED,
    ACTIVATION_CONSTANTS,
    ACTIVATION_FUNCTIONS,
    Checker,
    Key,
    Schema,
    activation,
    check_activation_syntax,
    choice,
    either,
    integer,
    number,
    number_list,
    text,
)


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
        complete = schema_of(self.family).complete
        if complete is not None:
            overrides = complete(source, self.values, overrides)
        raw = {"family": self.family, **_plain(self.values), **overrides}
        return parse_model(raw, source)

    def with_cross_checks(self) -> ModelSpec:
        """This model after the family's cross-key checks (raises ModelError)."""
        if self.cross_checked:
            return self
        schema = schema_of(self.family)
        if schema.validate is not None:
            schema.validate(self.source, _plain(self.values))
        return ModelSpec(self.source, self.family, self.values)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def family_names() -> list[str]:
    return sorted(FAMILIES)


def parse_model(raw: Mapping[str, Any], source: str, cross_checks: bool = True) -> ModelSpec:
    """Validate a model given as a mapping (as read from TOML).

    ``cross_checks=False`` defers the family's checks across keys (they may need numpy);
    a cached build of the same canonical model proves they passed before.
    """
    family = raw.get("family")
    if family is None:
        raise ModelError(source, "family", "missing", ", ".join(f'"{f}"' for f in FAMILIES),
                         show_value=False)
    if not isinstance(family, str) or family not in FAMILIES:
        raise ModelError(source, "family", "unknown family",
                         ", ".join(f'"{f}"' for f in sorted(FAMILIES)), family)
    schema = schema_of(family)
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
