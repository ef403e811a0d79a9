"""Kernels of a ``Root``: the equation (and objective) as compiled functions of the iterate,
the search of ``codegen/algorithms/root.py`` spliced for them, and the kernel that calls it."""

from __future__ import annotations

import sympy as sp

from netderive.codegen.algorithms.root import SELECTIONS, root_search
from netderive.codegen.expressions import CodegenError, print_assignments
from netderive.derivations.ir import Root

from .printer import (
    NJIT,
    NJIT_PARALLEL,
    SEPARATOR,
    KernelPrinter,
    local,
    params_tuple,
    unpack_params,
)


def emit(p: KernelPrinter, item: Root, args: tuple[str, ...]) -> str:
    """``_name_equation(x, _p)`` -> (g, g'), ``_name_objective(x, _p)``, the search
    ``_name_root_search`` (and ``_name_refine_root``) spliced from the template
    ``codegen/algorithms/root.py``, ``name(*args)`` = the search over the bracket, and grid
    kernels.

    The helpers evaluate the earlier items they use at the iterate (a Root may solve for a
    parameter); the bracket, fallback, candidates and breaks may not depend on it.
    """
    names = p.names()
    x = item.variable.name
    if x in names:
        raise CodegenError(f"root {item.name}: variable {x} shadows an item")
    deps = p.fs.dependencies(item)
    objective = [item.objective] if item.objective is not None else [sp.Float(0.0)]
    # earlier items the helpers use that do not depend on the iterate: computed once per
    # point by the kernel and passed to the helpers with the arguments
    hoisted = tuple(d for d in p.dependencies_in([item.equation, item.derivative, *objective],
                                                 deps) if x not in p.fs.arguments(d))
    passed = (*args, *(local(d) for d in hoisted))
    unpack = unpack_params(passed, "    ")

    def helper(suffix: str, exprs: list, doc: str) -> str:
        temps, values = print_assignments(exprs, names, "    ")
        moving = tuple(d for d in p.dependencies_in(exprs, deps) if d not in hoisted)
        return "\n".join([
            NJIT,
            f"def _{item.name}_{suffix}({x}, _p):",
            f'    """{doc}"""',
            *unpack,
            *p.dependency_lines(moving, "    "),
            *temps,
            f"    return {', '.join(values)}",
        ])

    blocks = [helper("equation", [item.equation, item.derivative],
                     f"The equation of {item.name} and its derivative in {x}.")]
    blocks.append(helper("objective", objective,
                         f"The objective that selects the zero of {item.name}"
                         + ("." if item.objective is not None else " (none: 0).")))
    search, spliced = p.splice(root_search, f"_{item.name}", {
        "equation": f"_{item.name}_equation", "objective": f"_{item.name}_objective"})
    blocks.append(spliced)
    breaks = list(item.monotone_breaks or ())
    bracket_exprs = [*item.bracket, item.fallback, *item.candidates, *breaks]
    fixed = p.dependencies_in(bracket_exprs, deps)
    if any(x in p.fs.arguments(d) for d in fixed) or any(
        sym.name == x for e in bracket_exprs for sym in sp.sympify(e).free_symbols
    ):
        raise CodegenError(f"root {item.name}: bracket, candidates or breaks depend on {x}")
    b_temps, b_vals = print_assignments(bracket_exprs, names, "    ", "_b")
    lo, hi, fallback, *rest = b_vals
    candidates, break_vals = rest[:len(item.candidates)], rest[len(item.candidates):]
    cells = int(item.scan_points) if item.monotone_breaks is None else 0
    # tuples (nothing allocated per call); a NaN entry stands for none (ignored / never wins)
    break_tuple = f"({''.join(f'float({b}), ' for b in break_vals) or 'math.nan, '})"
    candidate_tuple = f"({''.join(f'float({c}), ' for c in candidates) or 'math.nan, '})"
    # the set-up: everything that does not depend on the iterate, from the arguments it uses
    setup_deps = tuple(d for d in deps if d in set(fixed) | set(hoisted))
    used = {sym.name for e in bracket_exprs for sym in sp.sympify(e).free_symbols}
    for d in setup_deps:
        used.update(p.fs.arguments(d))
    setup_args = tuple(a for a in args if a in used)
    hoisted_locals = [local(d) for d in hoisted]
    setup = f"_{item.name}_setup"
    blocks.append("\n".join([
        NJIT,
        f"def {setup}({', '.join(setup_args)}):",
        f'    """What the search of {item.name} needs that does not depend on {x}: bracket, '
        'breaks, candidates, fallback and the earlier items the equation uses."""',
        *p.dependency_lines(setup_deps, "    "),
        *b_temps,
        f"    return ({lo}, {hi}, {break_tuple}, {candidate_tuple}, {fallback}"
        + "".join(f", {h}" for h in hoisted_locals) + ")",
    ]))
    unpacked = ", ".join(["_lo", "_hi", "_breaks", "_candidates", "_fallback", *hoisted_locals])

    def solve(point: dict[str, str]) -> str:
        """The call of the search, the arguments written as ``point`` says."""
        passed_here = [point.get(a, a) for a in passed]
        return (f"{search}(_lo, _hi, {cells}, _breaks, {SELECTIONS[item.select]}, "
                f"_candidates, _fallback, {params_tuple(passed_here)})")

    blocks.append("\n".join(p.header(item, args) + [
        f"    {unpacked} = {setup}({', '.join(setup_args)})",
        f"    return {solve({})}",
    ]))
    blocks.append(grid_kernels(p, item, args, setup_args, unpacked, setup, solve))
    return SEPARATOR.join(blocks)


