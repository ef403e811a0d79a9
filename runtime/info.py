"""``netderive info``: what a model offers: quantities, parameters, model keys."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from typing import Any

from .session import Build, format_value

#: Lists with more entries than this, and nested lists, are summarised (shape, range).
SHOWN_ENTRIES = 8
#: Width of the name column and of the whole text.
NAME_WIDTH = 28
TEXT_WIDTH = 100


def summarise(value: Any) -> str:
    """A model-file value in a few characters: short lists in full, tables by shape."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool) or not isinstance(value, tuple | list):
        return format_number(value)
    if not value:
        return "[]"
    if all(isinstance(v, tuple | list) for v in value):
        shapes = [_shape(v) for v in value]
        numbers = _flatten(value)
        span = (f", {format_number(min(numbers))} .. {format_number(max(numbers))}"
                if numbers else "")
        if all(len(s) == 1 for s in shapes) and len(set(shapes)) == 1:
            return f"{len(value)} x {shapes[0][0]} matrix{span}"
        parts = ", ".join(" x ".join(map(str, s)) for s in shapes[:SHOWN_ENTRIES])
        more = ", ..." if len(shapes) > SHOWN_ENTRIES else ""
        noun = "entry" if len(value) == 1 else "entries"
        return f"{len(value)} {noun} ({parts}{more}){span}"
    if len(value) <= SHOWN_ENTRIES:
        return "[" + ", ".join(format_number(v) for v in value) + "]"
    return (f"{len(value)} numbers, {format_number(min(value))} .. "
            f"{format_number(max(value))}")


def format_number(value: Any) -> str:
    """Whole numbers without a decimal point, others with up to 6 significant digits."""
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)
                                  and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, tuple | list) and value and isinstance(value[0], tuple | list):
        return (len(value), *_shape(value[0]))
    return (len(value),) if isinstance(value, tuple | list) else ()


def _flatten(value: Any) -> list[float]:
    if isinstance(value, tuple | list):
        return [x for v in value for x in _flatten(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _row(name: str, text: str) -> str:
    """``name`` in a column, ``text`` wrapped and indented under it."""
    indent = " " * (NAME_WIDTH + 2)
    lines = textwrap.wrap(text, TEXT_WIDTH - len(indent)) or [""]
    head = f"  {name:<{NAME_WIDTH}}"
    if len(name) >= NAME_WIDTH:
        return f"  {name}\n" + "\n".join(indent + line for line in lines)
    return head + lines[0] + "".join("\n" + indent + line for line in lines[1:])


def _shown(build: Build, name: str, value: float) -> str:
    """A parameter value for reading: integers as such, other numbers to 10 digits."""
    text = format_value(build, name, value)
    return text if build.params[name]["integer"] else f"{float(value):.10g}"


def describe(build: Build, fixed: Mapping[str, float] | None = None) -> str:
    """The text of ``netderive info``: quantities with their meaning and arguments,
    parameters with domain and value, the model file's keys with their values."""
    from netderive.derivations.families import schema_of

    fixed = fixed or {}
    spec = build.spec
    schema = schema_of(spec.family)
    out = [f"{spec.stem}: family {spec.family} ({spec.source})"]
    if spec.get("description"):
        out.append(f"  {spec['description']}")
    out += ["", f"quantities (netderive eval {spec.stem} QUANTITY ...):"]
    for name in build.quantities:
        item = build.item(name)
        args = ", ".join(item["arguments"]) or "none"
        out.append(_row(name, f"{item['meaning']} [arguments: {args}]"))
    out += ["", "parameters (--set NAME=VALUE, --grid NAME=START:STOP:NUM):"]
    for name in build.inputs:
        p = build.params[name]
        if name in fixed:
            value = f"= {_shown(build, name, fixed[name])} (--set)"
        elif p["default"] is not None:
            value = f"default {_shown(build, name, p['default'])}"
        else:
            value = "no default (give it with --set or --grid)"
        out.append(_row(name, f"{p['domain']}, {value}: {p['meaning']}"))
    out += ["", "model keys (--set KEY=VALUE derives the model again; tables: edit the file):"]
    for key, k in schema.keys.items():
        if key == "description":
            continue
        shown = summarise(spec[key]) if spec.get(key) is not None else "(not set)"
        out.append(_row(f"{key} = {shown}", k.meaning))
    for table, keys in schema.tables.items():
        values = spec.get(table) or {}
        for key, k in keys.items():
            shown = summarise(values[key]) if key in values else "(not set)"
            out.append(_row(f"[{table}] {key} = {shown}", k.meaning))
    return "\n".join(out)
