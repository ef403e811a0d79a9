"""Compile every kernel of a build ahead of use (fills numba's on-disk cache)."""

from __future__ import annotations

import time

from .progress import progress
from .session import Build


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
