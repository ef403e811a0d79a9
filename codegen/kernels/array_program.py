"""Kernels of an ``ArrayProgram``: one compiled ``_program_N`` per program (items with the same
constants, arrays, set-up, steps and body share it) and plain-Python kernels around it.

``_program_N(_counts, _points, _wanted, *trajectory)`` allocates the arrays, runs the set-up,
then the body up to each of the sorted step counts ``_counts`` and there computes the outputs
of the wanted items (``finish`` on fresh copies of the arrays it writes, then ``output``) at
that point's arguments ``_points[i]``: a sweep over the steps is one trajectory.
``_program_N_grid(names, columns, n)`` (Python, :func:`codegen.drivers.program_grid`) runs
one trajectory per setting of the trajectory arguments for any items of the program at once;
``name`` and ``name_grid`` (= ``name_grid_serial``) call it.  Items that share a finish share
its code.  A statement that is a product summed over one index is printed as ``np.dot`` of
slices (BLAS).  Arrays that stay zero (:func:`zero_arrays`) are neither allocated nor
written, and their reads print as 0.
"""

from __future__ import annotations

import sympy as sp

from netderive.codegen.expressions import (
    CodegenError,
    NumbaExpressionPrinter,
    print_assignments,
)
from netderive.derivations.ir import (
    ArrayProgram,
    ArrayStatement,
    LargestEigenvalue,
    Statement,
    array_elements,
    canonical,
)

from .printer import NJIT, SEPARATOR, KernelPrinter

#: An array statement that is a product summed over one index becomes ``np.dot`` (BLAS) when
#: the sliced extents multiply to at least this (below it plain loops are as fast).
MATMUL_MIN_WORK = 512


def emit(p: KernelPrinter, item: ArrayProgram, args: tuple[str, ...]) -> str:
    """The shared ``_program_N`` (first item of the program only) and the item's Python
    ``name``, ``name_grid`` and ``name_grid_serial``."""
    for other in p.fs.items:
        if item.name in p.fs.dependencies(other):
            raise CodegenError(f"{other.name} uses the array program {item.name}: array "
                               "programs are called from Python only")
    key = canonical((item.constants, item.arrays, item.setup, item.steps, item.body))
    helper, new = p.shared("_program", key)
    blocks = []
    if new:
        members = [i for i in p.fs.items if isinstance(i, ArrayProgram) and canonical(
            (i.constants, i.arrays, i.setup, i.steps, i.body)) == key]
        blocks.append(program_function(p, helper, members))
    p.shared_grids[item.name] = f"{helper}_grid"
    scalars = "{" + ", ".join(f'"{a}": np.array([float({a})])' for a in args) + "}"
    blocks.append("\n".join([
        f"def {item.name}({', '.join(args)}):",
        p.docstring(item, args),
        f'    return float({helper}_grid(("{item.name}",), {scalars}, 1)["{item.name}"][0])']))
    columns = "{" + ", ".join(f'"{a}": {a}' for a in args) + "}"
    size = f"{args[0]}.shape[0]" if args else "_n"
    blocks.append(p.python_grid(
        item, args, f"{item.name} at every grid point (1-D arrays of equal length): one "
        "trajectory per setting of the other arguments, recorded at every step asked.",
        [f'    return {helper}_grid(("{item.name}",), {columns}, {size})["{item.name}"]']))
    return SEPARATOR.join(blocks)


