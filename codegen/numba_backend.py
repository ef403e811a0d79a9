"""Print any FormulaSet as a Python module of ``@njit(cache=True)`` kernels.

For every item ``name`` the module has

- ``name(*args)``: a scalar kernel (arguments: the parameters it needs, in the order of
  ``KERNEL_ARGUMENTS[name]``);
- ``name_grid(*arrays)``: the same over 1-D float arrays of equal length, ``prange``
  over both cores;
- ``name_grid_serial(*arrays)``: the same on one core (faster for small grids, or when
  both cores are busy);
- for a Recurrence also ``name_trajectory(*args)``: the states ``s_0..s_K`` as rows;
- for a MinPlusRecursion also ``name_curves(*args_but_variable)``: the grid and the rows
  ``I_1..I_K`` on it, and ``name_curves_dp`` (the plain ``O(G^2)`` dynamic programming,
  also when the item has a line envelope).  Its ``_grid`` kernels compute one set of
  curves per run of consecutive points that share every argument but the variable;
- for an ArrayProgram, ``name``, ``name_grid`` and ``name_grid_serial`` are plain Python
  around two compiled pieces (see ``KernelPrinter._emit_ArrayProgram``);
- for a PathSaddle also ``name_path(*args)``: the stationary path, one row
  ``(theta_l, m_l)`` per stage, and a last row holding ``(lambda, S, g(m_K))``.

Earlier items are called, never inlined; recurrences are loops; roots are a scan plus
safeguarded Newton-bisection; Gauss-Hermite tables are module constants.
"""

from __future__ import annotations

import keyword

import numba
import numpy as np
import sympy as sp

from netderive.derivations.ir import (
    ArrayProgram,
    ArrayStatement,
    Expectation,
    Formula,
    FormulaSet,
    Item,
    LargestEigenvalue,
    MinPlusRecursion,
    PathSaddle,
    Recurrence,
    Root,
    Statement,
    array_elements,
    canonical,
)

from .cache import GENERATOR_VERSION
from .expressions import CodegenError, NumbaExpressionPrinter, print_assignments

#: Names a parameter or item may not take in generated code.
RESERVED = frozenset({"math", "nb", "np", "numba", "numpy", "CONTENT_HASH", "SPEC_HASH",
                      "KERNEL_ARGUMENTS", "QUANTITIES"})

#: numpy's error model: a division by zero gives inf/nan (the root scan skips those) instead of
#: raising inside a kernel; measured ~15% faster on the b* scan.
NJIT = '@nb.njit(cache=True, error_model="numpy")'
NJIT_PARALLEL = '@nb.njit(cache=True, parallel=True, error_model="numpy")'

ROOT_TOLERANCE = 1e-14
#: The O(G^2) dynamic programming tabulates J once when G <= this (a G x G matrix of
#: doubles: 128 MiB at 4096), else it evaluates J afresh in every stage.
DP_MATRIX_LIMIT = 4096
#: An array statement that is a product summed over one index becomes ``np.dot`` (BLAS) when
#: the sliced extents multiply to at least this (below it plain loops are as fast).
MATMUL_MIN_WORK = 512
ROOT_MAX_ITERATIONS = 200
#: Newton on the saddle-point system of a PathSaddle: iterations per continuation step, the
#: tolerance on the largest component of the gradient of the Lagrangian, and the smallest
#: continuation step (as a fraction of the way) before it gives up with NaN.
SADDLE_MAX_ITERATIONS = 60
SADDLE_TOLERANCE = 1e-11
SADDLE_MIN_STEP = 1e-5
#: In tilt mode a continuation step this small (times 1/continuation) means a fold of the
#: Legendre map (I_L not convex there): past it the branch would jump, so the SCGF is NaN.
SADDLE_FOLD_STEP = 1.0 / 64
#: A continuation step is refused when Newton's correction exceeds this fraction of the
#: Euler predictor's step (the branch turned or jumped; smaller steps follow it).
SADDLE_CORRECTOR_RATIO = 0.5


def _local(name: str) -> str:
    """Local variable holding the value of item ``name`` inside another kernel."""
    return f"_v_{name}"


