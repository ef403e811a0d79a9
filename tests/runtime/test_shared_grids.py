"""Quantities of one array program are evaluated by one call of its shared grid function (its
trajectories run once for all of them), with the values each item's own grid kernel gives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from netderive.derivations.ir import ArrayProgram
from netderive.runtime.evaluate import _evaluate_points


def test_generated_module_lists_the_shared_grids(toy_set, toy_kernels) -> None:
    programs = [i.name for i in toy_set.items if isinstance(i, ArrayProgram)]
    assert set(toy_kernels.SHARED_GRIDS) == set(programs)
    grids = {toy_kernels.SHARED_GRIDS[name] for name in programs}
    assert len(grids) == 1  # rot, rot_eig and rot_min share one program
    # one call for all items = each item's own grid kernel
    args = sorted({a for name in programs for a in toy_set.arguments(name)})
    rng = np.random.default_rng(3)
    columns = {a: (rng.integers(1, 6, 5).astype(float) if a == "K" else rng.uniform(0.5, 1.5, 5))
               for a in args}
    together = getattr(toy_kernels, grids.pop())(tuple(programs), columns, 5)
    for name in programs:
        alone = getattr(toy_kernels, name + "_grid")(*(columns[a]
                                                       for a in toy_set.arguments(name)))
        np.testing.assert_array_equal(together[name], alone)


def test_eval_calls_a_shared_grid_once_for_its_quantities() -> None:
    calls = []

    def shared_grid(names, columns, n):
        calls.append((names, sorted(columns)))
        return {name: np.full(n, float(len(name))) for name in names}

    kernels = SimpleNamespace(SHARED_GRIDS={"first": "_program_0_grid",
                                            "second": "_program_0_grid"},
                              _program_0_grid=shared_grid,
                              other_grid=lambda x: 2 * x)
    items = {"first": {"arguments": ["x", "step"]}, "second": {"arguments": ["x", "y"]},
             "other": {"arguments": ["x"]}}
    build = SimpleNamespace(kernels=lambda: kernels, item=items.__getitem__)
    request = SimpleNamespace(quantities=("first", "other", "second"),
                              fixed={"step": 3.0, "y": 0.5})
    points = {"x": np.array([1.0, 2.0])}
    results = _evaluate_points(build, request, points, 2, "_grid")
    assert calls == [(("first", "second"), ["step", "x", "y"])]
    assert list(results) == ["first", "other", "second"]  # the order asked for
    np.testing.assert_array_equal(results["first"], [5.0, 5.0])
    np.testing.assert_array_equal(results["second"], [6.0, 6.0])
    np.testing.assert_array_equal(results["other"], [2.0, 4.0])
