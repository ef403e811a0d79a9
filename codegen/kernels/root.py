"""Kernels of a ``Root``: the equation (and objective) as compiled functions of the iterate,
the search that ``codegen/algorithms/root.py`` makes for them, and the kernel that calls it."""

from __future__ import annotations

import sympy as sp

from netderive.codegen.algorithms.root import SELECTIONS
from netderive.codegen.expressions import CodegenError, print_assignments
from netderive.derivations.ir import Root

from .printer import NJIT, SEPARATOR, KernelPrinter, params_tuple, unpack_params


def emit(p: KernelPrinter, item: Root, args: tuple[str, ...]) -> str:
    """``_name_equation(x, _p)`` -> (g, g'), ``_name_objective(x, _p)`` (``min_objective``),
    ``_name_search`` (made at import by ``root_search``), ``name(*args)`` = the search over
    the bracket, and grid kernels.

    The helpers evaluate the earlier items they use at the iterate (a Root may solve for a
    parameter); the bracket, fallback and candidates may not depend on it.
    """
    names = p.names()
    x = item.variable.name
    if x in names:
        raise CodegenError(f"root {item.name}: variable {x} shadows an item")
    deps = p.fs.dependencies(item)
    unpack = unpack_params(args, "    ")

    def helper(suffix: str, exprs: list, doc: str) -> str:
        temps, values = print_assignments(exprs, names, "    ")
        return "\n".join([
            NJIT,
            f"def _{item.name}_{suffix}({x}, _p):",
            f'    """{doc}"""',
            *unpack,
            *p.dependency_lines(p.dependencies_in(exprs, deps), "    "),
            *temps,
            f"    return {', '.join(values)}",
        ])

    blocks = [helper("equation", [item.equation, item.derivative],
                     f"The equation of {item.name} and its derivative in {x}.")]
    factory = [f"_{item.name}_equation", str(SELECTIONS[item.select])]
    if item.objective is not None:
        blocks.append(helper("objective", [item.objective],
                             f"The objective that selects the zero of {item.name}."))
        factory.append(f"_{item.name}_objective")
    search = f"_{item.name}_search"
    blocks.append(f"{search} = {p.algorithm('root', 'root_search')}({', '.join(factory)})")
    bracket_exprs = [*item.bracket, item.fallback, *item.candidates]
    fixed = p.dependencies_in(bracket_exprs, deps)
    if any(x in p.fs.arguments(d) for d in fixed) or any(
        sym.name == x for e in bracket_exprs for sym in sp.sympify(e).free_symbols
    ):
        raise CodegenError(f"root {item.name}: bracket or candidates depend on {x}")
    b_temps, b_vals = print_assignments(bracket_exprs, names, "    ", "_b")
    lo, hi, fallback, *candidates = b_vals
    candidate_array = (f"np.array(({', '.join(candidates)},))" if candidates
                       else "np.empty(0)")
    body = [
        *p.dependency_lines(fixed, "    "),
        *b_temps,
        f"    return {search}({lo}, {hi}, {int(item.scan_points)}, {candidate_array}, "
        f"{fallback}, {params_tuple(args)})",
    ]
    blocks.append("\n".join(p.header(item, args) + body))
    return SEPARATOR.join([*blocks, p.pointwise_grids(item, args)])
