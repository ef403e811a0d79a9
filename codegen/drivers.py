"""Plain-Python drivers that generated kernel modules import (no sympy, no family).

An array program's grid kernel runs one trajectory per setting of the program's own
arguments and reads the output off it at every step the grid asks for, in increasing
order: a sweep over ``step = 0..T`` costs one run of ``T`` steps, not ``T`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def program_grid(start: Callable, advance: Callable, finish: Callable,
                 start_columns: Sequence[np.ndarray], advance_columns: Sequence[np.ndarray],
                 steps: np.ndarray | int, finish_columns: Sequence[np.ndarray]) -> np.ndarray:
    """``finish`` at every grid point, on the arrays of ``start`` advanced by ``steps``.

    ``start(*s)`` returns the program's arrays, ``advance(arrays, count, *a)`` runs its body
    ``count`` times in place and ``finish(arrays, *f)`` reads the output (on copies), where
    ``s``, ``a`` and ``f`` are the point's entries of ``start_columns``, ``advance_columns``
    and ``finish_columns``.  ``steps`` is the column of step counts (truncated to integers)
    or a fixed count.  Points that share ``s`` and ``a`` share one
    trajectory, visited in increasing step order.
    """
    n = finish_columns[0].shape[0]
    out = np.empty(n)
    counts = (np.full(n, steps, dtype=np.int64) if isinstance(steps, int)
              else np.asarray(steps).astype(np.int64))
    keys = list(zip(*(np.asarray(c).tolist() for c in (*start_columns, *advance_columns)),
                    strict=True)) if (start_columns or advance_columns) else [()] * n
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    split = len(start_columns)
    for key, members in groups.items():
        members.sort(key=counts.__getitem__)
        arrays = start(*key[:split])
        done = 0
        for i in members:
            if counts[i] > done:
                advance(arrays, int(counts[i] - done), *key[split:])
                done = int(counts[i])
            out[i] = finish(arrays, *(c[i] for c in finish_columns))
    return out