#: The parallel grid kernel of a Root gives each thread runs of this many points (the set-up
#: is recomputed at the start of each run and where its arguments change).
ROOT_GRID_CHUNK = 2048


def grid_kernels(p: KernelPrinter, item: Root, args: tuple[str, ...],
                 setup_args: tuple[str, ...], unpacked: str, setup: str, solve) -> str:
    """``name_grid`` (``prange`` over runs of :data:`ROOT_GRID_CHUNK` points, spread among
    the threads) and ``name_grid_serial``: the set-up is computed again only where one of its
    arguments differs from the previous point's (a sweep over an argument that the set-up
    does not use computes it once per run)."""
    if not args:
        return p.python_grid(item, args, f"{item.name} repeated _n times.",
                             [f"    return np.full(_n, {item.name}())"])
    arrays = ", ".join(args)
    changed = " or ".join(f"{a}[_i] != {a}[_i - 1]" for a in setup_args) or "False"
    setup_call = f"{setup}({', '.join(f'{a}[_i]' for a in setup_args)})"
    point = {a: f"{a}[_i]" for a in args}

    def loop(first: str, indent: str) -> list[str]:
        return [
            f"{indent}if _i == {first} or {changed}:",
            f"{indent}    {unpacked} = {setup_call}",
            f"{indent}_out[_i] = {solve(point)}",
        ]

    p_algorithm = p.algorithm("root", "spreading_stride")
    parallel = [
        NJIT_PARALLEL,
        f"def {item.name}_grid({arrays}):",
        f'    """{item.name} at every grid point (1-D arrays of equal length): runs of '
        f'{ROOT_GRID_CHUNK} points in parallel."""',
        f"    _n = {args[0]}.shape[0]",
        "    _out = np.empty(_n)",
        f"    _runs = (_n + {ROOT_GRID_CHUNK - 1}) // {ROOT_GRID_CHUNK}",
        f"    _stride = {p_algorithm}(_runs)",
        "    for _r in nb.prange(_runs):",
        "        # prange hands each thread a contiguous block of _r: spread the runs it maps to",
        "        # (the cost of a root varies along a sweep; a permutation of 0.._runs-1)",
        "        _run = (_r * _stride) % _runs",
        f"        _start = _run * {ROOT_GRID_CHUNK}",
        f"        for _i in range(_start, min(_n, _start + {ROOT_GRID_CHUNK})):",
        *loop("_start", "            "),
        "    return _out",
    ]
    serial = [
        NJIT,
        f"def {item.name}_grid_serial({arrays}):",
        f'    """{item.name} at every grid point (1-D arrays of equal length), on one core."""',
        f"    _n = {args[0]}.shape[0]",
        "    _out = np.empty(_n)",
        "    for _i in range(_n):",
        *loop("0", "        "),
        "    return _out",
    ]
    return "\n".join(parallel) + SEPARATOR + "\n".join(serial)