class KernelPrinter:
    """Turns a FormulaSet into module source; one ``_emit_<Kind>`` per IR item kind."""

    def __init__(self, fs: FormulaSet) -> None:
        self.fs = fs
        self._gauss_hermite_orders: set[int] = set()
        self._needs_interpolation = False
        self._needs_band_solver = False
        self._saddle_helpers: dict[tuple, str] = {}
        self._array_constants: list[str] = []
        self._array_helpers: dict[str, str] = {}
        self._needs_program_grid = False
        self._needs_eigenvalue = False
        generated = {f"{i.name}{s}" for i in fs.items
                     for s in ("_grid", "_grid_serial", "_trajectory", "_curves", "_curves_dp",
                               "_path")}
        for name in [p.name for p in fs.params] + [i.name for i in fs.items]:
            if name in RESERVED or keyword.iskeyword(name):
                raise CodegenError(f"{fs.name}: name {name!r} is reserved in generated code")
            if name in generated:
                raise CodegenError(f"{fs.name}: name {name!r} is also a generated kernel name")

    # -- shared pieces -------------------------------------------------------------
    def names(self, item: Item) -> dict[str, str]:
        """Symbol name -> local variable: item symbols get ``_v_`` prefixes."""
        return {i.name: _local(i.name) for i in self.fs.items}

    @staticmethod
    def dependencies_in(exprs, deps: tuple[str, ...]) -> tuple[str, ...]:
        """The items of ``deps`` that ``exprs`` use, in definition order."""
        found = {s.name for e in exprs for s in sp.sympify(e).free_symbols}
        return tuple(d for d in deps if d in found)

    def dependency_lines(self, deps: tuple[str, ...], indent: str) -> list[str]:
        lines = []
        for dep in deps:
            args = ", ".join(self.fs.arguments(dep))
            lines.append(f"{indent}{_local(dep)} = {dep}({args})")
        return lines

    def header(self, item: Item, args: tuple[str, ...]) -> list[str]:
        doc = f"{item.meaning}\n\n    Reference: {item.ref}\n    Arguments: ({', '.join(args)})"
        return [NJIT, f"def {item.name}({', '.join(args)}):",
                f'    """{doc}"""']

    def grid_kernels(self, item: Item, args: tuple[str, ...]) -> str:
        out = []
        for suffix, decorator, loop in (
            ("_grid", NJIT_PARALLEL, "nb.prange"),
            ("_grid_serial", NJIT, "range"),
        ):
            if args:
                call = ", ".join(f"{a}[_i]" for a in args)
                signature = ", ".join(args)
                size = f"{args[0]}.shape[0]"
            else:
                call, signature, size = "", "_n", "_n"
            out.append("\n".join([
                decorator,
                f"def {item.name}{suffix}({signature}):",
                f'    """{item.name} at every grid point (1-D arrays of equal length)."""',
                f"    _out = np.empty({size})",
                f"    for _i in {loop}({size}):",
                f"        _out[_i] = {item.name}({call})",
                "    return _out",
            ]))
        return "\n\n\n".join(out)

    # -- dispatch ------------------------------------------------------------------
    def emit(self, item: Item) -> str:
        meth = getattr(self, f"_emit_{type(item).__name__}", None)
        if meth is None:
            raise CodegenError(f"{type(self).__name__} has no rule for {type(item).__name__}")
        args = self.fs.arguments(item.name)
        if isinstance(item, MinPlusRecursion | ArrayProgram | PathSaddle):
            return meth(item, args)
        return meth(item, args) + "\n\n\n" + self.grid_kernels(item, args)

    def _emit_Formula(self, item: Formula, args: tuple[str, ...]) -> str:
        lines = self.header(item, args)
        lines += self.dependency_lines(self.fs.dependencies(item), "    ")
        temps, (value,) = print_assignments([item.expr], self.names(item), "    ")
        return "\n".join(lines + temps + [f"    return {value}"])

    def _emit_Recurrence(self, item: Recurrence, args: tuple[str, ...]) -> str:
        names = self.names(item)
        for s in item.bound_symbols():
            if s.name in names:
                raise CodegenError(f"recurrence {item.name}: state {s.name} shadows an item")
        state = [s.name for s in item.state]
        k = item.index.name if item.index is not None else "_k"
        # dependencies that take a state (or the index) as their parameter: evaluated anew at
        # every step, and after the loop for the output
        moving_names = {s.name for s in item.bound_symbols()}
        all_deps = self.fs.dependencies(item)
        moving = tuple(d for d in all_deps if set(self.fs.arguments(d)) & moving_names)
        fixed = tuple(d for d in all_deps if d not in moving)

        if self.dependencies_in([*item.init, item.steps], moving):
            raise CodegenError(f"recurrence {item.name}: its initial state or number of steps "
                               "uses an item that depends on the state")
        out_moving = self.dependencies_in([item.output], moving)
        if item.index is not None and any(
                item.index.name in self.fs.arguments(d) for d in out_moving):
            raise CodegenError(f"recurrence {item.name}: its output uses an item that depends "
                               "on the step index")
        deps = self.dependency_lines(fixed, "    ")
        init_temps, init_vals = print_assignments(item.init, names, "    ", "_i")
        step_temps, step_vals = print_assignments(item.step, names, "        ", "_s")
        out_temps, (out_val,) = print_assignments([item.output], names, "    ", "_o")
        body = [*deps, *init_temps]
        body += [f"    {s} = {v}" for s, v in zip(state, init_vals, strict=True)]
        steps = NumbaExpressionPrinter(names).doprint(item.steps)
        loop = [f"    for {k}_int in range(int({steps})):",
                f"        {k} = float({k}_int)",
                *self.dependency_lines(self.dependencies_in(item.step, moving), "        "),
                *step_temps]
        loop += [f"        _n{j} = {v}" for j, v in enumerate(step_vals)]
        loop += [f"        {s} = _n{j}" for j, s in enumerate(state)]
        final = (self.header(item, args) + body + loop
                 + self.dependency_lines(out_moving, "    ") + out_temps
                 + [f"    return {out_val}"])
        traj_lines = [
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
        return "\n".join(final) + "\n\n\n" + "\n".join(traj_lines)

    def _emit_Root(self, item: Root, args: tuple[str, ...]) -> str:
        names = self.names(item)
        x = item.variable.name
        if x in names:
            raise CodegenError(f"root {item.name}: variable {x} shadows an item")
        helper_args = ", ".join([x, *args])
        deps = self.fs.dependencies(item)

        # each helper evaluates the dependencies it uses, at the current iterate
        g_temps, (g_val, dg_val) = print_assignments(
            [item.equation, item.derivative], names, "    ")
        blocks = ["\n".join([
            NJIT,
            f"def _{item.name}_equation({helper_args}):",
            *self.dependency_lines(
                self.dependencies_in([item.equation, item.derivative], deps), "    "),
            *g_temps,
            f"    return {g_val}, {dg_val}",
        ])]
        if item.objective is not None:
            o_temps, (o_val,) = print_assignments([item.objective], names, "    ")
            blocks.append("\n".join([
                NJIT,
                f"def _{item.name}_objective({helper_args}):",
                *self.dependency_lines(self.dependencies_in([item.objective], deps), "    "),
                *o_temps,
                f"    return {o_val}",
            ]))
        blocks.append("\n".join([
            NJIT,
            f"def _{item.name}_refine({', '.join(['_a', '_b', '_ga', *args])}):",
            '    """Safeguarded Newton-bisection inside a sign-change bracket [_a, _b]."""',
            "    _x = 0.5 * (_a + _b)",
            f"    for _ in range({ROOT_MAX_ITERATIONS}):",
            f"        _g, _dg = _{item.name}_equation({', '.join(['_x', *args])})",
            "        if _g == 0.0:",
            "            return _x",
            "        if (_g < 0.0) == (_ga < 0.0):",
            "            _a, _ga = _x, _g",
            "        else:",
            "            _b = _x",
            "        _xn = _x - _g / _dg if _dg != 0.0 else 0.5 * (_a + _b)",
            "        if not (_a < _xn < _b) or not math.isfinite(_xn):",
            "            _xn = 0.5 * (_a + _b)",
            f"        if abs(_xn - _x) <= {ROOT_TOLERANCE!r} * (1.0 + abs(_x)) "
            f"or _b - _a <= {ROOT_TOLERANCE!r} * (1.0 + abs(_x)):",
            "            return _xn",
            "        _x = _xn",
            "    return _x",
        ]))
        bracket_exprs = [*item.bracket, item.fallback, *item.candidates]
        fixed = self.dependencies_in(bracket_exprs, deps)
        if any(x in self.fs.arguments(d) for d in fixed) or any(
            sym.name == x for e in bracket_exprs for sym in sp.sympify(e).free_symbols
        ):
            raise CodegenError(f"root {item.name}: bracket or candidates depend on {x}")
        b_temps, b_vals = print_assignments(bracket_exprs, names, "    ", "_b")
        lo, hi, fallback, *cands = b_vals
        call = ", ".join(args)
        more = ", " + call if call else ""
        body = [*self.dependency_lines(fixed, "    "), *b_temps,
                f"    _lo = {lo}", f"    _hi = {hi}", f"    _best = {fallback}",
                "    _best_objective = math.inf"]
        for c in cands:
            body += [f"    _o = _{item.name}_objective({c}{more})",
                     "    if _o < _best_objective:",
                     f"        _best, _best_objective = {c}, _o"]
        accept = {
            "first": ["            return _r"],
            "last": ["            _best = _r"],
            "min_objective": [
                f"            _o = _{item.name}_objective(_r{more})",
                "            if _o < _best_objective:",
                "                _best, _best_objective = _r, _o",
            ],
        }[item.select]
        body += [
            f"    _n = {int(item.scan_points)}",
            "    _xa = _lo",
            f"    _ga, _ = _{item.name}_equation(_xa{more})",
            "    for _j in range(1, _n + 1):",
            "        _xb = _lo + (_hi - _lo) * _j / _n",
            f"        _gb, _ = _{item.name}_equation(_xb{more})",
            "        _r = math.nan",
            "        if _ga == 0.0:",
            "            _r = _xa",
            "        elif ((_ga < 0.0) != (_gb < 0.0) and math.isfinite(_ga)",
            "              and math.isfinite(_gb)):",
            f"            _r = _{item.name}_refine(_xa, _xb, _ga{more})",
            "        if not math.isnan(_r):",
            *accept,
            "        _xa, _ga = _xb, _gb",
            "    if _ga == 0.0:",
            "        _r = _xa",
            *[line[4:] for line in accept],
            "    return _best",
        ]
        blocks.append("\n".join(self.header(item, args) + body))
        return "\n\n\n".join(blocks)

    def _emit_Expectation(self, item: Expectation, args: tuple[str, ...]) -> str:
        names = self.names(item)
        lines = self.header(item, args) + self.dependency_lines(self.fs.dependencies(item), "    ")
        if item.quadrature_order is None:
            temps, (value,) = print_assignments([item.closed_form], names, "    ")
            return "\n".join(lines + temps + [f"    return {value}"])
        order = item.quadrature_order
        in_use = {p.name for p in self.fs.params} | set(names)
        for z in item.variables:
            if z.name in in_use:
                raise CodegenError(f"expectation {item.name}: variable {z.name} shadows a name "
                                   "in use")
        self._gauss_hermite_orders.add(order)
        depth = len(item.variables)
        lines.append("    _acc = 0.0")
        for level, z in enumerate(item.variables):
            ind = "    " * (level + 1)
            lines += [f"{ind}for _j{level} in range({order}):",
                      f"{ind}    {z.name} = _GH_NODES_{order}[_j{level}]",
                      f"{ind}    _w{level} = _GH_WEIGHTS_{order}[_j{level}]"]
        inner = "    " * (depth + 1)
        temps, (value,) = print_assignments([item.integrand], names, inner, "_q")
        weight = " * ".join(f"_w{level}" for level in range(depth))
        lines += temps + [f"{inner}_acc += {weight} * ({value})", "    return _acc"]
        return "\n".join(lines)

    def _emit_MinPlusRecursion(self, item: MinPlusRecursion, args: tuple[str, ...]) -> str:
        names = self.names(item)
        x, xp = item.variable.name, item.previous.name
        k = item.index.name if item.index is not None else None
        if x not in args:
            raise CodegenError(f"min-plus recursion {item.name}: the step rate does not use "
                               f"{x}")
        for s in (xp, k):
            if s is not None and s in names:
                raise CodegenError(f"min-plus recursion {item.name}: {s} shadows an item")
        curve_args = tuple(a for a in args if a != x)
        more = "".join(f", {a}" for a in curve_args)
        deps = self.fs.dependencies(item)

        rate_params = [x, xp, *([k] if k else [])]
        blocks = []
        r_temps, (r_val,) = print_assignments([item.step_rate], names, "    ")
        blocks.append("\n".join([
            NJIT,
            f"def _{item.name}_rate({', '.join([*rate_params, *curve_args])}):",
            f'    """One-stage rate J({x} | {xp}); NaN counts as +inf."""',
            *self.dependency_lines(self.dependencies_in([item.step_rate], deps), "    "),
            *r_temps,
            f"    _v = {r_val}",
            "    return _v if _v == _v else math.inf",
        ]))
        stage = ", 1.0" if k else ""

        def rate_call(a: str, b: str, stage_value: str) -> str:
            return f"_{item.name}_rate({a}, {b}{stage_value if k else ''}{more})"

        fixed_exprs = [item.lower, item.upper, item.start, item.steps, item.grid_size]
        fixed = self.dependencies_in(fixed_exprs, deps)
        bound = {xp, *([k] if k else [])} | {x}
        if any(set(self.fs.arguments(d)) & bound for d in fixed) or any(
            sym.name in bound for e in fixed_exprs for sym in sp.sympify(e).free_symbols
        ):
            raise CodegenError(f"min-plus recursion {item.name}: the grid, start or number of "
                               f"stages depend on {x}, {xp} or the stage")
        f_temps, (lo, hi, x0, steps, size) = print_assignments(fixed_exprs, names, "    ", "_f")
        prologue = [
            *self.dependency_lines(fixed, "    "),
            *f_temps,
            f"    _K = max(int({steps}), 1)",
            f"    _G = max(int({size}), 2)",
            f"    _x = np.linspace({lo}, {hi}, _G)",
            f"    _x0 = {x0}",
            "    _I = np.empty((_K, _G))",
            "    for _i in range(_G):",
            f"        _I[0, _i] = {rate_call('_x[_i]', '_x0', stage)}",
        ]
        doc = (f'    """Grid and rows I_1..I_K of {item.name} ({{}}).\n\n    Reference: '
               f'{item.ref}\n    Arguments: ({", ".join(curve_args)})"""')
        stage_k = ", float(_k + 1)"
        if k is None:
            dp_rows = [
                f"    _tabulate = _G <= {DP_MATRIX_LIMIT}",
                "    _J = np.empty((_G if _tabulate else 0, _G if _tabulate else 0))",
                "    if _tabulate:",
                "        for _i in range(_G):",
                "            for _j in range(_G):",
                f"                _J[_i, _j] = {rate_call('_x[_i]', '_x[_j]', '')}",
                "    for _k in range(1, _K):",
                "        _last = _I[_k - 1]",
                "        for _i in range(_G):",
                "            _best = math.inf",
                "            if _tabulate:",
                "                _row = _J[_i]",
                "                for _j in range(_G):  # branch-free: inf + J = inf",
                "                    _best = min(_best, _last[_j] + _row[_j])",
                "            else:",
                "                for _j in range(_G):",
                "                    if _last[_j] < math.inf:",
                f"                        _best = min(_best, _last[_j] + "
                f"{rate_call('_x[_i]', '_x[_j]', '')})",
                "            _I[_k, _i] = _best",
            ]
        else:
            dp_rows = [
                "    for _k in range(1, _K):",
                "        for _i in range(_G):",
                "            _best = math.inf",
                "            for _j in range(_G):",
                "                _prev = _I[_k - 1, _j]",
                "                if _prev == math.inf:",
                "                    continue",
                f"                _v = _prev + {rate_call('_x[_i]', '_x[_j]', stage_k)}",
                "                if _v < _best:",
                "                    _best = _v",
                "            _I[_k, _i] = _best",
            ]
        blocks.append("\n".join([
            NJIT,
            f"def {item.name}_curves_dp({', '.join(curve_args)}):",
            doc.format("plain O(G^2) dynamic programming per stage"),
            *prologue, *dp_rows, "    return _x, _I",
        ]))
        if item.envelope is not None:
            offset, abscissa, slope, intercept = item.envelope
            a_temps, (a_off, a_abs) = print_assignments([offset, abscissa], names, "    ")
            l_temps, (l_slope, l_icpt) = print_assignments([slope, intercept], names, "    ")
            blocks.append("\n".join([
                NJIT,
                f"def _{item.name}_abscissa({', '.join([x, *curve_args])}):",
                '    """Offset A(x) and abscissa X(x) of the line envelope."""',
                *self.dependency_lines(self.dependencies_in([offset, abscissa], deps), "    "),
                *a_temps,
                f"    return {a_off}, {a_abs}",
            ]))
            blocks.append("\n".join([
                NJIT,
                f"def _{item.name}_line({', '.join([xp, *curve_args])}):",
                '    """Slope m(x\') and intercept c(x\') of the line of the old state x\'."""',
                *self.dependency_lines(self.dependencies_in([slope, intercept], deps), "    "),
                *l_temps,
                f"    return {l_slope}, {l_icpt}",
            ]))
            blocks.append("\n".join([
                NJIT,
                f"def {item.name}_curves({', '.join(curve_args)}):",
                doc.format("lower envelope of lines: O(G) per stage after one sort"),
                *prologue,
                "    _A = np.empty(_G)",
                "    _X = np.empty(_G)",
                "    _m = np.empty(_G)",
                "    _c = np.empty(_G)",
                "    for _i in range(_G):",
                f"        _A[_i], _X[_i] = _{item.name}_abscissa(_x[_i]{more})",
                f"        _m[_i], _c[_i] = _{item.name}_line(_x[_i]{more})",
                "    _lines = np.argsort(-_m)  # slopes descending (NaN last)",
                "    _queries = np.argsort(_X)  # abscissae ascending",
                "    _hm = np.empty(_G)",
                "    _hb = np.empty(_G)",
                "    for _k in range(1, _K):",
                "        _h = 0",
                "        for _t in range(_G):",
                "            _j = _lines[_t]",
                "            _s = _m[_j]",
                "            _b = _c[_j] + _I[_k - 1, _j]",
                "            if not (math.isfinite(_s) and math.isfinite(_b)):",
                "                continue",
                "            if _h > 0 and _hm[_h - 1] == _s:",
                "                if _b >= _hb[_h - 1]:",
                "                    continue",
                "                _h -= 1",
                "            while _h >= 2 and ((_b - _hb[_h - 2]) * (_hm[_h - 2] - _hm[_h - 1])"
                " <= (_hb[_h - 1] - _hb[_h - 2]) * (_hm[_h - 2] - _s)):",
                "                _h -= 1",
                "            _hm[_h] = _s",
                "            _hb[_h] = _b",
                "            _h += 1",
                "        _p = 0",
                "        for _t in range(_G):",
                "            _i = _queries[_t]",
                "            _xi = _X[_i]",
                "            if _h == 0 or not math.isfinite(_xi):",
                "                _I[_k, _i] = math.inf",
                "                continue",
                "            while _p + 1 < _h and (_hm[_p + 1] * _xi + _hb[_p + 1]",
                "                                   <= _hm[_p] * _xi + _hb[_p]):",
                "                _p += 1",
                "            _v = _A[_i] + _hm[_p] * _xi + _hb[_p]",
                "            _I[_k, _i] = _v if _v == _v else math.inf",
                "    return _x, _I",
            ]))
        else:
            blocks.append("\n".join([
                NJIT,
                f"def {item.name}_curves({', '.join(curve_args)}):",
                doc.format("dynamic programming; no line envelope was found"),
                f"    return {item.name}_curves_dp({', '.join(curve_args)})",
            ]))
        self._needs_interpolation = True
        blocks.append("\n".join(self.header(item, args) + [
            f"    _x, _I = {item.name}_curves({', '.join(curve_args)})",
            f"    return _interpolate_grid(_x, _I[_I.shape[0] - 1], {x})",
        ]))
        for suffix, decorator, loop in (
            ("_grid", NJIT_PARALLEL, "nb.prange"),
            ("_grid_serial", NJIT, "range"),
        ):
            changed = " or ".join(f"{a}[_i] != {a}[_i - 1]" for a in curve_args) or "False"
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
                f"            _out[_i] = _interpolate_grid(_x, _row, {x}[_i])",
                "    return _out",
            ]))
        return "\n\n\n".join(blocks)

    def _statement_lines(self, st: Statement, names: dict[str, str],
                         arrays: dict[str, str], indent: str,
                         shapes: dict[str, tuple[int, ...]] | None = None) -> list[str]:
        if isinstance(st, LargestEigenvalue):
            self._needs_eigenvalue = True
            target = NumbaExpressionPrinter(names, arrays).array_element(st.target)
            return [f"{indent}{target} = largest_symmetric_eigenvalue({arrays[st.matrix]}, "
                    f"{st.size})"]
        loops = {s.name: f"_i_{s.name}" for s, _ in st.loops}
        local = {**names, **loops}
        integers = frozenset(loops)
        if shapes is not None:
            product = self._product_lines(st, local, arrays, integers, indent, shapes)
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

    @staticmethod
    def _product_lines(st: ArrayStatement, local: dict[str, str], arrays: dict[str, str],
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
        syms = {e: [x for x in e.args if x.is_Symbol and x in extents]
                for e in (*elements, target)}
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
                return KernelPrinter._dot_lines(st, a, b, coeff, sliced, axes, r, local,
                                                arrays, integers, indent)
        return None

    @staticmethod
    def _dot_lines(st: ArrayStatement, a: sp.Expr, b: sp.Expr, coeff: sp.Expr, sliced: set,
                   axes: dict, r: sp.Symbol, local: dict[str, str], arrays: dict[str, str],
                   integers: frozenset[str], indent: str) -> list[str]:
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

    def _emit_ArrayProgram(self, item: ArrayProgram, args: tuple[str, ...]) -> str:
        """One compiled ``_program_N`` per program (items with the same constants, arrays,
        set-up, steps and body share it) and plain-Python kernels per item around it.

        ``_program_N(_counts, _points, _wanted, *trajectory)`` allocates the arrays, runs the
        set-up, then the body up to each of the sorted step counts ``_counts`` and there
        computes the outputs of the wanted items (``finish`` on fresh copies of the arrays it
        writes, then ``output``) at that point's arguments ``_points[i]``: a sweep over the
        steps is one trajectory.  ``_program_N_grid(names, columns)`` (Python,
        :func:`codegen.drivers.program_grid`) runs one trajectory per setting of the
        trajectory arguments for any items of the program at once; ``name``, ``name_grid``
        and ``name_grid_serial`` call it.  Items that share a finish share its code.
        """
        for other in self.fs.items:
            if item.name in self.fs.dependencies(other):
                raise CodegenError(f"{other.name} uses the array program {item.name}: array "
                                   "programs are called from Python only")
        key = canonical((item.constants, item.arrays, item.setup, item.steps, item.body))
        blocks = []
        if key not in self._array_helpers:
            helper = f"_program_{len(self._array_helpers)}"
            members = [i for i in self.fs.items if isinstance(i, ArrayProgram) and canonical(
                (i.constants, i.arrays, i.setup, i.steps, i.body)) == key]
            self._array_helpers[key] = helper
            blocks.append(self._program_function(helper, members))
        helper = self._array_helpers[key]
        self._needs_program_grid = True
        doc = f"{item.meaning}\n\n    Reference: {item.ref}\n    Arguments: ({', '.join(args)})"
        columns = "{" + ", ".join(f'"{a}": {a}' for a in args) + "}"
        scalars = "{" + ", ".join(f'"{a}": np.array([float({a})])' for a in args) + "}"
        blocks.append("\n".join([
            f"def {item.name}({', '.join(args)}):",
            f'    """{doc}"""',
            f'    return float({helper}_grid(("{item.name}",), {scalars}, 1)'
            f'["{item.name}"][0])']))
        for suffix in ("_grid", "_grid_serial"):
            signature = ", ".join(args) if args else "_n"
            size = f"{args[0]}.shape[0]" if args else "_n"
            blocks.append("\n".join([
                f"def {item.name}{suffix}({signature}):",
                f'    """{item.name} at every grid point (1-D arrays of equal length): one '
                'trajectory per setting of the other arguments, recorded at every step asked."""',
                f'    return {helper}_grid(("{item.name}",), {columns}, {size})'
                f'["{item.name}"]']))
        return "\n\n\n".join(blocks)

    def _program_function(self, helper: str, members: list[ArrayProgram]) -> str:
        """``_program_N`` (njit) and ``_program_N_grid`` (Python) of the items ``members``."""
        first = members[0]
        names = self.names(first)
        shapes = first.shapes()
        arrays = {name: f"_a_{name}" for name in shapes}
        deps = tuple(dict.fromkeys(d for m in members for d in self.fs.dependencies(m)))
        trajectory, trajectory_deps = self._used_parameters(
            [v for st in (*first.setup, *first.body) for v in (st.target, st.value)], deps)
        point = tuple(p.name for p in self.fs.params if p.name not in trajectory and any(
            p.name in self.fs.arguments(m.name) for m in members))
        signature = ", ".join(["_counts", "_points", "_wanted", *trajectory])
        lines = [NJIT, f"def {helper}({signature}):",
                 f'    """Set-up of {", ".join(m.name for m in members)}, then the body up to '
                 "every count of _counts (sorted), and the wanted outputs there at the point's "
                 f'arguments _points[i] = ({", ".join(point)})."""']
        lines += self.dependency_lines(trajectory_deps, "    ")
        for c in first.constants:
            const = f"_K_{helper}_{c.name}"
            values = ", ".join(repr(float(v)) for v in c.values)
            self._array_constants.append(
                f"{const} = np.array([{values}], dtype=np.float64).reshape({tuple(c.shape)!r})")
            lines.append(f"    {arrays[c.name]} = {const}")
        for name, shape in first.arrays:
            lines.append(f"    {arrays[name]} = np.zeros({tuple(shape)!r})")
        for st in first.setup:
            lines += self._statement_lines(st, names, arrays, "    ", shapes)
        lines += [f"    _out = np.full((_counts.shape[0], {len(members)}), np.nan)",
                  "    _done = 0",
                  "    for _i in range(_counts.shape[0]):",
                  "        while _done < _counts[_i]:"]
        users = _body_users(members)
        for st, who in zip(first.body, users, strict=True):
            if len(who) == len(members):
                lines += self._statement_lines(st, names, arrays, "            ", shapes)
            elif who:  # needed by some items only (e.g. a running lambda_max): when wanted
                lines.append(f"            if {' or '.join(f'_wanted[{k}]' for k in who)}:")
                lines += self._statement_lines(st, names, arrays, "                ", shapes)
        lines.append("            _done += 1")
        lines += [f"        {a} = _points[_i, {k}]" for k, a in enumerate(point)]
        before = {st.target.func.__name__ for st in (*first.setup, *first.body)}
        finishes: dict[str, list[int]] = {}
        for k, m in enumerate(members):
            finishes.setdefault(canonical(m.finish), []).append(k)
        for b, columns in enumerate(finishes.values()):
            finish = members[columns[0]].finish
            wanted = " or ".join(f"_wanted[{k}]" for k in columns)
            lines.append(f"        if {wanted}:")
            # fresh arrays for what the finish writes: the trajectory goes on after it
            local = dict(arrays)
            for name in dict.fromkeys(st.target.func.__name__ for st in finish):
                local[name] = f"_f{b}_{name}"
                fresh = f"{arrays[name]}.copy()" if name in before else \
                    f"np.zeros({shapes[name]!r})"
                lines.append(f"            {local[name]} = {fresh}")
            used = [m.output for m in members] + [v for st in finish
                                                   for v in (st.target, st.value)]
            lines += self.dependency_lines(self.dependencies_in(used, deps), "            ")
            for st in finish:
                lines += self._statement_lines(st, names, local, "            ", shapes)
            for k in columns:
                temps, (value,) = print_assignments([members[k].output], names,
                                                    "                ", "_o", local)
                lines += [f"            if _wanted[{k}]:", *temps,
                          f"                _out[_i, {k}] = {value}"]
        lines.append("    return _out")
        steps = (f'"{first.steps.name}"' if isinstance(first.steps, sp.Symbol)
                 else str(int(first.steps)))
        grid = "\n".join([
            f"def {helper}_grid(_names, _columns, _n):",
            f'    """The items _names of {helper} at _n points (_columns: argument -> 1-D array);'
            ' one trajectory per setting of its trajectory arguments."""',
            f"    return _program_grid({helper}, {tuple(m.name for m in members)!r}, "
            f"{point!r}, {trajectory!r}, {steps}, _names, _columns, _n)"])
        return "\n".join(lines) + "\n\n\n" + grid

    def _used_parameters(self, exprs, deps: tuple[str, ...]
                         ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Parameters (in parameter order) and items of ``deps`` that ``exprs`` use."""
        used = {s.name for v in exprs for s in sp.sympify(v).free_symbols}
        items = self.dependencies_in([sp.Symbol(n) for n in used], deps)
        for d in items:
            used.update(self.fs.arguments(d))
        return tuple(p.name for p in self.fs.params if p.name in used), items

    # -- path saddle -----------------------------------------------------------------
    def _emit_PathSaddle(self, item: PathSaddle, args: tuple[str, ...]) -> str:
        """Compiled pieces shared by every item with the same stage, typical step and
        observable (``_saddle_N_stage``, ``_typical``, ``_observable``, ``_system``: gradient
        and banded Hessian of the Lagrangian on the whole path; ``_solve``: Newton with
        backtracking inside the continuation), and plain-Python ``name``, ``name_path``,
        ``name_grid``/``name_grid_serial`` around them.  As for array programs, a compiled
        caller would re-link and re-optimise the whole chain (measured: 13 s more for a
        second item of the tanh model); one Python call per point costs microseconds
        against the solve's milliseconds."""
        for other in self.fs.items:
            if item.name in self.fs.dependencies(other):
                raise CodegenError(f"{other.name} uses the path saddle {item.name}: saddle "
                                   "points are called from Python only")
        names = self.names(item)
        for sym in item.bound_symbols():
            if sym.name in names:
                raise CodegenError(f"path saddle {item.name}: {sym.name} shadows an item")
        self._needs_band_solver = True
        d = len(item.state)
        deps = self.fs.dependencies(item)
        moving_names = {s.name for s in item.bound_symbols()}
        moving = tuple(dep for dep in deps if set(self.fs.arguments(dep)) & moving_names)
        if self.dependencies_in([*item.start, item.goal, item.steps, item.output], moving):
            raise CodegenError(f"path saddle {item.name}: its start, goal, steps or output "
                               "uses an item that depends on the path")
        param_order = [prm.name for prm in self.fs.params]

        def helper_arguments(exprs: list) -> tuple[str, ...]:
            used = {sym.name for e in exprs for sym in sp.sympify(e).free_symbols}
            for dep in self.dependencies_in(exprs, deps):
                used.update(self.fs.arguments(dep))
            return tuple(n for n in param_order if n in used - moving_names)

        parts = {
            "stage": (item.stage, *item.stage_gradient, *sum(item.stage_hessian, ())),
            "typical": tuple(item.typical_step),
            "observable": (item.observable, *item.observable_gradient,
                           *sum(item.observable_hessian, ())),
        }
        solve_args = helper_arguments([e for exprs in parts.values() for e in exprs])
        key = (item.conjugate, item.state, item.previous, *parts.values())  # sympy: hashable
        blocks = []
        shared = self._saddle_helpers.get(key)
        if shared is None:
            shared = f"_saddle_{len(self._saddle_helpers)}"
            self._saddle_helpers[key] = shared
            blocks += self._saddle_compiled(item, shared, parts, names, deps, helper_arguments,
                                            solve_args)
        # plain-Python wrappers: start, goal, steps and output at fixed parameters
        fixed = self.dependencies_in([*item.start, item.goal, item.steps, item.output], deps)
        start_temps, start_vals = print_assignments([*item.start, item.goal, item.steps],
                                                    names, "    ", "_i")
        out_temps, (out_val,) = print_assignments([item.output], names, "    ", "_o")
        call = ", ".join(solve_args)
        solve = [
            *self.dependency_lines(fixed, "    "),
            *start_temps,
            f"    _m0 = np.array([{', '.join(start_vals[:d])}], dtype=np.float64)",
            f"    _k = int({start_vals[d + 1]})",
            f"    _x, {item.action.name}, {item.multiplier.name}, {item.endpoint.name} = "
            f"{shared}_solve(float({start_vals[d]}), {item.mode == 'target'}, _k, _m0"
            f"{', ' + call if call else ''})",
        ]
        sig = ", ".join(args)
        doc = (f"{item.meaning}\n\n    Reference: {item.ref}\n    Arguments: ({sig})\n"
               "    NaN where the continuation from the typical path fails.")
        blocks.append("\n".join([f"def {item.name}({sig}):", f'    """{doc}"""', *solve,
                                 *out_temps, f"    return {out_val}"]))
        blocks.append("\n".join([
            f"def {item.name}_path({sig}):",
            f'    """Stationary path of {item.name}: rows (theta_l, m_l), l = 1..K, then a row '
            '(lambda, S, g(m_K))."""',
            *solve,
            f"    _out = np.zeros((_k + 1, {max(2 * d, 3)}))",
            f"    _out[:_k, :{2 * d}] = _x[:{2 * d} * _k].reshape(_k, {2 * d})",
            f"    _out[_k, :3] = ({item.multiplier.name}, {item.action.name}, "
            f"{item.endpoint.name})",
            "    return _out",
        ]))
        for suffix in ("_grid", "_grid_serial"):
            if not args:
                blocks.append(_constant_grid(item.name, suffix))
                continue
            blocks.append("\n".join([
                f"def {item.name}{suffix}({sig}):",
                f'    """{item.name} at every grid point (1-D arrays of equal length; one '
                'compiled solve per point)."""',
                f"    return np.array([{item.name}(*map(float, _a)) for _a in zip({sig})], "
                "dtype=np.float64).reshape(-1)",
            ]))
        return "\n\n\n".join(blocks)

    def _saddle_compiled(self, item: PathSaddle, shared: str, parts: dict, names: dict,
                         deps: tuple[str, ...], helper_arguments, solve_args: tuple[str, ...]
                         ) -> list[str]:
        """The compiled chain of a PathSaddle (see ``_emit_PathSaddle``)."""
        d = len(item.state)
        n_local = 3 * d
        half_band = 3 * d - 1
        conj = [s.name for s in item.conjugate]
        state = [s.name for s in item.state]
        prev = [s.name for s in item.previous]
        stage_out = [f"    _g = np.empty({n_local})", f"    _h = np.empty(({n_local}, {n_local}))"]
        stage_out += [f"    _g[{a}] = {{{1 + a}}}" for a in range(n_local)]
        stage_out += [f"    _h[{a}, {b}] = {{{1 + n_local + a * n_local + b}}}"
                      for a in range(n_local) for b in range(n_local)]
        stage_out.append("    return {0}, _g, _h")
        obs_out = [f"    _g = np.empty({d})", f"    _h = np.empty(({d}, {d}))"]
        obs_out += [f"    _g[{a}] = {{{1 + a}}}" for a in range(d)]
        obs_out += [f"    _h[{a}, {b}] = {{{1 + d + a * d + b}}}"
                    for a in range(d) for b in range(d)]
        obs_out.append("    return {0}, _g, _h")
        outs = {"stage": (conj + state + prev, stage_out),
                "typical": (prev, [f"    _m = np.empty({d})",
                                   *[f"    _m[{j}] = {{{j}}}" for j in range(d)], "    return _m"]),
                "observable": (state, obs_out)}
        blocks, calls = [], {}
        for part, exprs in parts.items():
            params, out = outs[part]
            own = helper_arguments(list(exprs))
            temps, values = print_assignments(list(exprs), names, "    ")
            blocks.append("\n".join([
                NJIT,
                f"def {shared}_{part}({', '.join(params + list(own))}):",
                *self.dependency_lines(self.dependencies_in(list(exprs), deps), "    "),
                *temps,
                *[line.format(*values) for line in out],
            ]))
            calls[part] = (f"{shared}_{part}", ", " + ", ".join(own) if own else "")
        more = ", " + ", ".join(solve_args) if solve_args else ""
        unpack_stage = ", ".join(
            [f"_x[_b + {j}]" for j in range(d)] + [f"_x[_b + {d + j}]" for j in range(d)]
            + [f"_mp[{j}]" for j in range(d)])
        blocks.append("\n".join([
            NJIT,
            f"def {shared}_system(_x, _goal, _target, _k, _m0{more}):",
            '    """Gradient, banded Hessian (rows: offsets -kl..+2kl) and S of the Lagrangian; '
            'lambda and g(m_K)."""',
            "    _n = _x.shape[0]",
            f"    _kl = {half_band}",
            "    _f = np.zeros(_n)",
            "    _r = np.zeros((_n, 3 * _kl + 1))",
            "    _s = 0.0",
            f"    _idx = np.empty({n_local}, dtype=np.int64)",
            f"    _mp = np.empty({d})",
            "    for _l in range(_k):",
            f"        _b = {2 * d} * _l",
            f"        for _j in range({d}):",
            f"            _mp[_j] = _m0[_j] if _l == 0 else _x[_b - {d} + _j]",
            "            _idx[_j] = _b + _j",
            f"            _idx[{d} + _j] = _b + {d} + _j",
            f"            _idx[{2 * d} + _j] = -1 if _l == 0 else _b - {d} + _j",
            f"        _v, _g, _h = {calls['stage'][0]}({unpack_stage}{calls['stage'][1]})",
            "        _s += _v",
            f"        for _a in range({n_local}):",
            "            _ia = _idx[_a]",
            "            if _ia < 0:",
            "                continue",
            "            _f[_ia] += _g[_a]",
            f"            for _c in range({n_local}):",
            "                _ic = _idx[_c]",
            "                if _ic >= 0:",
            "                    _r[_ia, _ic - _ia + _kl] += _h[_a, _c]",
            f"    _e = {2 * d} * _k - {d}",
            f"    _go, _gg, _gh = {calls['observable'][0]}("
            f"{', '.join(f'_x[_e + {j}]' for j in range(d))}{calls['observable'][1]})",
            "    _lam = _x[_n - 1] if _target else _goal",
            f"    for _a in range({d}):",
            "        _f[_e + _a] += _lam * _gg[_a]",
            f"        for _c in range({d}):",
            "            _r[_e + _a, _c - _a + _kl] += _lam * _gh[_a, _c]",
            "        if _target:",
            "            _r[_e + _a, _n - 1 - _e - _a + _kl] += _gg[_a]",
            "            _r[_n - 1, _e + _a - (_n - 1) + _kl] += _gg[_a]",
            "    if _target:",
            "        _f[_n - 1] = _go - _goal",
            "    return _f, _r, _s, _lam, _go, _gg",
        ]))
        blocks.append("\n".join([
            NJIT,
            f"def {shared}_tangent(_r, _gg, _target, _k):",
            '    """dx/d(goal) on the branch of stationary paths whose Lagrangian has the banded '
            'Hessian _r and observable gradient _gg at m_K (zero if singular)."""',
            "    _n = _r.shape[0]",
            "    _rhs = np.zeros(_n)",
            "    if _target:",
            "        _rhs[_n - 1] = 1.0",
            "    else:",
            f"        _e = {2 * d} * _k - {d}",
            f"        for _a in range({d}):",
            "            _rhs[_e + _a] = -_gg[_a]",
            f"    _t, _det = _band_solve(_r, _rhs, {half_band})",
            "    if not np.all(np.isfinite(_t)):",
            "        return np.zeros(_n)",
            "    return _t",
        ]))
        blocks.append("\n".join([
            NJIT,
            f"def {shared}_solve(_goal, _target, _k, _m0{more}):",
            '    """The stationary path (last entry lambda in target mode), S, lambda, g(m_K), by '
            "Newton steps with backtracking on |grad L| inside a continuation of the goal from "
            'its typical value (target) or 0 (tilt); NaN if the continuation fails."""',
            f"    _n = {2 * d} * _k + (1 if _target else 0)",
            f"    _parity = -1.0 if ({d} * _k) % 2 else 1.0  # sign of det: d K negative "
            "eigenvalues",
            "    _x = np.zeros(_n)",
            "    _m = _m0.copy()",
            "    for _l in range(_k):",
            f"        _m = {calls['typical'][0]}({', '.join(f'_m[{j}]' for j in range(d))}"
            f"{calls['typical'][1]})",
            f"        for _j in range({d}):",
            f"            _x[{2 * d} * _l + {d} + _j] = _m[_j]",
            f"    _g0, _gg, _gh = {calls['observable'][0]}("
            f"{', '.join(f'_m[{j}]' for j in range(d))}{calls['observable'][1]})",
            "    _goal0 = _g0 if _target else 0.0",
            "    _fail = (np.full(_n, np.nan), math.nan, math.nan, math.nan)",
            "    if not (math.isfinite(_goal) and math.isfinite(_goal0)):",
            "        return _fail",
            "    _done = 0.0",
            "    _current = _goal0",
            f"    _step = 1.0 / {int(item.continuation)}",
            f"    _f, _r, _s, _lam, _go, _gg = {shared}_system(_x, _goal0, _target, _k, _m0{more})",
            f"    _tangent = {shared}_tangent(_r, _gg, _target, _k)",
            "    while _done < 1.0:",
            "        _next = min(1.0, _done + _step)",
            "        _gl = _goal0 + (_goal - _goal0) * _next",
            "        _xp = _x + (_gl - _current) * _tangent  # Euler predictor",
            "        _xn = _xp.copy()",
            "        _f, _r, _s, _lam, _go, _gg = "
            f"{shared}_system(_xn, _gl, _target, _k, _m0{more})",
            "        _norm = np.sqrt(np.sum(_f * _f))",
            "        _ok = False",
            "        _det = 0.0",
            f"        for _it in range({SADDLE_MAX_ITERATIONS}):",
            "            if not math.isfinite(_norm):",
            "                break",
            f"            if np.max(np.abs(_f)) <= {SADDLE_TOLERANCE!r}:",
            "                _ok = True",
            "                break",
            f"            _dx, _det = _band_solve(_r, -_f, {half_band})",
            "            if not np.all(np.isfinite(_dx)):",
            "                break",
            "            _alpha = 1.0",
            "            _accepted = False",
            "            while _alpha > 1e-4:",
            "                _xt = _xn + _alpha * _dx",
            "                _ft, _rt, _st, _lt, _gt, _ggt = "
            f"{shared}_system(_xt, _gl, _target, _k, _m0{more})",
            "                _nt = np.sqrt(np.sum(_ft * _ft))",
            "                if math.isfinite(_nt) and _nt <= (1.0 - 1e-4 * _alpha) * _norm:",
            "                    _xn, _f, _r, _gg, _norm, _accepted = _xt, _ft, _rt, _ggt, _nt, "
            "True",
            "                    break",
            "                _alpha *= 0.5",
            "            if not _accepted:",
            f"                _ok = np.max(np.abs(_f)) <= {100 * SADDLE_TOLERANCE!r}",
            "                break",
            "        if _ok and _det != 0.0 and _det != _parity:",
            "            _ok = False  # a stationary path of the wrong kind (not a saddle)",
            "        if _ok and np.max(np.abs(_xn - _xp)) > "
            f"{SADDLE_CORRECTOR_RATIO!r} * np.max(np.abs(_xp - _x)) + 1e-9:",
            "            _ok = False  # the corrector left the branch: a fold or a jump",
            "        if _ok:",
            "            _x, _done, _current = _xn, _next, _gl",
            f"            _tangent = {shared}_tangent(_r, _gg, _target, _k)  # _r, _gg are at _x",
            f"            _step = min(2.0 * _step, 1.0 / {int(item.continuation)})",
            "        else:",
            "            _step *= 0.5",
            f"            if _step < ({SADDLE_MIN_STEP!r} if _target else "
            f"{SADDLE_FOLD_STEP!r} / {int(item.continuation)}):",
            "                return _fail",
            f"    _f, _r, _s, _lam, _go, _gg = {shared}_system(_x, _goal, _target, _k, _m0{more})",
            "    return _x, _s, _lam, _go",
        ]))
        return blocks

    # -- module --------------------------------------------------------------------
    def module(self, content_hash: str, spec_hash: str, source: str) -> str:
        bodies = [self.emit(item) for item in self.fs.items]
        tables = []
        for order in sorted(self._gauss_hermite_orders):
            nodes, weights = np.polynomial.hermite_e.hermegauss(order)
            weights = weights / np.sqrt(2.0 * np.pi)
            tables.append(f"_GH_NODES_{order} = np.array({[float(v) for v in nodes]!r})")
            tables.append(f"_GH_WEIGHTS_{order} = np.array({[float(v) for v in weights]!r})")
        if self._needs_interpolation:
            bodies.insert(0, INTERPOLATION_HELPER)
        if self._needs_band_solver:
            bodies.insert(0, BAND_SOLVER)
        kernel_args = {i.name: self.fs.arguments(i.name) for i in self.fs.items}
        head = [
            f"# Generated by netderive (generator {GENERATOR_VERSION}) from {source}",
            f"# sympy {sp.__version__}, numba {numba.__version__}. Do not edit: rebuilt on any "
            "change.",
            f"# FormulaSet {self.fs.name} ({self.fs.family}): {len(self.fs.items)} items.",
            "import math",
            "",
            "import numba as nb",
            "import numpy as np",
            *(["", "from netderive.codegen.drivers import program_grid as _program_grid"]
              if self._needs_program_grid else []),
            *(["from netderive.codegen.numerics import largest_symmetric_eigenvalue"]
              if self._needs_eigenvalue else []),
            "",
            f'CONTENT_HASH = "{content_hash}"',
            f'SPEC_HASH = "{spec_hash}"',
            f"KERNEL_ARGUMENTS = {kernel_args!r}",
            f"QUANTITIES = {self.fs.quantities!r}",
            *tables,
            *self._array_constants,
        ]
        return "\n".join(head) + "\n\n\n" + "\n\n\n".join(bodies) + "\n"


def _arrays_read(st: Statement) -> set[str]:
    """Names of the arrays a statement reads (its value's elements; lambda_max its matrix)."""
    if isinstance(st, LargestEigenvalue):
        return {st.matrix}
    return {e.func.__name__ for e in array_elements(st.value)}


def _body_users(members: list[ArrayProgram]) -> list[list[int]]:
    """For every body statement of the shared program, the members (by position) whose
    output needs it: it writes an array that the member's finish or output reads, or that a
    body statement it needs reads (a fixed point: the body repeats)."""
    body = members[0].body
    users: list[list[int]] = [[] for _ in body]
    for k, member in enumerate(members):
        needed = {e.func.__name__ for e in array_elements(member.output)}
        for st in member.finish:
            needed |= _arrays_read(st) | {st.target.func.__name__}
        grown = True
        while grown:
            grown = False
            for st in body:
                if st.target.func.__name__ in needed and not _arrays_read(st) <= needed:
                    needed |= _arrays_read(st)
                    grown = True
        for j, st in enumerate(body):
            if st.target.func.__name__ in needed:
                users[j].append(k)
    return users


INTERPOLATION_HELPER = "\n".join([
    NJIT,
    "def _interpolate_grid(_x, _y, _t):",
    '    """Linear interpolation of _y on the equal-step grid _x at _t; +inf outside it."""',
    "    _n = _x.shape[0]",
    "    if not (_x[0] <= _t <= _x[_n - 1]):",
    "        return math.inf if _t == _t else math.nan",
    "    _u = (_t - _x[0]) / (_x[1] - _x[0])",
    "    _j = min(int(_u), _n - 2)",
    "    _w = _u - _j",
    "    if _w == 0.0:",
    "        return _y[_j]",
    "    if _w == 1.0:",
    "        return _y[_j + 1]",
    "    return (1.0 - _w) * _y[_j] + _w * _y[_j + 1]",
])


def _constant_grid(name: str, suffix: str) -> str:
    """Plain-Python ``name{suffix}(_n)`` of a kernel without arguments."""
    return "\n".join([f"def {name}{suffix}(_n):", f'    """{name} repeated _n times."""',
                      f"    return np.full(_n, {name}())"])


BAND_SOLVER = "\n".join([
    NJIT,
    "def _band_solve(_r, _b, _kl):",
    '    """Solve A x = b, A banded (half-bandwidth _kl) in rows _r[i, j - i + _kl], by '
    'Gaussian elimination with partial pivoting (fill-in up to 2 _kl above the diagonal); '
    'also the sign of det A."""',
    "    _n = _b.shape[0]",
    "    _a = _r.copy()",
    "    _y = _b.copy()",
    "    _sign = 1.0",
    "    for _k in range(_n):",
    "        _p = _k",
    "        _big = abs(_a[_k, _kl])",
    "        for _i in range(_k + 1, min(_n, _k + _kl + 1)):",
    "            if abs(_a[_i, _k - _i + _kl]) > _big:",
    "                _p, _big = _i, abs(_a[_i, _k - _i + _kl])",
    "        if _big == 0.0:",
    "            return np.full(_n, np.nan), 0.0",
    "        _top = min(_n, _k + 2 * _kl + 1)",
    "        if _p != _k:",
    "            for _j in range(_k, _top):",
    "                _t = _a[_k, _j - _k + _kl]",
    "                _a[_k, _j - _k + _kl] = _a[_p, _j - _p + _kl]",
    "                _a[_p, _j - _p + _kl] = _t",
    "            _y[_k], _y[_p] = _y[_p], _y[_k]",
    "            _sign = -_sign",
    "        _piv = _a[_k, _kl]",
    "        if _piv < 0.0:",
    "            _sign = -_sign",
    "        for _i in range(_k + 1, min(_n, _k + _kl + 1)):",
    "            _m = _a[_i, _k - _i + _kl] / _piv",
    "            if _m != 0.0:",
    "                for _j in range(_k, _top):",
    "                    _a[_i, _j - _i + _kl] -= _m * _a[_k, _j - _k + _kl]",
    "                _y[_i] -= _m * _y[_k]",
    "    _x = np.empty(_n)",
    "    for _i in range(_n - 1, -1, -1):",
    "        _t = _y[_i]",
    "        for _j in range(_i + 1, min(_n, _i + 2 * _kl + 1)):",
    "            _t -= _a[_i, _j - _i + _kl] * _x[_j]",
    "        _x[_i] = _t / _a[_i, _kl]",
    "    return _x, _sign",
])


def kernel_source(fs: FormulaSet, content_hash: str, spec_hash: str = "", source: str = "") -> str:
    """The numba module for ``fs`` as text (see the module docstring for its contents)."""
    return KernelPrinter(fs).module(content_hash, spec_hash, source or fs.source)
