"""The error of bad model input, and name suggestions (no sympy, no numpy)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any


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
