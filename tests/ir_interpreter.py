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

A PathSaddle is solved in float64 by nested optimisation with scipy, from the values of
``stage`` and ``observable`` alone (never their gradient and Hessian fields, nor Newton on
the stationarity system as in the kernel): the one-stage rate J(m | m') = -min_theta
stage(theta, m, m') by Brent (d = 1) or BFGS (d > 1; Nelder-Mead where BFGS meets no
finite value); then ``"target"`` minimises sum_l J(m_l | m_l-1) over the path m_1..m_K
subject to g(m_K) = goal (d = 1: m_K eliminated by a 1-D root of g - goal and BFGS over
the rest; d > 1: SLSQP with the equality constraint) and ``"tilt"`` maximises
goal * g(m_K) - sum_l J (BFGS), both from the typical path.  The outer gradient is the
envelope theorem (dJ/dm = -d stage/dm at the inner minimiser, by central differences of
stage values).  The target mode's multiplier is dI/dgoal by central differences of the
minimum (Richardson-extrapolated), computed only where the output uses it.  Items that
the stage, the typical step or the observable use and that take a bound symbol as a
parameter are interpreted at the current point (slow for quadratures: an mpmath integral
at every evaluation).  Agreement with the closed forms of Gaussian chains: 1e-12 relative
or better.

Usage::

    evaluate(fs, "rate_function", {"q": 0.7, "p": 0.1, "depth": 5.0})   # an mpmath.mpf
    trajectory(fs, "overlap", {...})                                    # rows s_0..s_K
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import mpmath
import numpy as np
import sympy as sp
from scipy import optimize

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

    def _value_PathSaddle(self, item: PathSaddle, values: Mapping[str, object]) -> float:
        return _PathSaddleSolver(self, item, values).value()

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


class _PathSaddleSolver:
    """Nested float64 optimisation of one PathSaddle at one parameter point.

    Uses the values of ``stage`` and ``observable`` only (not their derivative fields).  The
    path is ``x`` = (m_1, ..., m_K) flattened (K rows of d).  The gradient of the path's rate
    is the envelope theorem, dJ(m | m')/d(m, m') = -d stage/d(m, m') at the inner minimiser,
    by central differences of the stage values; ``thetas`` keeps the last inner minimiser of
    each stage as the start of the next inner minimisation.
    """

    #: central-difference step (relative) of the stage and observable in m, m'
    STEP = 2e-6

    def __init__(self, interp: _Interpreter, item: PathSaddle, values: Mapping[str, object]):
        self.interp, self.item, self.values = interp, item, values
        self.bound = {s.name for s in item.bound_symbols()}
        self.fixed = interp.environment(item, values, without=self.bound)
        self.moving = {d for d in interp.dependencies[item.name]
                       if set(interp.arguments[d]) & self.bound}
        self.cache: dict[tuple, float] = {}
        self.d = d = len(item.state)
        self.start = np.array([float(interp.substitute(e, self.fixed)) for e in item.start])
        self.goal = float(interp.substitute(item.goal, self.fixed))
        self.steps = int(interp.substitute(item.steps, self.fixed))
        self.stage = self.compile(item.stage, (*item.conjugate, *item.state, *item.previous))
        self.typical = [self.compile(e, item.previous) for e in item.typical_step]
        self.observable = self.compile(item.observable, item.state)
        self.thetas = np.zeros((max(self.steps, 1), d))
        self.hess_inv: dict[int, np.ndarray] = {}

    # -- expressions -------------------------------------------------------------------
    def compile(self, expr: sp.Expr, local: tuple[sp.Symbol, ...]) -> Callable[..., float]:
        """``expr`` as a float function of the ``local`` bound symbols; parameters and fixed
        items are substituted, items that move with a bound symbol are interpreted there."""
        expr = sp.sympify(expr)
        expr = expr.xreplace({s: sp.Float(float(v), 17) for s, v in self.fixed.items()
                              if s in expr.free_symbols})
        moving = sorted((s for s in expr.free_symbols if s.name in self.moving),
                        key=lambda s: s.name)
        names = [s.name for s in local]
        for dep in moving:
            need = set(self.interp.arguments[dep.name]) & self.bound
            if need - set(names):
                raise ValueError(f"path saddle {self.item.name}: item {dep.name} takes "
                                 f"{', '.join(sorted(need - set(names)))}, unknown here")
        stray = expr.free_symbols - set(local) - set(moving)
        if stray:
            raise ValueError(f"path saddle {self.item.name}: no values for "
                             f"{', '.join(sorted(s.name for s in stray))}")
        fn = sp.lambdify([*local, *moving], expr, modules="math")

        def call(*point: float) -> float:
            at = dict(zip(names, point, strict=True))
            try:
                return float(fn(*point, *(self.moving_value(dep.name, at) for dep in moving)))
            except (ArithmeticError, ValueError):  # math domain errors, overflow
                return math.nan

        return call

    def moving_value(self, dep: str, at: Mapping[str, float]) -> float:
        need = tuple(sorted(set(self.interp.arguments[dep]) & self.bound))
        key = (dep, *(at[n] for n in need))
        if key not in self.cache:
            self.cache[key] = float(
                self.interp.value(dep, {**self.values, **{n: at[n] for n in need}}))
        return self.cache[key]

    def g(self, m: np.ndarray) -> float:
        return self.observable(*m)

    def g_gradient(self, m: np.ndarray) -> np.ndarray:
        return _central_gradient(self.g, m, self.STEP)

    def typical_path(self) -> np.ndarray:
        path, m = [], self.start
        for _ in range(self.steps):
            m = np.array([f(*m) for f in self.typical])
            path.append(m)
        return np.concatenate(path)

    # -- the nested optimisation -------------------------------------------------------
    def inner(self, stage: int, m: np.ndarray, previous: np.ndarray) -> np.ndarray | None:
        """argmin_theta stage(theta, m, previous), or None (unbounded below, or no finite
        value): then J = +inf.  NaN and inf values of the stage count as +inf."""

        def ell(theta) -> float:
            v = self.stage(*theta, *m, *previous)
            return v if math.isfinite(v) else math.inf

        res = None
        # from the last minimiser of the stage, else from theta = 0 (a far warm start can
        # leave the domain of the stage)
        for start in (self.thetas[stage], np.zeros(self.d)):
            if not math.isfinite(ell(start)):
                continue
            if self.d == 1:
                t0 = float(start[0])
                try:
                    res = optimize.minimize_scalar(lambda t: ell((t,)), bracket=(t0, t0 + 0.1),
                                                   method="brent")
                except (RuntimeError, ValueError):  # no bracket: unbounded below
                    continue
                res.x = np.array([res.x])
            else:
                res = optimize.minimize(ell, start, method="BFGS", jac="3-point", options={
                    "gtol": 1e-9, "hess_inv0": self.hess_inv.get(stage)})
                self.keep_hess_inv(stage, res.hess_inv)
            if math.isfinite(res.fun) and np.all(np.isfinite(res.x)):
                break
        else:
            if self.d == 1:
                return None
            res = optimize.minimize(ell, np.zeros(self.d), method="Nelder-Mead", options={
                "xatol": 1e-10, "fatol": 1e-15, "maxiter": 4000})
        theta = np.asarray(res.x, dtype=float)
        if not (math.isfinite(res.fun) and np.all(np.isfinite(theta))):
            return None
        self.thetas[stage] = theta
        return theta

    def keep_hess_inv(self, stage: int, h: np.ndarray) -> None:
        """Keep BFGS's inverse Hessian (symmetrised, if positive definite) as the start of the
        next inner minimisation of the stage: warm starts converge in a few steps."""
        h = (h + h.T) / 2
        try:
            np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            self.hess_inv.pop(stage, None)
            return
        if np.all(np.isfinite(h)):
            self.hess_inv[stage] = h

    def total_rate(self, x: np.ndarray, gradient: bool = False):
        """sum_l J(m_l | m_l-1) over the path ``x`` (and its gradient in ``x``)."""
        d = self.d
        path = np.asarray(x, dtype=float).reshape(self.steps, d)
        total, grad, previous = 0.0, np.zeros(path.size), self.start
        for stage, m in enumerate(path):
            theta = self.inner(stage, m, previous)
            if theta is None:
                return (math.inf, np.full(path.size, np.nan)) if gradient else math.inf
            total -= self.stage(*theta, *m, *previous)
            if gradient:
                here = np.concatenate([m, previous])
                local = _central_gradient(lambda v, t=theta: self.stage(*t, *v), here, self.STEP)
                grad[d * stage:d * stage + d] -= local[:d]
                if stage > 0:
                    grad[d * stage - d:d * stage] -= local[d:]
            previous = m
        return (total, grad) if gradient else total

    def end_state(self, goal: float, guess: float) -> float:
        """d = 1: the zero of g(m) - goal nearest to ``guess`` (expanding bracket, brentq)."""

        def h(m: float) -> float:
            return self.g(np.array([m])) - goal

        if h(guess) == 0:
            return guess
        step = 1e-3 * max(1.0, abs(guess))
        for _ in range(80):
            for lo, hi in ((guess, guess + step), (guess - step, guess)):
                hl, hh = h(lo), h(hi)
                if math.isfinite(hl) and math.isfinite(hh) and hl * hh <= 0:
                    return optimize.brentq(h, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)
            step *= 2
        return math.nan

    def target_minimum(self, goal: float, x0: np.ndarray) -> tuple[float, np.ndarray]:
        """min sum_l J over the paths with g(m_K) = goal, from the path ``x0``: (value,
        path)."""
        d, k = self.d, self.steps
        if d == 1:
            end = self.end_state(goal, float(x0[-1]))
            if not math.isfinite(end):
                return math.nan, x0
            if k == 1:
                x = np.array([end])
            else:
                def rate(inner: np.ndarray):
                    value, grad = self.total_rate(np.append(inner, end), gradient=True)
                    return value, grad[:-1]

                x = np.append(_bfgs(rate, x0[:-1]), end)
                if not np.all(np.isfinite(x)):
                    return math.nan, x0
            return self.total_rate(x), x
        constraint = {"type": "eq", "fun": lambda x: self.g(x[-d:]) - goal,
                      "jac": lambda x: np.concatenate([np.zeros(d * k - d),
                                                       self.g_gradient(x[-d:])])}
        res = optimize.minimize(lambda x: self.total_rate(x, gradient=True), x0, jac=True,
                                method="SLSQP", constraints=[constraint],
                                options={"ftol": 1e-15, "maxiter": 1000})
        x = res.x
        value, grad = self.total_rate(x, gradient=True)
        normal = self.g_gradient(x[-d:])
        grad[-d:] -= (grad[-d:] @ normal) / (normal @ normal) * normal  # the KKT residual
        if not (abs(self.g(x[-d:]) - goal) <= 1e-10 * max(1.0, abs(goal))
                and np.max(np.abs(grad)) <= STATIONARY * max(1.0, abs(value))):
            return math.nan, x
        return value, x

    def value(self) -> float:
        item = self.item
        if self.steps < 1 or not (math.isfinite(self.goal) and np.all(np.isfinite(self.start))):
            return math.nan
        typical = self.typical_path()
        if item.mode == "target":
            rate, path = self.target_minimum(self.goal, typical)
            multiplier = math.nan  # computed only where the output uses it
            if item.multiplier in sp.sympify(item.output).free_symbols and math.isfinite(rate):
                multiplier = self.slope(path)
            action, endpoint = -rate, self.goal
        else:
            def negative(x: np.ndarray):
                value, grad = self.total_rate(x, gradient=True)
                grad[-self.d:] -= self.goal * self.g_gradient(x[-self.d:])
                return value - self.goal * self.g(x[-self.d:]), grad

            path = _bfgs(negative, typical)
            if not np.all(np.isfinite(path)):
                return math.nan
            action, multiplier = -self.total_rate(path), self.goal
            endpoint = self.g(path[-self.d:])
        if not (math.isfinite(action) and math.isfinite(endpoint)):
            return math.nan
        env = {**self.fixed, item.action: mpmath.mpf(action), item.endpoint: mpmath.mpf(endpoint),
               item.multiplier: mpmath.mpf(multiplier)}
        return float(self.interp.substitute(item.output, env))

    def slope(self, path: np.ndarray) -> float:
        """dI/dgoal by central differences of the minimum at steps h and 2h,
        Richardson-extrapolated."""
        h = 1e-3 * max(1.0, abs(self.goal))

        def central(step: float) -> float:
            up = self.target_minimum(self.goal + step, path)[0]
            down = self.target_minimum(self.goal - step, path)[0]
            return (up - down) / (2 * step)

        return (4 * central(h) - central(2 * h)) / 3


#: largest gradient (relative to max(1, |value|), and for BFGS to the value and gradient at
#: its start) at which an outer minimisation counts as converged; the envelope gradients
#: are accurate to ~1e-9
STATIONARY = 1e-6


def _central_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                      step: float) -> np.ndarray:
    """Gradient of ``f`` at ``x`` by central differences (step relative to max(1, |x_i|))."""
    out = np.empty(len(x))
    for i in range(len(x)):
        h = step * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        out[i] = (f(up) - f(down)) / (up[i] - down[i])
    return out


