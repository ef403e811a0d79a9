"""Kernels of a ``Root``: the equation (and objective) as compiled functions of the iterate,
the search of ``codegen/algorithms/root.py`` spliced for them, and the kernel that calls it."""

from __future__ import annotations

import sympy as sp

from netderive.codegen.algorithms.root import SELECTIONS, root_search
from netderive.codegen.expressions import CodegenError, print_assignments
from netderive.derivations.ir import Root

from .printer import NJIT, SEPARATOR, KernelPrinter, params_tuple, unpack_params


def emit(p: KernelPrinter, item: Root, args: tuple[str, ...]) -> str:
    """``_name_equation(x, _p)`` -> (g, g'), ``_name_objective(x, _p)``, the search
    ``_name_root_search`` (and ``_name_refine_root``) spliced from the template
    ``codegen/algorithms/root.py``, ``name(*args)`` = the search over the bracket, and grid
    kernels.

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
    objective = [item.objective] if item.objective is not None else [sp.Float(0.0)]
    blocks.append(helper("objective", objective,
                         f"The objective that selects the zero of {item.name}"
                         + ("." if item.objective is not None else " (none: 0).")))
    search, spliced = p.splice(root_search, f"_{item.name}", {
        "equation": f"_{item.name}_equation", "objective": f"_{item.name}_objective"})
    blocks.append(spliced)
    bracket_exprs = [*item.bracket, item.fallback, *item.candidates]
    fixed = p.dependencies_in(bracket_exprs, deps)
    if any(x in p.fs.arguments(d) for d in fixed) or any(
        sym.name == x for e in bracket_exprs for sym in sp.sympify(e).free_symbols
    ):
        raise CodegenError(f"root {item.name}: bracket or candidates depend on {x}")
    b_temps, b_vals = print_assignments(bracket_exprs, names, "    ", "_b")
    lo, hi, fallback, *candidates = b_vals
    candidate_array = (f"np.array(({', '.join(candidates)},))" if candidates
                       else p.constant("_NO_CANDIDATES", "_NO_CANDIDATES = np.empty(0)"))
    body = [
        *p.dependency_lines(fixed, "    "),
        *b_temps,
        f"    return {search}({lo}, {hi}, {int(item.scan_points)}, "
        f"{SELECTIONS[item.select]}, {candidate_array}, {fallback}, {params_tuple(args)})",
    ]
    blocks.append("\n".join(p.header(item, args) + body))
    return SEPARATOR.join([*blocks, p.pointwise_grids(item, args)])
