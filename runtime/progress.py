"""Progress bars and status lines that appear only on an interactive terminal.

``NETDERIVE_PROGRESS=1`` forces them on (e.g. for a log file); ``NETDERIVE_PROGRESS=0``
turns them off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """True on a terminal, unless ``NETDERIVE_PROGRESS`` says otherwise."""
    forced = os.environ.get("NETDERIVE_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def status(text: str) -> None:
    """One status line on stderr when progress output is enabled."""
    if progress_enabled():
        print(text, file=sys.stderr, flush=True)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when progress output is enabled."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr,
                disable=not progress_enabled(), leave=False)
