"""Kernels of a ``Recurrence``: a loop over the one-step map (never unrolled), and the
trajectory of the states."""

from __future__ import annotations

from netderive.codegen.expressions import (
    CodegenError,
    NumbaExpressionPrinter,
    print_assignments,
)
from netderive.derivations.ir import Recurrence

from .printer import NJIT, SEPARATOR, KernelPrinter


def emit(p: KernelPrinter, item: Recurrence, args: tuple[str, ...]) -> str:
    """``name(*args)``: s_0, then K steps, then the output at s_K; ``name_trajectory``: the
    states s_0..s_K as rows; grid kernels.

    Earlier items that take a state (or the step index) as their parameter are evaluated anew
    at every step, and after the loop for the output.
    """
    names = p.names()
    for s in item.bound_symbols():
        if s.name in names:
            raise CodegenError(f"recurrence {item.name}: state {s.name} shadows an item")
    state = [s.name for s in item.state]
    k = item.index.name if item.index is not None else "_k"
    moving_names = {s.name for s in item.bound_symbols()}
    all_deps = p.fs.dependencies(item)
    moving = tuple(d for d in all_deps if set(p.fs.arguments(d)) & moving_names)
    fixed = tuple(d for d in all_deps if d not in moving)

    if p.dependencies_in([*item.init, item.steps], moving):
        raise CodegenError(f"recurrence {item.name}: its initial state or number of steps "
                           "uses an item that depends on the state")
    out_moving = p.dependencies_in([item.output], moving)
    if item.index is not None and any(item.index.name in p.fs.arguments(d) for d in out_moving):
        raise CodegenError(f"recurrence {item.name}: its output uses an item that depends "
                           "on the step index")
    deps = p.dependency_lines(fixed, "    ")
    init_temps, init_vals = print_assignments(item.init, names, "    ", "_i")
    step_temps, step_vals = print_assignments(item.step, names, "        ", "_s")
    out_temps, (out_val,) = print_assignments([item.output], names, "    ", "_o")
    body = [*deps, *init_temps]
    body += [f"    {s} = {v}" for s, v in zip(state, init_vals, strict=True)]
    steps = NumbaExpressionPrinter(names).doprint(item.steps)
    loop = [f"    for {k}_int in range(int({steps})):",
            f"        {k} = float({k}_int)",
            *p.dependency_lines(p.dependencies_in(item.step, moving), "        "),
            *step_temps]
    loop += [f"        _n{j} = {v}" for j, v in enumerate(step_vals)]
    loop += [f"        {s} = _n{j}" for j, s in enumerate(state)]
    final = (p.header(item, args) + body + loop + p.dependency_lines(out_moving, "    ")
             + out_temps + [f"    return {out_val}"])
    trajectory = [
        NJIT,
        f"def {item.name}_trajectory({', '.join(args)}):",
        f'    """States s_0..s_K of {item.name} as rows ({", ".join(state)})."""',
        *body,
        f"    _path = np.empty((int({steps}) + 1, {len(state)}))",
        *[f"    _path[0, {j}] = {s}" for j, s in enumerate(state)],
        *loop,
        *[f"        _path[{k}_int + 1, {j}] = {s}" for j, s in enumerate(state)],
        "    return _path",
    ]
    return SEPARATOR.join(["\n".join(final), "\n".join(trajectory),
                           p.pointwise_grids(item, args)])
