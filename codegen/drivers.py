"""Plain-Python drivers that generated kernel modules import (no sympy, no family).

An array program's compiled function runs one trajectory: the set-up, then the body up to
each of several step counts, recording the outputs of the wanted items there.  The driver
here feeds it: one trajectory per setting of the program's trajectory arguments, the points
of that setting in increasing step order.  A sweep over ``step = 0..T`` is then one run of
``T`` steps, not ``T`` runs, and several items of one program share the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def program_grid(program: Callable, items: Sequence[str], point_args: Sequence[str],
                 trajectory_args: Sequence[str], steps: str | int, names: Sequence[str],
                 columns: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The items ``names`` of ``program`` at ``n`` points.

    ``program(counts, points, wanted, *trajectory)`` returns one row of outputs (one column
    per item of ``items``) per count; ``columns`` maps every argument of the named items to a
    1-D array of length ``n``.  ``steps`` is the argument that counts the steps (truncated to
    an integer) or a fixed count.  A point argument that none of the named items takes is 0
    (its items are not wanted).
    """
    wanted = np.array([item in names for item in items])
    points = np.zeros((n, len(point_args)))
    for k, a in enumerate(point_args):
        if a in columns:
            points[:, k] = columns[a]
    counts = (np.full(n, steps, dtype=np.int64) if isinstance(steps, int)
              else np.asarray(columns[steps]).astype(np.int64))
    keys = (list(zip(*(np.asarray(columns[a], dtype=float).tolist() for a in trajectory_args),
                     strict=True)) if trajectory_args else [()] * n)
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    out = np.empty((n, len(items)))
    for key, members in groups.items():
        rows = np.array(sorted(members, key=counts.__getitem__), dtype=np.int64)
        out[rows] = program(np.ascontiguousarray(counts[rows]),
                            np.ascontiguousarray(points[rows]), wanted, *key)
    return {name: out[:, items.index(name)] for name in names}
