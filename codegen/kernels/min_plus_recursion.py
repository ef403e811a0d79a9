"""Kernels of a ``MinPlusRecursion``: the one-stage rate (and the line envelope's pieces) as
compiled functions, the dynamic programming of ``codegen/algorithms/min_plus.py`` spliced for
them, and the kernels that call it; the value is the last curve interpolated at the variable.
"""

from __future__ import annotations

import sympy as sp

from netderive.codegen.algorithms.min_plus import curves_envelope, curves_fixed, curves_staged
from netderive.codegen.expressions import CodegenError, print_assignments
from netderive.derivations.ir import MinPlusRecursion

from .printer import (
    NJIT,
    NJIT_PARALLEL,
    SEPARATOR,
    KernelPrinter,
    params_tuple,
    unpack_params,
)


def emit(p: KernelPrinter, item: MinPlusRecursion, args: tuple[str, ...]) -> str:
    """``_name_rate``; ``name_curves_dp`` (the plain O(G^2) programming) and ``name_curves``
    (the envelope when the item has one, else the same), both ``(*args_but_variable) ->
    (grid, rows I_1..I_K)``; ``name(*args)``; ``name_grid`` / ``name_grid_serial``: one set of
    curves per run of consecutive points that share every argument but the variable."""
    names = p.names()
    x, xp = item.variable.name, item.previous.name
    k = item.index.name if item.index is not None else None
    if x not in args:
        raise CodegenError(f"min-plus recursion {item.name}: the step rate does not use {x}")
    for s in (xp, k):
        if s is not None and s in names:
            raise CodegenError(f"min-plus recursion {item.name}: {s} shadows an item")
    curve_args = tuple(a for a in args if a != x)
    params = params_tuple(curve_args)
    unpack = unpack_params(curve_args, "    ")
    deps = p.fs.dependencies(item)

    def helper(name: str, parameters: list[str], exprs: list, doc: str) -> str:
        temps, values = print_assignments(exprs, names, "    ")
        return "\n".join([
            NJIT,
            f"def _{item.name}_{name}({', '.join([*parameters, '_p'])}):",
            f'    """{doc}"""',
            *unpack,
            *p.dependency_lines(p.dependencies_in(exprs, deps), "    "),
            *temps,
            f"    return {', '.join(values)}",
        ])

    blocks = [helper("rate", [x, xp, k or "_stage"], [item.step_rate],
                     f"One-stage rate J({x} | {xp}) (NaN counts as +inf).")]
    fixed_exprs = [item.lower, item.upper, item.start, item.steps, item.grid_size]
    fixed = p.dependencies_in(fixed_exprs, deps)
    bound = {x, xp, *([k] if k else [])}
    if any(set(p.fs.arguments(d)) & bound for d in fixed) or any(
        sym.name in bound for e in fixed_exprs for sym in sp.sympify(e).free_symbols
    ):
        raise CodegenError(f"min-plus recursion {item.name}: the grid, start or number of "
                           f"stages depend on {x}, {xp} or the stage")
    f_temps, (lo, hi, x0, steps, size) = print_assignments(fixed_exprs, names, "    ", "_f")
    prologue = [*p.dependency_lines(fixed, "    "), *f_temps]
    problem = f"{lo}, {hi}, {size}, {x0}, {steps}"
    doc = (f'    """Grid and rows I_1..I_K of {item.name} ({{}}).\n\n    Reference: '
           f'{item.ref}\n    Arguments: ({", ".join(curve_args)})"""')
    signature = ", ".join(curve_args)
    callbacks = {"rate": f"_{item.name}_rate"}
    dp, spliced = p.splice(curves_staged if k is not None else curves_fixed, f"_{item.name}",
                           callbacks)
    blocks.append(spliced)
    blocks.append("\n".join([
        NJIT, f"def {item.name}_curves_dp({signature}):",
        doc.format("plain O(G^2) dynamic programming per stage"), *prologue,
        f"    return {dp}({problem}, {params})"]))
    if item.envelope is not None:
        offset, abscissa, slope, intercept = item.envelope
        blocks.append(helper("abscissa", [x], [offset, abscissa],
                             "Offset A(x) and abscissa X(x) of the line envelope."))
        blocks.append(helper("line", [xp], [slope, intercept],
                             "Slope m(x') and intercept c(x') of the line of the old state x'."))
        envelope, spliced = p.splice(curves_envelope, f"_{item.name}", {
            **callbacks, "abscissa": f"_{item.name}_abscissa", "line": f"_{item.name}_line"})
        blocks.append(spliced)
        blocks.append("\n".join([
            NJIT, f"def {item.name}_curves({signature}):",
            doc.format("lower envelope of lines: O(G) per stage after one sort"), *prologue,
            f"    return {envelope}({problem}, {params})"]))
    else:
        blocks.append("\n".join([
            NJIT, f"def {item.name}_curves({signature}):",
            doc.format("dynamic programming; no line envelope was found"),
            f"    return {item.name}_curves_dp({signature})"]))
    interpolate = p.algorithm("min_plus", "interpolate_grid")
    blocks.append("\n".join(p.header(item, args) + [
        f"    _x, _I = {item.name}_curves({signature})",
        f"    return {interpolate}(_x, _I[_I.shape[0] - 1], {x})",
    ]))
    changed = " or ".join(f"{a}[_i] != {a}[_i - 1]" for a in curve_args) or "False"
    for suffix, decorator, loop in (("_grid", NJIT_PARALLEL, "nb.prange"),
                                    ("_grid_serial", NJIT, "range")):
        blocks.append("\n".join([
            decorator,
            f"def {item.name}{suffix}({', '.join(args)}):",
            f'    """{item.name} at every grid point; one set of curves per run of points '
            f'that differ only in {x}."""',
            f"    _n = {x}.shape[0]",
            "    _new = np.empty(_n, np.bool_)",
            "    for _i in range(_n):",
            f"        _new[_i] = _i == 0 or {changed}",
            "    _first = np.nonzero(_new)[0]",
            "    _runs = _first.shape[0]",
            "    _out = np.empty(_n)",
            f"    for _r in {loop}(_runs):",
            "        _s = _first[_r]",
            "        _e = _first[_r + 1] if _r + 1 < _runs else _n",
            f"        _x, _I = {item.name}_curves({', '.join(f'{a}[_s]' for a in curve_args)})",
            "        _row = _I[_I.shape[0] - 1]",
            "        for _i in range(_s, _e):",
            f"            _out[_i] = {interpolate}(_x, _row, {x}[_i])",
            "    return _out",
        ]))
    return SEPARATOR.join(blocks)
