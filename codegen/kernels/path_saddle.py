"""Kernels of a ``PathSaddle``: the stage function, typical step and observable as compiled
functions (with their derivatives), the Newton continuation of
``codegen/algorithms/continuation.py`` spliced for them, and plain-Python kernels around it.

The compiled pieces ``_saddle_N_stage``, ``_typical``, ``_observable`` and ``_solve`` are
shared by every item with the same stage, typical step and observable.  As for array
programs, a compiled caller would re-link and re-optimise the whole chain (measured: 13 s
more for a second item of the tanh model); one Python call per point costs microseconds
against the solve's milliseconds.
"""

from __future__ import annotations

import sympy as sp

from netderive.codegen.algorithms.continuation import solve
from netderive.codegen.expressions import CodegenError, print_assignments
from netderive.derivations.ir import PathSaddle

from .printer import NJIT, SEPARATOR, KernelPrinter, params_tuple, unpack_params


def emit(p: KernelPrinter, item: PathSaddle, args: tuple[str, ...]) -> str:
    """The shared compiled pieces (first item only), and the item's Python ``name``,
    ``name_path`` (rows ``(theta_l, m_l)``, l = 1..K, then ``(lambda, S, g(m_K))``) and
    ``name_grid`` (= ``name_grid_serial``; one compiled solve per point)."""
    for other in p.fs.items:
        if item.name in p.fs.dependencies(other):
            raise CodegenError(f"{other.name} uses the path saddle {item.name}: saddle "
                               "points are called from Python only")
    names = p.names()
    for sym in item.bound_symbols():
        if sym.name in names:
            raise CodegenError(f"path saddle {item.name}: {sym.name} shadows an item")
    d = len(item.state)
    deps = p.fs.dependencies(item)
    moving_names = {s.name for s in item.bound_symbols()}
    moving = tuple(dep for dep in deps if set(p.fs.arguments(dep)) & moving_names)
    if p.dependencies_in([*item.start, item.goal, item.steps, item.output], moving):
        raise CodegenError(f"path saddle {item.name}: its start, goal, steps or output "
                           "uses an item that depends on the path")
    parts = {
        "stage": (item.stage, *item.stage_gradient, *sum(item.stage_hessian, ())),
        "typical": tuple(item.typical_step),
        "observable": (item.observable, *item.observable_gradient,
                       *sum(item.observable_hessian, ())),
    }
    # the parameters the compiled pieces use (directly or through earlier items)
    every = [e for exprs in parts.values() for e in exprs]
    used = {sym.name for e in every for sym in sp.sympify(e).free_symbols}
    for dep in p.dependencies_in(every, deps):
        used.update(p.fs.arguments(dep))
    solve_args = tuple(q.name for q in p.fs.params if q.name in used - moving_names)
    key = (item.conjugate, item.state, item.previous, *parts.values())  # sympy: hashable
    shared, new = p.shared("_saddle", key)
    blocks = compiled_pieces(p, item, shared, parts, deps, solve_args) if new else []
    # plain-Python wrappers: start, goal, steps and output at fixed parameters
    fixed = p.dependencies_in([*item.start, item.goal, item.steps, item.output], deps)
    start_temps, start_vals = print_assignments([*item.start, item.goal, item.steps],
                                                names, "    ", "_i")
    out_temps, (out_val,) = print_assignments([item.output], names, "    ", "_o")
    call = "".join(f", {a}" for a in solve_args)
    solve = [
        *p.dependency_lines(fixed, "    "),
        *start_temps,
        f"    _m0 = np.array([{', '.join(start_vals[:d])}], dtype=np.float64)",
        f"    _k = int({start_vals[d + 1]})",
        f"    _x, {item.action.name}, {item.multiplier.name}, {item.endpoint.name} = "
        f"{shared}_solve(float({start_vals[d]}), {item.mode == 'target'}, _k, _m0, "
        f"{int(item.continuation)}{call})",
    ]
    sig = ", ".join(args)
    blocks.append("\n".join([
        f"def {item.name}({sig}):",
        p.docstring(item, args, "\n    NaN where the continuation from the typical path fails."),
        *solve, *out_temps, f"    return {out_val}"]))
    blocks.append("\n".join([
        f"def {item.name}_path({sig}):",
        f'    """Stationary path of {item.name}: rows (theta_l, m_l), l = 1..K, then a row '
        '(lambda, S, g(m_K))."""',
        *solve,
        f"    _out = np.zeros((_k + 1, {max(2 * d, 3)}))",
        f"    _out[:_k, :{2 * d}] = _x[:{2 * d} * _k].reshape(_k, {2 * d})",
        f"    _out[_k, :3] = ({item.multiplier.name}, {item.action.name}, {item.endpoint.name})",
        "    return _out",
    ]))
    if args:
        body = [f"    return np.array([{item.name}(*map(float, _a)) for _a in zip({sig})], "
                "dtype=np.float64).reshape(-1)"]
        doc = (f"{item.name} at every grid point (1-D arrays of equal length; one compiled "
               "solve per point).")
    else:
        body, doc = [f"    return np.full(_n, {item.name}())"], f"{item.name} repeated _n times."
    blocks.append(p.python_grid(item, args, doc, body))
    return SEPARATOR.join(blocks)