def _bfgs(fun: Callable, x0: np.ndarray) -> np.ndarray:
    """Unconstrained minimiser by BFGS (``fun`` returns the value and its gradient).

    Where BFGS stops away from a stationary point (typically: its line search met +inf
    outside the domain of the stage), it restarts from its best point with initial
    inverse Hessians 0.1, 0.01, 0.001 (shorter first steps).  NaN if that fails too.
    """
    x = np.asarray(x0, dtype=float)
    f0, g0 = fun(x)
    tolerance = STATIONARY * max(1.0, abs(f0), np.max(np.abs(g0), initial=0.0))
    for scale in (1.0, 0.1, 0.01, 0.001):
        res = optimize.minimize(fun, x, jac=True, method="BFGS", options={
            "gtol": 1e-11, "hess_inv0": scale * np.eye(len(x))})
        if np.isfinite(res.fun) and np.max(np.abs(res.jac), initial=0.0) <= tolerance:
            return res.x
        if np.isfinite(res.fun) and np.all(np.isfinite(res.x)):
            x = res.x
    return np.full(len(x), np.nan)


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


def _run_statement(st: ArrayStatement | LargestEigenvalue, arrays: dict,
                   env: Mapping[str, float]) -> None:
    if isinstance(st, LargestEigenvalue):
        block = arrays[st.matrix][:st.size, :st.size]
        where = tuple(int(i) for i in st.target.args)
        arrays[st.target.func.__name__][where] = np.linalg.eigvalsh((block + block.T) / 2)[-1]
        return
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
