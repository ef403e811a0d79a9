"""An independent mpmath interpreter of a FormulaSet at 30 digits (a test helper).

It shares no code with ``codegen``: formulas are substituted and evaluated by sympy's
``evalf``, recurrences are a Python loop over mpmath numbers, roots are found by its own
scan of the bracket on a grid finer than the kernel's and ``mpmath.findroot``, and a
Gauss-Hermite expectation is the exact Gaussian integral by ``mpmath.quad`` (so a kernel
agrees with it up to the quadrature error: test it on smooth integrands).

A MinPlusRecursion is the plain min-plus loop over every pair of grid points (never the
line envelope), with the same linear interpolation as the kernels.

An ArrayProgram is run in float64 (not at 30 digits: its arrays are large): each
statement is one vectorised numpy evaluation over the grid of its loop indices
(``sympy.lambdify`` of the value, arrays read by fancy indexing, ``np.add.at`` for
accumulation), not the generated loop nest.

Usage::

    evaluate(fs, "rate_function", {"q": 0.7, "p": 0.1, "depth": 5.0})   # an mpmath.mpf
    trajectory(fs, "overlap", {...})                                    # rows s_0..s_K
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import mpmath
import numpy as np
import sympy as sp

from derivations.ir import (
    ArrayProgram,
    ArrayStatement,
    Expectation,
    Formula,
    FormulaSet,
    Item,
    MinPlusRecursion,
    Recurrence,
    Root,
    item_symbol,
)

#: Working precision (decimal digits) of every evaluation.
DIGITS = 30
#: Precision of ``evalf`` for formulas: a margin over DIGITS.
EVALF_DIGITS = 40
#: The root scan uses this many cells per cell of the kernel's scan.
SCAN_REFINEMENT = 2

MpFunction = Callable[..., mpmath.mpf]


def evaluate(fs: FormulaSet, name: str, values: Mapping[str, float]) -> mpmath.mpf:
    """The value of item ``name`` at parameter ``values`` (name -> number), to 30 digits."""
    with mpmath.workdps(DIGITS):
        return _Interpreter(fs).value(name, values)


def curves(
    fs: FormulaSet, name: str, values: Mapping[str, float]
) -> tuple[list[mpmath.mpf], list[list[mpmath.mpf]]]:
    """Grid and rows ``I_1 .. I_K`` of the MinPlusRecursion ``name``."""
    item = fs.item(name)
    if not isinstance(item, MinPlusRecursion):
        raise TypeError(f"{name} is a {type(item).__name__}, not a MinPlusRecursion")
    with mpmath.workdps(DIGITS):
        return _Interpreter(fs).min_plus_curves(item, values)


def trajectory(fs: FormulaSet, name: str, values: Mapping[str, float]) -> list[list[mpmath.mpf]]:
    """The states ``s_0 .. s_K`` of the Recurrence ``name``, one list per step."""
    item = fs.item(name)
    if not isinstance(item, Recurrence):
        raise TypeError(f"{name} is a {type(item).__name__}, not a Recurrence")
    with mpmath.workdps(DIGITS):
        return _Interpreter(fs).recurrence_states(item, values)


class _Interpreter:
    """Evaluates items of one FormulaSet; dependency values are memoised per arguments."""

    def __init__(self, fs: FormulaSet) -> None:
        self.fs = fs
        self.memo: dict[tuple, mpmath.mpf] = {}
        self.functions: dict[tuple, MpFunction] = {}
        self.arguments = {i.name: fs.arguments(i.name) for i in fs.items}
        self.dependencies = {i.name: fs.dependencies(i) for i in fs.items}

    # -- shared pieces ---------------------------------------------------------------
    def value(self, name: str, values: Mapping[str, object]) -> mpmath.mpf:
        args = self.arguments[name]
        missing = [a for a in args if a not in values]
        if missing:
            raise KeyError(f"{name} needs values for {', '.join(missing)}")
        key = (name, tuple(mpmath.mpf(values[a]) for a in args))
        if key not in self.memo:
            item = self.fs.item(name)
            meth = getattr(self, f"_value_{type(item).__name__}", None)
            if meth is None:
                raise TypeError(f"the interpreter has no rule for {type(item).__name__}")
            self.memo[key] = mpmath.mpf(meth(item, values))
        return self.memo[key]

    def environment(
        self, item: Item, values: Mapping[str, object], without: str | set | None = None
    ) -> dict[sp.Symbol, object]:
        """Parameter symbols and earlier-item symbols -> their values.

        ``without`` names parameters that are left out, with the items that depend on them.
        """
        left_out = {without} if isinstance(without, str) else set(without or ())
        env: dict[sp.Symbol, object] = {
            p.symbol: mpmath.mpf(values[p.name])
            for p in self.fs.params
            if p.name in values and p.name not in left_out
        }
        for dep in self.dependencies[item.name]:
            if not left_out & set(self.arguments[dep]):
                env[item_symbol(dep)] = self.value(dep, values)
        return env

    def function(self, item: Item, expr: sp.Expr, extra: tuple[sp.Symbol, ...]) -> MpFunction:
        """``expr`` as an mpmath function of (params, earlier items, *extra)."""
        key = (item.name, sp.srepr(expr), extra)
        if key not in self.functions:
            symbols = [p.symbol for p in self.fs.params]
            symbols += [item_symbol(i.name) for i in self.fs.items]
            symbols = [s for s in symbols if s.name not in {e.name for e in extra}] + list(extra)
            self.functions[key] = _as_mpmath(symbols, expr)
        return self.functions[key]

    def substitute(self, expr: sp.Expr, env: Mapping[sp.Symbol, object]) -> mpmath.mpf:
        """Substitute exact values of ``env`` into ``expr`` and evaluate with ``evalf``."""
        mapping = {s: sp.Float(v, EVALF_DIGITS) for s, v in env.items()}
        return _to_mpf(sp.sympify(expr).xreplace(mapping).evalf(EVALF_DIGITS))

    # -- one method per item kind ----------------------------------------------------
    def _value_Formula(self, item: Formula, values: Mapping[str, object]) -> mpmath.mpf:
        return self.substitute(item.expr, self.environment(item, values))

    def _value_ArrayProgram(self, item: ArrayProgram, values: Mapping[str, object]) -> float:
        env = {s.name: float(v) for s, v in self.environment(item, values).items()}
        arrays = {c.name: np.array(c.values, dtype=float).reshape(c.shape)
                  for c in item.constants}
        arrays.update({name: np.zeros(shape) for name, shape in item.arrays})
        for st in item.setup:
            _run_statement(st, arrays, env)
        steps = int(env[item.steps.name]) if isinstance(item.steps, sp.Symbol) \
            else int(item.steps)
        for _ in range(steps):
            for st in item.body:
                _run_statement(st, arrays, env)
        for st in item.finish:
            _run_statement(st, arrays, env)
        value = _array_function((), item.output, arrays, env)()
        return mpmath.mpf(float(value))

    def _value_Expectation(self, item: Expectation, values: Mapping[str, object]) -> mpmath.mpf:
        env = self.environment(item, values)
        if item.quadrature_order is None:
            return self.substitute(item.closed_form, env)
        mapping = {s: sp.Float(v, EVALF_DIGITS) for s, v in env.items()}
        return gaussian_expectation(sp.sympify(item.integrand).xreplace(mapping), item.variables)

    def _value_Recurrence(self, item: Recurrence, values: Mapping[str, object]) -> mpmath.mpf:
        states = self.recurrence_states(item, values)
        return self.recurrence_output(item, values, states[-1])

    def _value_Root(self, item: Root, values: Mapping[str, object]) -> mpmath.mpf:
        x = item.variable
        g = self.moving(item, item.equation, values)
        env = self.environment(item, values, without=x.name)  # bracket etc. do not move
        lo, hi = (self.substitute(b, env) for b in item.bracket)
        roots = scan_roots(g, lo, hi, SCAN_REFINEMENT * item.scan_points)
        best = self.substitute(item.fallback, env)
        if item.select == "first":
            return roots[0] if roots else best
        if item.select == "last":
            return roots[-1] if roots else best
        objective = self.moving(item, item.objective, values)
        best_objective = mpmath.inf
        trials = [self.substitute(c, env) for c in item.candidates] + roots
        for t in trials:  # candidates first, then roots in increasing order: ties keep the first
            o = objective(t)
            if not mpmath.isnan(o) and o < best_objective:
                best, best_objective = t, o
        return best

    def _value_MinPlusRecursion(
        self, item: MinPlusRecursion, values: Mapping[str, object]
    ) -> mpmath.mpf:
        grid, rows = self.min_plus_curves(item, values)
        return interpolate(grid, rows[-1], mpmath.mpf(values[item.variable.name]))

    def min_plus_curves(
        self, item: MinPlusRecursion, values: Mapping[str, object]
    ) -> tuple[list[mpmath.mpf], list[list[mpmath.mpf]]]:
        """The plain min-plus loop over all pairs of grid points (rows I_1..I_K)."""
        moving = (item.variable, item.previous, *((item.index,) if item.index else ()))
        names = {s.name for s in moving}
        fixed = self.environment(item, values, without=names)
        lo, hi, start = (self.substitute(e, fixed) for e in (item.lower, item.upper, item.start))
        stages = max(int(self.substitute(item.steps, fixed)), 1)
        size = max(int(self.substitute(item.grid_size, fixed)), 2)
        rate_fn = self.function(item, item.step_rate, moving)

        def rate(new: mpmath.mpf, old: mpmath.mpf, stage: int) -> mpmath.mpf:
            at = dict(zip((s.name for s in moving), (new, old, mpmath.mpf(stage)), strict=False))
            env = self.environment(item, {**values, **at})
            v = rate_fn(*self.ordered(env, moving), *(new, old, mpmath.mpf(stage))[:len(moving)])
            return mpmath.inf if mpmath.isnan(v) else v

        grid = [lo + (hi - lo) * mpmath.mpf(i) / (size - 1) for i in range(size)]
        rows = [[rate(x, start, 1) for x in grid]]
        for stage in range(2, stages + 1):
            last = rows[-1]
            rows.append([
                min((last[j] + rate(x, grid[j], stage) for j in range(size)
                     if last[j] != mpmath.inf), default=mpmath.inf)
                for x in grid
            ])
        return grid, rows

    # -- helpers ---------------------------------------------------------------------
    def ordered(self, env: Mapping[sp.Symbol, object], bound: tuple[sp.Symbol, ...]) -> list:
        """Values of (params, items) in the argument order of :meth:`function`, less bound."""
        names = {b.name for b in bound}
        symbols = [p.symbol for p in self.fs.params] + [item_symbol(i.name) for i in self.fs.items]
        return [env.get(s, mpmath.nan) for s in symbols if s.name not in names]

    def moving(
        self, item: Root, expr: sp.Expr, values: Mapping[str, object]
    ) -> Callable[[mpmath.mpf], mpmath.mpf]:
        """``expr`` as a function of the root variable; dependencies re-evaluated there."""
        x = item.variable
        fn = self.function(item, expr, (x,))

        def at(point: mpmath.mpf) -> mpmath.mpf:
            env = self.environment(item, {**values, x.name: point})
            return fn(*self.ordered(env, (x,)), point)

        return at

    def recurrence_states(
        self, item: Recurrence, values: Mapping[str, object]
    ) -> list[list[mpmath.mpf]]:
        bound = item.bound_symbols()
        env = self.environment(item, values, without={s.name for s in bound})
        steps = (int(item.steps) if isinstance(item.steps, sp.Integer)
                 else int(mpmath.mpf(values[item.steps.name])))
        state = [self.substitute(e, env) for e in item.init]
        index = item.index if item.index is not None else sp.Symbol("_k")  # unused
        step_fns = [self.function(item, e, (*item.state, index)) for e in item.step]
        path = [state]
        for k in range(steps):
            # items that take a state (or the index) as a parameter see its current value
            at = {s.name: v for s, v in zip(item.state, state, strict=True)}
            at[index.name] = mpmath.mpf(k)
            base = self.ordered(self.environment(item, {**values, **at}), (*item.state, index))
            state = [f(*base, *state, mpmath.mpf(k)) for f in step_fns]
            path.append(state)
        return path

    def recurrence_output(
        self, item: Recurrence, values: Mapping[str, object], final: list[mpmath.mpf]
    ) -> mpmath.mpf:
        at = {s.name: v for s, v in zip(item.state, final, strict=True)}
        env = self.environment(item, {**values, **at})
        out = self.function(item, item.output, item.state)
        return out(*self.ordered(env, item.state), *final)


def interpolate(grid: list[mpmath.mpf], row: list[mpmath.mpf], t: mpmath.mpf) -> mpmath.mpf:
    """Linear interpolation on an equal-step grid; +inf outside it (as the kernels)."""
    if mpmath.isnan(t):
        return mpmath.nan
    if not grid[0] <= t <= grid[-1]:
        return mpmath.inf
    u = (t - grid[0]) / (grid[1] - grid[0])
    j = min(int(mpmath.floor(u)), len(grid) - 2)
    w = u - j
    if w == 0:
        return row[j]
    if w == 1:
        return row[j + 1]
    return (1 - w) * row[j] + w * row[j + 1]


def gaussian_expectation(expr: sp.Expr, variables: tuple[sp.Symbol, ...]) -> mpmath.mpf:
    """E[expr] over independent standard normal ``variables``, integrated by ``mpmath.quad``.

    ``expr`` has numbers for everything else.  Each term of its expansion that is a product
    of one-variable factors is a product of one-dimensional integrals (Fubini); any other
    term is integrated over all its variables at once (exact, but slow in two dimensions).
    """
    total = mpmath.mpf(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        factors: dict[object, list[sp.Expr]] = {}  # variable, None (constant) or "joint"
        for factor in sp.Mul.make_args(term):
            used = [z for z in variables if z in factor.free_symbols]
            key = used[0] if len(used) == 1 else (None if not used else "joint")
            factors.setdefault(key, []).append(factor)
        if "joint" in factors:
            total += _joint_expectation(term, variables)
            continue
        value = _to_mpf(sp.Mul(*factors.pop(None, [])).evalf(EVALF_DIGITS))
        for z, parts in factors.items():
            value *= _joint_expectation(sp.Mul(*parts), (z,))
        total += value
    return total


def _joint_expectation(expr: sp.Expr, variables: tuple[sp.Symbol, ...]) -> mpmath.mpf:
    fn = _as_mpmath(list(variables), expr)
    norm = (2 * mpmath.pi) ** (-mpmath.mpf(len(variables)) / 2)

    def density(*z: mpmath.mpf) -> mpmath.mpf:
        return fn(*z) * mpmath.exp(-sum(t * t for t in z) / 2) * norm

    return mpmath.quad(density, *([[-mpmath.inf, 0, mpmath.inf]] * len(variables)))


def scan_roots(
    g: Callable[[mpmath.mpf], mpmath.mpf], lo: mpmath.mpf, hi: mpmath.mpf, cells: int
) -> list[mpmath.mpf]:
    """All zeros of ``g`` in ``[lo, hi]`` seen as exact zeros or sign changes on a grid."""
    grid = [lo + (hi - lo) * j / cells for j in range(cells + 1)]
    values = [g(t) for t in grid]
    roots = []
    for j, (t, v) in enumerate(zip(grid, values, strict=True)):
        if v == 0:
            roots.append(t)
        elif (
            j < cells
            and mpmath.isfinite(v)
            and mpmath.isfinite(values[j + 1])
            and (v * values[j + 1] < 0)
        ):
            roots.append(refine(g, t, grid[j + 1], v))
    return roots


def refine(
    g: Callable[[mpmath.mpf], mpmath.mpf], a: mpmath.mpf, b: mpmath.mpf, ga: mpmath.mpf
) -> mpmath.mpf:
    """The zero of ``g`` in a sign-change bracket: Anderson-Bjorck, else plain bisection."""
    try:
        r = mpmath.findroot(g, (a, b), solver="anderson")
        if a <= r <= b:
            return r
    except (ValueError, ZeroDivisionError):
        pass
    for _ in range(4 * mpmath.mp.prec):
        m = (a + b) / 2
        gm = g(m)
        if gm == 0 or b - a <= mpmath.eps * (1 + abs(m)):
            return m
        if (gm < 0) == (ga < 0):
            a, ga = m, gm
        else:
            b = m
    return (a + b) / 2


def _to_mpf(value: sp.Basic) -> mpmath.mpf:
    if value is sp.nan:
        return mpmath.nan
    if value == sp.oo:
        return mpmath.inf
    if value == -sp.oo:
        return -mpmath.inf
    if not value.is_number or not value.is_real:
        raise ValueError(f"the interpreter met a value that is not a real number: {value}")
    return mpmath.mpf(sp.Float(value, EVALF_DIGITS)._mpf_)


def _as_mpmath(symbols: list[sp.Symbol], expr: sp.Expr) -> MpFunction:
    """A plain function of ``symbols`` evaluating ``expr`` with mpmath (sympy's own printer)."""
    return sp.lambdify(symbols, sp.sympify(expr), modules="mpmath")


def _array_function(indices: tuple[sp.Symbol, ...], expr: sp.Expr, arrays: dict,
                    env: Mapping[str, float]) -> Callable:
    """``expr`` as a numpy function of the loop ``indices`` (int arrays); array elements are
    read by fancy indexing (indices truncated to int), scalars come from ``env``."""
    expr = sp.sympify(expr)
    names = {f.func.__name__ for f in expr.atoms(sp.Function)
             if isinstance(f, sp.core.function.AppliedUndef)}

    def reader(name: str) -> Callable:
        def read(*idx):
            return arrays[name][tuple(np.asarray(i).astype(np.int64) for i in idx)]
        return read

    scalars = {s: env[s.name] for s in expr.free_symbols if s.name in env}
    expr = expr.xreplace({s: sp.Float(v, 17) for s, v in scalars.items()})
    func = sp.lambdify(indices, expr, modules=[{n: reader(n) for n in names}, "numpy"])
    return func


def _run_statement(st: ArrayStatement, arrays: dict, env: Mapping[str, float]) -> None:
    indices = tuple(s for s, _ in st.loops)
    grids = np.meshgrid(*[np.arange(n) for _, n in st.loops], indexing="ij")
    flat = [g.ravel() for g in grids]
    size = flat[0].size if flat else 1
    value = np.broadcast_to(np.asarray(_array_function(indices, st.value, arrays, env)(*flat),
                                       dtype=float), (size,))
    target = st.target
    where = tuple(np.broadcast_to(np.asarray(
        _array_function(indices, a, arrays, env)(*flat)).astype(np.int64), (size,))
        for a in target.args)
    array = arrays[target.func.__name__]
    reads = {f for f in sp.sympify(st.value).atoms(sp.Function)
             if f.func.__name__ == target.func.__name__}
    if reads and (reads != {target} or set(indices) - target.free_symbols):
        # only an element-wise update (each point reads the element it writes) vectorises
        raise ValueError(f"statement {target} reads its own target: not vectorisable")
    if st.accumulate:
        np.add.at(array, where, value)
    else:
        array[where] = value
