"""Compiling kernels: ahead of use (``build --compile``), and saying so when first use compiles.

numba compiles a kernel on its first call and keeps the machine code in its on-disk cache
(``__pycache__`` beside the build's ``kernels.py``); later processes load it from there.
:func:`pending_kernels` reads that cache's index to tell which kernels a command will
compile; :class:`CompileWatch` listens to numba's own compile events (fired only on a cache
miss), so that "compiling" is said exactly when numba compiles, with the time it takes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import ModuleType, TracebackType
from typing import Any

from .progress import LOG_INTERVAL, format_seconds, mode, progress, status
from .session import Build

#: How often the terminal line of a running compilation is redrawn (seconds).
TICK = 1.0
#: numba's compile event (see numba.core.event): fired on every cache miss, nested for callees.
COMPILE_EVENT = "numba:compile"


def compile_all(build: Build, grids: bool = True) -> float:
    """Compile scalar (and grid) kernels for float64 arguments; returns seconds taken."""
    from numba import types

    module = build.kernels()
    start = time.perf_counter()
    items = build.manifest["items"]
    defaults = build.defaults
    for item in progress(items, total=len(items), desc="compiling"):
        n = len(item["arguments"])
        kernel = getattr(module, item["name"])
        if not hasattr(kernel, "compile"):
            # Python around compiled pieces (an array program): one call compiles them
            if all(a in defaults for a in item["arguments"]):
                kernel(*(defaults[a] for a in item["arguments"]))
            continue
        kernel.compile((types.float64,) * n)
        if grids and n:
            array = types.Array(types.float64, 1, "C")
            for suffix in ("_grid", "_grid_serial"):
                getattr(module, item["name"] + suffix).compile((array,) * n)
    return time.perf_counter() - start


def _is_dispatcher(obj: Any) -> bool:
    return hasattr(obj, "py_func") and hasattr(obj, "overloads")


def _is_cached(dispatcher: Any) -> bool:
    """Whether ``dispatcher`` has machine code in this process or in numba's on-disk cache
    for its current source (any signature: the generated kernels take one each)."""
    if dispatcher.overloads:
        return True
    try:
        cache = dispatcher._cache
        codegen = dispatcher.targetctx.codegen()
        current = cache._index_key(None, codegen)
        index = cache._cache_file._load_index()
    except Exception:  # numba's internals changed, or an unreadable index: it will compile
        return False
    return any(key[1:] == current[1:] for key in index)


def pending_kernels(module: ModuleType, names: Iterable[str]) -> list[str]:
    """The kernels among ``names`` that numba will compile on their first call.

    A name that is plain Python around compiled pieces (an array program's item) stands for
    the compiled kernels it calls."""
    pending: list[str] = []
    for name in names:
        for n in _compiled_callees(module, name, set()):
            if n not in pending and not _is_cached(getattr(module, n)):
                pending.append(n)
    return pending


def _compiled_callees(module: ModuleType, name: str, seen: set[str]) -> list[str]:
    """``name`` if it is a compiled kernel, else the compiled kernels of ``module`` that the
    plain-Python function ``name`` calls, directly or through other such functions."""
    obj = getattr(module, name, None)
    if _is_dispatcher(obj):
        return [name]
    code = getattr(obj, "__code__", None)
    if code is None or name in seen:
        return []
    seen.add(name)
    return [k for n in code.co_names for k in _compiled_callees(module, n, seen)]


class CompileWatch:
    """Context manager: while numba compiles kernels (cache misses only), say so on stderr.

    The first compilation prints ``compiling N kernels (first use) ...`` (``N`` is ``planned``,
    or what ``planned`` returns when it is a function: it is asked then); a terminal shows a
    line with the kernels done and the elapsed compile time, redrawn every :data:`TICK`
    seconds; off a terminal a line follows every :data:`runtime.progress.LOG_INTERVAL`
    seconds. On exit:
    ``compiled N kernels (first use) in T`` (T the time spent compiling, not the whole block).
    Nothing is printed when nothing compiles.
    """

    def __init__(self, planned: int | Callable[[], int] | None = None, label: str = "") -> None:
        self._plan = planned
        self.planned: int | None = None
        self.label = f"{label}: " if label else ""
        self.count = 0
        self.seconds = 0.0
        self._depth = 0
        self._started_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None
        self._listener: Any = None
        self._last_line = 0.0

    def _on_start(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth > 1:  # a callee compiled as part of the kernel
                return
            self._started_at = time.perf_counter()
            first = self.count == 0
        if first:
            self.planned = self._resolve_plan()
            what = f"{self.planned} kernel{'s' if self.planned > 1 else ''}" if self.planned \
                else "kernels"
            status(f"{self.label}compiling {what} (first use) ...")
            self._last_line = time.perf_counter()
        if mode() == "bars":
            from tqdm import tqdm

            self._bar = tqdm(total=None, bar_format="{desc}", file=sys.stderr, leave=False,
                             desc=self._line())
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def _on_end(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth > 0 or self._started_at is None:
                return
            self.seconds += time.perf_counter() - self._started_at
            self._started_at = None
            self.count += 1
            bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

    def _resolve_plan(self) -> int | None:
        """The planned count; a callable is asked at the first compilation (numba loaded)."""
        if not callable(self._plan):
            return self._plan or None
        try:
            return self._plan() or None
        except Exception:  # numba's internals changed: say "kernels" without a count
            return None

    def _elapsed(self) -> float:
        running = time.perf_counter() - self._started_at if self._started_at else 0.0
        return self.seconds + running

    def _line(self) -> str:
        of = f"/{self.planned}" if self.planned and self.count < self.planned else ""
        return (f"{self.label}compiling kernels (first use): {self.count}{of} done, "
                f"{format_seconds(self._elapsed())}")

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                if self._started_at is None:
                    continue
                bar, line = self._bar, self._line()
            if bar is not None:
                bar.set_description_str(line, refresh=True)
            elif mode() == "lines" and time.perf_counter() - self._last_line >= LOG_INTERVAL:
                self._last_line = time.perf_counter()
                status(line)

    def __enter__(self) -> CompileWatch:
        from numba.core import event

        watch = self

        class Forward(event.Listener):
            def on_start(self, ev: Any) -> None:
                watch._on_start()

            def on_end(self, ev: Any) -> None:
                watch._on_end()

        self._listener = Forward()
        event.register(COMPILE_EVENT, self._listener)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        from numba.core import event

        event.unregister(COMPILE_EVENT, self._listener)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()
        if self.count and kind is None:  # (kernels compiled as callees of others fire
            # nested events: a count here would differ from the plan's, so none is given)
            status(f"{self.label}compiled (first use) in {format_seconds(self.seconds)}")