def compiled_pieces(p: KernelPrinter, item: PathSaddle, shared: str, parts: dict,
                    deps: tuple[str, ...], solve_args: tuple[str, ...]) -> list[str]:
    """``{shared}_stage(_theta, _m, _prev, _p)`` -> (l, gradient, Hessian),
    ``_typical(_prev, _p)`` -> m, ``_observable(_m, _p)`` -> (g, gradient, Hessian), the
    continuation spliced for them (``_continuation_solve``, ``_continuation_system``) and the
    compiled entry
    ``_solve(_goal, _target, _k, _m0, _continuation, *solve_args)``."""
    d = len(item.state)
    n_local = 3 * d
    names = p.names()
    unpack = unpack_params(solve_args, "    ")

    def vector(symbols: tuple[sp.Symbol, ...], array: str) -> list[str]:
        return [f"    {s.name} = {array}[{j}]" for j, s in enumerate(symbols)]

    stage_out = [f"    _g = np.empty({n_local})", f"    _h = np.empty(({n_local}, {n_local}))"]
    stage_out += [f"    _g[{a}] = {{{1 + a}}}" for a in range(n_local)]
    stage_out += [f"    _h[{a}, {b}] = {{{1 + n_local + a * n_local + b}}}"
                  for a in range(n_local) for b in range(n_local)]
    stage_out.append("    return {0}, _g, _h")
    observable_out = [f"    _g = np.empty({d})", f"    _h = np.empty(({d}, {d}))"]
    observable_out += [f"    _g[{a}] = {{{1 + a}}}" for a in range(d)]
    observable_out += [f"    _h[{a}, {b}] = {{{1 + d + a * d + b}}}"
                       for a in range(d) for b in range(d)]
    observable_out.append("    return {0}, _g, _h")
    typical_out = [f"    _m = np.empty({d})", *[f"    _m[{j}] = {{{j}}}" for j in range(d)],
                   "    return _m"]
    pieces = {
        "stage": ("_theta, _m, _prev", [*vector(item.conjugate, "_theta"),
                                        *vector(item.state, "_m"),
                                        *vector(item.previous, "_prev")], stage_out,
                  "Stage function l(theta, m, m') with its gradient and Hessian in "
                  "(theta, m, m')."),
        "typical": ("_prev", vector(item.previous, "_prev"), typical_out,
                    "The typical state after the state _prev."),
        "observable": ("_m", vector(item.state, "_m"), observable_out,
                       "Observable g(m) with its gradient and Hessian."),
    }
    blocks = []
    for part, (signature, inputs, out, doc) in pieces.items():
        exprs = list(parts[part])
        temps, values = print_assignments(exprs, names, "    ")
        blocks.append("\n".join([
            NJIT,
            f"def {shared}_{part}({signature}, _p):",
            f'    """{doc}"""',
            *inputs,
            *unpack,
            *p.dependency_lines(p.dependencies_in(exprs, deps), "    "),
            *temps,
            *[line.format(*values) for line in out],
        ]))
    solver, spliced = p.splice(solve, f"{shared}_continuation",
                               {part: f"{shared}_{part}" for part in pieces})
    blocks.append(spliced)
    signature = ", ".join(["_goal", "_target", "_k", "_m0", "_continuation", *solve_args])
    blocks.append("\n".join([
        NJIT,
        f"def {shared}_solve({signature}):",
        '    """The stationary path (last entry lambda in target mode), S, lambda and g(m_K) at '
        "_goal by Newton continuation from the typical path (codegen/algorithms/"
        'continuation.py); NaN if the continuation fails."""',
        f"    return {solver}(_goal, _target, _k, _m0, _continuation, "
        f"{params_tuple(solve_args)})",
    ]))
    return blocks