def program_function(p: KernelPrinter, helper: str, members: list[ArrayProgram]) -> str:
    """``_program_N`` (njit) and ``_program_N_grid`` (Python) of the items ``members``."""
    first = members[0]
    names = p.names()
    shapes = first.shapes()
    arrays = {name: f"_a_{name}" for name in shapes}
    deps = tuple(dict.fromkeys(d for m in members for d in p.fs.dependencies(m)))
    trajectory, trajectory_deps = used_parameters(
        p, [v for st in (*first.setup, *first.body) for v in (st.target, st.value)], deps)
    point = tuple(q.name for q in p.fs.params if q.name not in trajectory and any(
        q.name in p.fs.arguments(m.name) for m in members))
    signature = ", ".join(["_counts", "_points", "_wanted", *trajectory])
    lines = [NJIT, f"def {helper}({signature}):",
             f'    """Set-up of {", ".join(m.name for m in members)}, then the body up to '
             "every count of _counts (sorted), and the wanted outputs there at the point's "
             f'arguments _points[i] = ({", ".join(point)})."""']
    lines += p.dependency_lines(trajectory_deps, "    ")
    for c in first.constants:
        values = ", ".join(repr(float(v)) for v in c.values)
        const = p.constant(f"_K_{helper}_{c.name}", f"_K_{helper}_{c.name} = np.array("
                           f"[{values}], dtype=np.float64).reshape({tuple(c.shape)!r})")
        lines.append(f"    {arrays[c.name]} = {const}")
    zero = zero_arrays(members)
    matrices = {st.matrix for m in members for st in (*m.setup, *m.body, *m.finish)
                if isinstance(st, LargestEigenvalue)}
    for name, shape in first.arrays:
        if name not in zero or name in matrices:
            lines.append(f"    {arrays[name]} = np.zeros({tuple(shape)!r})")
    for st in filter(None, (pruned(st, zero) for st in first.setup)):
        lines += statement_lines(p, st, names, arrays, "    ", shapes)
    lines += [f"    _out = np.full((_counts.shape[0], {len(members)}), np.nan)",
              "    _done = 0",
              "    for _i in range(_counts.shape[0]):",
              "        while _done < _counts[_i]:"]
    users = body_users(members)
    for original, who in zip(first.body, users, strict=True):
        st = pruned(original, zero)
        if st is None:
            continue
        if len(who) == len(members):
            lines += statement_lines(p, st, names, arrays, "            ", shapes)
        elif who:  # needed by some items only (e.g. a running lambda_max): when wanted
            lines.append(f"            if {' or '.join(f'_wanted[{k}]' for k in who)}:")
            lines += statement_lines(p, st, names, arrays, "                ", shapes)
    lines.append("            _done += 1")
    lines += [f"        {a} = _points[_i, {k}]" for k, a in enumerate(point)]
    before = {st.target.func.__name__ for st in (*first.setup, *first.body)}
    finishes: dict[str, list[int]] = {}
    for k, m in enumerate(members):
        finishes.setdefault(canonical(m.finish), []).append(k)
    for b, columns in enumerate(finishes.values()):
        finish = [st for st in (pruned(st, zero) for st in members[columns[0]].finish) if st]
        wanted = " or ".join(f"_wanted[{k}]" for k in columns)
        lines.append(f"        if {wanted}:")
        # fresh arrays for what the finish writes: the trajectory goes on after it
        local = dict(arrays)
        for name in dict.fromkeys(st.target.func.__name__ for st in finish):
            local[name] = f"_f{b}_{name}"
            fresh = f"{arrays[name]}.copy()" if name in before else \
                f"np.zeros({shapes[name]!r})"
            lines.append(f"            {local[name]} = {fresh}")
        used = [m.output for m in members] + [v for st in finish for v in (st.target, st.value)]
        lines += p.dependency_lines(p.dependencies_in(used, deps), "            ")
        for st in finish:
            lines += statement_lines(p, st, names, local, "            ", shapes)
        for k in columns:
            temps, (value,) = print_assignments([without_zero_reads(members[k].output, zero)],
                                                names, "                ", "_o", local)
            lines += [f"            if _wanted[{k}]:", *temps,
                      f"                _out[_i, {k}] = {value}"]
    lines.append("    return _out")
    steps = (f'"{first.steps.name}"' if isinstance(first.steps, sp.Symbol)
             else str(int(first.steps)))
    program_grid = p.use("drivers", "program_grid")
    grid = "\n".join([
        f"def {helper}_grid(_names, _columns, _n):",
        f'    """The items _names of {helper} at _n points (_columns: argument -> 1-D array);'
        ' one trajectory per setting of its trajectory arguments."""',
        f"    return {program_grid}({helper}, {tuple(m.name for m in members)!r}, "
        f"{point!r}, {trajectory!r}, {steps}, _names, _columns, _n)"])
    return "\n".join(lines) + SEPARATOR + grid


