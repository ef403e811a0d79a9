"""What a long command is doing, on stderr only (stdout carries results).

Three modes:

- ``bars``: stderr is a terminal (or ``NETDERIVE_PROGRESS=1``): status lines and tqdm bars.
- ``lines``: stderr is not a terminal (a pipe, a log file): status lines, and a line every
  :data:`LOG_INTERVAL` seconds from a long loop instead of a bar.
- ``quiet``: ``netderive -q`` (or ``NETDERIVE_PROGRESS=0``): nothing.

``-q`` wins over ``NETDERIVE_PROGRESS``; ``NETDERIVE_PROGRESS=1`` draws bars off a terminal too.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Literal, TypeVar

T = TypeVar("T")
Mode = Literal["bars", "lines", "quiet"]

#: Environment variable: ``1`` forces tqdm bars (also off a terminal), ``0`` silences output.
PROGRESS_ENV = "NETDERIVE_PROGRESS"
#: Off a terminal, a long loop reports at most once per this many seconds.
LOG_INTERVAL = 30.0

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence status lines and bars for the rest of the process (``netderive -q``)."""
    global _quiet
    _quiet = quiet


def mode() -> Mode:
    """The output mode: ``quiet`` with -q or NETDERIVE_PROGRESS=0, else ``bars`` on a terminal
    or with NETDERIVE_PROGRESS=1, else ``lines``."""
    forced = os.environ.get(PROGRESS_ENV)
    if _quiet or forced == "0":
        return "quiet"
    if forced == "1" or sys.stderr.isatty():
        return "bars"
    return "lines"


def progress_enabled() -> bool:
    """True when tqdm bars are drawn."""
    return mode() == "bars"


def status(text: str) -> None:
    """One status line on stderr (nothing when quiet)."""
    if mode() != "quiet":
        print(text, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``: elapsed time for status lines."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterable[T]:
    """``iterable`` with a tqdm bar on a terminal, a line every :data:`LOG_INTERVAL` seconds
    off a terminal, nothing when quiet."""
    current = mode()
    if current == "bars":
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)
    if current == "lines":
        return _logged(iterable, total, desc)
    return iterable


def _logged(iterable: Iterable[T], total: int | None, desc: str) -> Iterator[T]:
    """``iterable``, with a status line every :data:`LOG_INTERVAL` seconds from a background
    thread (also while one item takes long: a Monte Carlo in a few large batches)."""
    start = time.perf_counter()
    done = 0
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(LOG_INTERVAL):
            of = f"/{total}" if total else ""
            status(f"{desc}: {done}{of} done after {format_seconds(time.perf_counter() - start)}")

    threading.Thread(target=beat, daemon=True).start()
    try:
        for item in iterable:
            yield item
            done += 1
    finally:
        stop.set()