def used_parameters(p: KernelPrinter, exprs: list, deps: tuple[str, ...]
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Parameters (in parameter order) and items of ``deps`` that ``exprs`` use."""
    used = {s.name for v in exprs for s in sp.sympify(v).free_symbols}
    items = p.dependencies_in([sp.Symbol(n) for n in used], deps)
    for d in items:
        used.update(p.fs.arguments(d))
    return tuple(q.name for q in p.fs.params if q.name in used), items


def statement_lines(p: KernelPrinter, st: Statement, names: dict[str, str],
                    arrays: dict[str, str], indent: str,
                    shapes: dict[str, tuple[int, ...]] | None = None) -> list[str]:
    """One statement as loops (or ``np.dot`` of slices, or a largest-eigenvalue call)."""
    if isinstance(st, LargestEigenvalue):
        eigenvalue = p.algorithm("eigenvalue", "largest_symmetric_eigenvalue")
        target = NumbaExpressionPrinter(names, arrays).array_element(st.target)
        return [f"{indent}{target} = {eigenvalue}({arrays[st.matrix]}, {st.size})"]
    loops = {s.name: f"_i_{s.name}" for s, _ in st.loops}
    local = {**names, **loops}
    integers = frozenset(loops)
    if shapes is not None:
        product = product_lines(st, local, arrays, integers, indent, shapes)
        if product is not None:
            return product
    lines = []
    for depth, (s, extent) in enumerate(st.loops):
        lines.append(f"{indent}{'    ' * depth}for {loops[s.name]} in range({extent}):")
    inner = indent + "    " * len(st.loops)
    temps, (value,) = print_assignments([st.value], local, inner, "_t", arrays, integers)
    target = NumbaExpressionPrinter(local, arrays, integers).array_element(st.target)
    op = "+=" if st.accumulate else "="
    return lines + temps + [f"{inner}{target} {op} {value}"]


def product_lines(st: ArrayStatement, local: dict[str, str], arrays: dict[str, str],
                  integers: frozenset[str], indent: str,
                  shapes: dict[str, tuple[int, ...]]) -> list[str] | None:
    """``T[..] += c * A[..] * B[..]`` summed over one index r, as ``np.dot`` of 2-D or
    1-D slices (BLAS) inside loops over the remaining indices; None when the statement
    is not of that form or too small (then plain loops are emitted).

    The sliced indices are r and the target's last index found only in A (i) and only
    in B (j); every other index is fixed by an outer loop (or is an expression).  A's
    sliced axes are (i, r), (r, i) or (r,), B's (r, j), (j, r) or (r,), the target's
    (i, j), (i,), (j,) or none; each sliced axis covers its array's whole dimension, and
    the target is not an operand."""
    if not st.accumulate:
        return None
    value = sp.sympify(st.value)
    factors = sp.Mul.make_args(value)
    elements = [f for f in factors if isinstance(f, sp.core.function.AppliedUndef)]
    coeff = sp.Mul(*[f for f in factors if f not in elements])
    extents = {s: n for s, n in st.loops}
    if len(elements) != 2 or elements[0] == elements[1] or (
            coeff.free_symbols & set(extents)) or coeff.atoms(sp.core.function.AppliedUndef):
        return None
    if st.target.func in {e.func for e in elements}:
        return None  # reads its own target: the loops' order of updates matters
    target = st.target
    syms = {e: [x for x in e.args if x.is_Symbol and x in extents] for e in (*elements, target)}
    in_target = set(syms[target])
    for a, b in (elements, elements[::-1]):
        shared = [s for s in syms[a] if s in syms[b] and s not in in_target]
        for r in sorted(shared, key=lambda s: -extents[s]):  # contract the longest index
            # i, j: the target's last index found only in A, only in B; the rest loop
            i = [x for x in syms[a] if x in in_target and x not in syms[b]][-1:]
            j = [x for x in syms[b] if x in in_target and x not in syms[a]][-1:]
            sliced = {r, *i, *j}
            if any(sum(1 for x in e.args if x == s) > 1
                   for e in (a, b, target) for s in sliced):
                continue
            axes = {e: [x for x in e.args if x in sliced] for e in (a, b, target)}
            if axes[target] != i + j or sorted(axes[a], key=str) != sorted(
                    [r, *i], key=str) or sorted(axes[b], key=str) != sorted([r, *j], key=str):
                continue
            if any(shapes[e.func.__name__][k] != extents[x]
                   for e in (a, b, target) for k, x in enumerate(e.args) if x in sliced):
                continue
            work = 1
            for s in sliced:
                work *= extents[s]
            if work < MATMUL_MIN_WORK:
                return None
            return dot_lines(st, a, b, coeff, sliced, axes, r, local, arrays, integers, indent)
    return None


def dot_lines(st: ArrayStatement, a: sp.Expr, b: sp.Expr, coeff: sp.Expr, sliced: set,
              axes: dict, r: sp.Symbol, local: dict[str, str], arrays: dict[str, str],
              integers: frozenset[str], indent: str) -> list[str]:
    """The lines of :func:`product_lines`: outer loops, then ``T[..] += c * np.dot(A, B)``."""
    outer = [(s, n) for s, n in st.loops if s not in sliced]
    printer = NumbaExpressionPrinter(local, arrays, integers)

    def view(e: sp.Expr, transpose: bool) -> str:
        idx = ", ".join(":" if x in sliced else printer._index(x) for x in e.args)
        text = f"{arrays[e.func.__name__]}[{idx}]"
        return f"np.ascontiguousarray({text}{'.T' if transpose else ''})"

    left = view(a, len(axes[a]) == 2 and axes[a][0] == r)
    right = view(b, len(axes[b]) == 2 and axes[b][1] == r)
    lines = [f"{indent}{'    ' * d}for {local[s.name]} in range({n}):"
             for d, (s, n) in enumerate(outer)]
    inner = indent + "    " * len(outer)
    temps, (c,) = print_assignments([coeff], local, inner, "_c", arrays, integers)
    tidx = ", ".join(":" if x in sliced else printer._index(x) for x in st.target.args)
    scale = "" if coeff == 1 else f"({c}) * "
    return lines + temps + [f"{inner}{arrays[st.target.func.__name__]}[{tidx}] += "
                            f"{scale}np.dot({left}, {right})"]


def zero_arrays(members: list[ArrayProgram]) -> frozenset[str]:
    """The work arrays that stay zero whatever the parameters: every statement that writes
    one (set-up, body, any member's finish) writes 0 once the arrays of this set read as 0
    (the largest such set: the arrays start at zero, so by induction over the statements
    they stay there).  For ReLU units the second derivatives of the activation vanish, and
    with them whole 4-index arrays; their loops are not printed."""
    first = members[0]
    statements = [*first.setup, *first.body, *(st for m in members for st in m.finish)]
    zero = {name for name, _ in first.arrays}
    changed = True
    while changed:
        changed = False
        for st in statements:
            target = st.target.func.__name__
            if target in zero and (isinstance(st, LargestEigenvalue)
                                   or without_zero_reads(st.value, zero) != 0):
                zero.discard(target)
                changed = True
    return frozenset(zero)


def without_zero_reads(expr: sp.Expr, zero: frozenset[str] | set[str]) -> sp.Expr:
    """``expr`` with the elements of the arrays ``zero`` replaced by 0 (and simplified by
    sympy's automatic evaluation: 0 * x = 0, x + 0 = x)."""
    reads = {e: sp.Integer(0) for e in array_elements(expr) if e.func.__name__ in zero}
    return sp.sympify(expr).xreplace(reads) if reads else expr


def pruned(st: Statement, zero: frozenset[str]) -> Statement | None:
    """The statement without its reads of zero arrays; None when it does nothing (it writes a
    zero array, or adds 0)."""
    if st.target.func.__name__ in zero:
        return None
    if isinstance(st, LargestEigenvalue):
        return st
    value = without_zero_reads(st.value, zero)
    if value == 0 and st.accumulate:
        return None
    if value is st.value:
        return st
    return ArrayStatement(st.target, value, st.loops, st.accumulate, st.meaning)


def arrays_read(st: Statement) -> set[str]:
    """Names of the arrays a statement reads (its value's elements; lambda_max its matrix)."""
    if isinstance(st, LargestEigenvalue):
        return {st.matrix}
    return {e.func.__name__ for e in array_elements(st.value)}


def body_users(members: list[ArrayProgram]) -> list[list[int]]:
    """For every body statement of the shared program, the members (by position) whose
    output needs it: it writes an array that the member's finish or output reads, or that a
    body statement it needs reads (a fixed point: the body repeats)."""
    body = members[0].body
    users: list[list[int]] = [[] for _ in body]
    for k, member in enumerate(members):
        needed = {e.func.__name__ for e in array_elements(member.output)}
        for st in member.finish:
            needed |= arrays_read(st) | {st.target.func.__name__}
        grown = True
        while grown:
            grown = False
            for st in body:
                if st.target.func.__name__ in needed and not arrays_read(st) <= needed:
                    needed |= arrays_read(st)
                    grown = True
        for j, st in enumerate(body):
            if st.target.func.__name__ in needed:
                users[j].append(k)
    return users
