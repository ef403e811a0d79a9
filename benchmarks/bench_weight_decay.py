#!/usr/bin/env python
r"""Benchmark: b*(gamma) on a grid of gamma values for the bundled weight-decay models.

Run from the project root::

    python benchmarks/bench_weight_decay.py            # about 1-2 minutes on 2 cores
    python benchmarks/bench_weight_decay.py --help

Compared, for every model, on ``--n`` values of gamma (``weight_decay``) with every other
parameter at its default:

- the generated numba kernels ``b_star_grid`` (``prange``) and ``b_star_grid_serial``;
  their first call (numba compile, or load from numba's cache) is timed separately;
- the strongest plain alternative we know: ``sympy.lambdify(modules="numpy", cse=True)``
  of the same formulas (residual, its derivative, reduced loss, bracket, candidates) with
  a vectorised numpy scan of the bracket on the same cells, vectorised sign-change
  detection, one vectorised root refinement over all sign-change brackets of all gammas
  (``scipy.optimize.elementwise.find_root`` (Chandrupatla) when the installed scipy has
  it; a vectorised numpy Newton-bisection, the kernel's own algorithm, is timed too) and a
  vectorised selection of the least reduced loss among the zeros and the candidate b = 0,
  with the kernel's tie-breaking;
- the same pipeline with the residual (scan and refinement) evaluated by symengine's
  ``Lambdify`` (LLVM backend when available).

All results are checked against the parallel kernel (max |b*_method - b*_kernel|); the
script exits with status 1 when a method disagrees by more than ``--tolerance``.

Not a test: pytest does not collect ``bench_*.py`` files and there are no ``test_``
functions here.  Unless ``NETDERIVE_CACHE_DIR`` is set (or ``--cache-dir`` is given) the
builds go to a fresh temporary directory, so the first-call times are real compile times.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

MODELS = ("weight_decay", "weight_decay_anisotropic")
ITEM = "b_star"
GAMMA = "weight_decay"
#: The generated kernels' Newton-bisection (codegen/algorithms/root.py): same constants here.
NEWTON_TOLERANCE = 1e-14
NEWTON_MAX_ITERATIONS = 200


# -- the plain alternative: lambdified formulas, vectorised scan / refine / select -----------
def inline_formulas(fs, expr):
    """``expr`` with every earlier Formula item's symbol replaced by its expression."""
    import sympy as sp

    from netderive.derivations.ir import Formula, item_symbol

    formulas = {item_symbol(i.name): i.expr for i in fs.items if isinstance(i, Formula)}
    expr = sp.sympify(expr)
    for _ in range(len(fs.items) + 1):
        new = expr.xreplace(formulas)
        if new == expr:
            break
        expr = new
    items = {item_symbol(i.name) for i in fs.items}
    left = sorted(s.name for s in expr.free_symbols if s in items)
    if left:
        raise NotImplementedError(f"cannot inline non-Formula items {left}")
    return expr


def _column(value, n: int) -> np.ndarray:
    """A float array of length ``n`` (lambdified constants come back as scalars)."""
    return np.asarray(value, dtype=float) + np.zeros(n)


def _newton_bisection(g_dg: Callable, a: np.ndarray, b: np.ndarray, ga: np.ndarray,
                      args: Sequence[np.ndarray]) -> np.ndarray:
    """The kernels' safeguarded Newton-bisection, vectorised over brackets [a, b].

    Converged brackets are dropped from the working set after every step.
    """
    result = np.empty(a.shape)
    idx = np.arange(a.size)
    a, b, ga = a.copy(), b.copy(), ga.copy()
    x = 0.5 * (a + b)
    args = list(args)
    for _ in range(NEWTON_MAX_ITERATIONS):
        if idx.size == 0:
            break
        g, dg = g_dg(x, *args)
        g, dg = _column(g, x.size), _column(dg, x.size)
        exact = g == 0.0
        same = (g < 0.0) == (ga < 0.0)
        a = np.where(same, x, a)
        ga = np.where(same, g, ga)
        b = np.where(same, b, x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            xn = np.where(dg != 0.0, x - g / dg, 0.5 * (a + b))
        unsafe = ~((a < xn) & (xn < b)) | ~np.isfinite(xn)
        xn = np.where(unsafe, 0.5 * (a + b), xn)
        scale = NEWTON_TOLERANCE * (1.0 + np.abs(x))
        converged = ~exact & ((np.abs(xn - x) <= scale) | (b - a <= scale))
        result[idx[exact]] = x[exact]
        result[idx[converged]] = xn[converged]
        keep = ~(exact | converged)
        idx, a, b, ga, x = idx[keep], a[keep], b[keep], ga[keep], xn[keep]
        args = [p[keep] for p in args]
    result[idx] = x
    return result


class VectorisedRoot:
    """A ``min_objective`` Root item of a FormulaSet, evaluated on whole grids with numpy.

    ``refine`` is ``"find_root"`` (scipy.optimize.elementwise, Chandrupatla) or
    ``"newton"`` (the kernels' safeguarded Newton-bisection, vectorised);
    ``residual`` is ``"numpy"`` (sympy.lambdify) or ``"symengine"`` (symengine.Lambdify,
    used for the scan and for the refinement's residual calls).
    """

    def __init__(self, fs, name: str, refine: str = "find_root", residual: str = "numpy",
                 chunk: int = 2048) -> None:
        import sympy as sp

        from netderive.derivations.ir import Root

        item = fs.item(name)
        if not isinstance(item, Root) or item.select != "min_objective":
            raise NotImplementedError(f"{name}: only Root items with select='min_objective'")
        self.refine, self.residual, self.chunk = refine, residual, chunk
        self.scan_points = int(item.scan_points)
        self.arg_names = fs.arguments(name)
        by_name = {p.name: p.symbol for p in fs.params}
        params = [by_name[n] for n in self.arg_names]
        x = item.variable
        equation = inline_formulas(fs, item.equation)
        derivative = inline_formulas(fs, item.derivative)

        def lam(args, expr):
            return sp.lambdify(args, expr, modules="numpy", cse=True)

        self.g = lam([x, *params], equation)
        self.g_dg = lam([x, *params], [equation, derivative])
        self.objective = lam([x, *params], inline_formulas(fs, item.objective))
        self.lo = lam(params, inline_formulas(fs, item.bracket[0]))
        self.hi = lam(params, inline_formulas(fs, item.bracket[1]))
        self.fallback = lam(params, inline_formulas(fs, item.fallback))
        self.candidates = [lam(params, inline_formulas(fs, c)) for c in item.candidates]
        if residual == "symengine":
            import symengine as se

            backend = "llvm" if _symengine_has_llvm() else "lambda"
            compiled = se.Lambdify([se.sympify(s) for s in (x, *params)],
                                   se.sympify(equation), real=True, backend=backend, cse=True)
            nargs = 1 + len(params)

            def g_symengine(xv, *pv):
                shape = np.broadcast_shapes(np.shape(xv), *(np.shape(p) for p in pv))
                packed = np.empty((*shape, nargs))
                packed[..., 0] = xv
                for j, p in enumerate(pv, start=1):
                    packed[..., j] = p
                return compiled(packed)

            self.g = g_symengine
        elif residual != "numpy":
            raise ValueError(f"residual: {residual!r}; allowed: numpy, symengine")
        if refine == "find_root":
            from scipy.optimize.elementwise import find_root

            self._find_root = find_root
        elif refine != "newton":
            raise ValueError(f"refine: {refine!r}; allowed: find_root, newton")

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        arrays = [np.asarray(a, dtype=float) for a in arrays]
        n = arrays[0].size
        lo, hi = _column(self.lo(*arrays), n), _column(self.hi(*arrays), n)
        steps = np.arange(self.scan_points + 1, dtype=float)
        # -- scan: g at lo + (hi - lo) * j / n_scan (the kernel's arithmetic), row chunks
        exact_r, exact_c, change_r, change_c = [], [], [], []
        xa_l, xb_l, ga_l = [], [], []
        width = self.scan_points  # cells per row
        for start in range(0, n, self.chunk):
            rows = slice(start, min(start + self.chunk, n))
            grid = lo[rows, None] + (hi - lo)[rows, None] * steps / self.scan_points
            g = self.g(grid, *(a[rows, None] for a in arrays))
            negative = g < 0.0
            change = negative[:, :-1] != negative[:, 1:]
            finite = np.isfinite(g)
            if not finite.all():
                change &= finite[:, :-1] & finite[:, 1:]
            zero = g == 0.0
            if zero.any():  # a zero on a scan point: taken as is, that cell not refined
                change &= ~zero[:, :-1]
                r, c = np.nonzero(zero)
                exact_r.append(r + start)
                exact_c.append(c)
            flat = np.flatnonzero(change)
            r, c = np.divmod(flat, width)
            change_r.append(r + start)
            change_c.append(c)
            xa_l.append(grid[r, c])
            xb_l.append(grid[r, c + 1])
            ga_l.append(g[r, c])
        exact_r = np.concatenate(exact_r) if exact_r else np.zeros(0, dtype=np.intp)
        exact_c = np.concatenate(exact_c) if exact_c else np.zeros(0, dtype=np.intp)
        change_r, change_c = np.concatenate(change_r), np.concatenate(change_c)
        xa, xb, ga = np.concatenate(xa_l), np.concatenate(xb_l), np.concatenate(ga_l)
        exact_x = lo[exact_r] + (hi - lo)[exact_r] * exact_c.astype(float) / self.scan_points
        # -- refine every sign-change cell of every gamma in one vectorised call
        args = [a[change_r] for a in arrays]
        if xa.size == 0:
            refined = xa
        elif self.refine == "find_root":
            res = self._find_root(self.g, (xa, xb), args=tuple(args))
            refined = res.x
            self.failures = int(np.count_nonzero(~res.success))
        else:
            refined = _newton_bisection(self.g_dg, xa, xb, ga, args)
        roots = np.concatenate([exact_x, refined])
        rows = np.concatenate([exact_r, change_r])
        cells = np.concatenate([exact_c, change_c])
        # -- select: candidates in order, then zeros by (objective, cell); strict '<' as
        # in the kernel, so ties keep the candidate / the lower cell
        best = _column(self.fallback(*arrays), n)
        best_objective = np.full(n, np.inf)
        for candidate in self.candidates:
            value = _column(candidate(*arrays), n)
            objective = _column(self.objective(value, *arrays), n)
            better = objective < best_objective
            best = np.where(better, value, best)
            best_objective = np.where(better, objective, best_objective)
        if roots.size:
            objective = _column(self.objective(roots, *(a[rows] for a in arrays)), roots.size)
            order = np.lexsort((cells, objective, rows))  # NaN objectives sort last
            sorted_rows = rows[order]
            first = np.ones(order.size, dtype=bool)
            first[1:] = sorted_rows[1:] != sorted_rows[:-1]
            pick = order[first]
            better = objective[pick] < best_objective[rows[pick]]
            best[rows[pick][better]] = roots[pick][better]
        return best


def _symengine_has_llvm() -> bool:
    try:
        from symengine.lib.symengine_wrapper import have_llvm
    except ImportError:
        return False
    return bool(have_llvm)


def _has_elementwise_find_root() -> bool:
    try:
        from scipy.optimize.elementwise import find_root  # noqa: F401
    except ImportError:
        return False
    return True


# -- timing ----------------------------------------------------------------------------------
@dataclass
class Method:
    label: str
    run: Callable[[], np.ndarray]
    setup: str = ""
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    result: np.ndarray | None = None
    solver: VectorisedRoot | None = None

    @property
    def best(self) -> float:
        return min(self.runs)


def timed(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, float, np.ndarray]:
    """(min wall seconds, min process CPU seconds over ``repeats`` calls, the last result)."""
    best = best_cpu = np.inf
    out = None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu, out


def difference(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(max |a - b| where both are numbers, number of points where only one is NaN)."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    both = ~nan_a & ~nan_b
    diff = float(np.max(np.abs(a[both] - b[both]))) if both.any() else 0.0
    return diff, int(np.count_nonzero(nan_a != nan_b))


def bench_model(name: str, gammas: np.ndarray, args: argparse.Namespace) -> dict:
    from netderive.derivations import derive
    from netderive.runtime.session import build, resolve_model

    spec = resolve_model(name)
    start = time.perf_counter()
    b = build(spec)
    kernels = b.kernels()
    build_seconds = time.perf_counter() - start
    arg_names = kernels.KERNEL_ARGUMENTS[ITEM]
    defaults = {n: b.params[n]["default"] for n in arg_names}
    arrays = [gammas if n == GAMMA else np.full(gammas.size, float(defaults[n]))
              for n in arg_names]
    grid, grid_serial = getattr(kernels, ITEM + "_grid"), getattr(kernels, ITEM + "_grid_serial")

    start = time.perf_counter()
    grid(*arrays)
    first_parallel = time.perf_counter() - start
    start = time.perf_counter()
    grid_serial(*arrays)
    first_serial = time.perf_counter() - start

    start = time.perf_counter()
    fs = derive(spec)
    derive_seconds = time.perf_counter() - start
    if tuple(fs.arguments(ITEM)) != tuple(arg_names):
        raise RuntimeError(f"{name}: argument order of FormulaSet and kernel differ")

    threads = _numba_threads()
    methods = [
        Method(f"kernel {ITEM}_grid (prange, {threads} threads)", lambda: grid(*arrays),
               f"first call {first_parallel:.2f} s"),
        Method(f"kernel {ITEM}_grid_serial", lambda: grid_serial(*arrays),
               f"first call {first_serial:.2f} s"),
    ]
    variants = []
    if _has_elementwise_find_root():
        variants.append(("find_root", "numpy", "lambdify + numpy scan + scipy find_root"))
    variants.append(("newton", "numpy", "lambdify + numpy scan + numpy Newton-bisection"))
    if not args.no_symengine:
        try:
            import symengine  # noqa: F401
        except ImportError:
            print("  (symengine not installed: skipped)")
        else:
            refine = "find_root" if _has_elementwise_find_root() else "newton"
            backend = "LLVM" if _symengine_has_llvm() else "lambda"
            variants.append((refine, "symengine",
                             f"symengine Lambdify ({backend}) residual + {refine}"))
    for refine, residual, label in variants:
        start = time.perf_counter()
        solver = VectorisedRoot(fs, ITEM, refine=refine, residual=residual, chunk=args.chunk)
        setup = time.perf_counter() - start
        methods.append(Method(label, lambda s=solver: s(*arrays), f"setup {setup:.2f} s",
                              solver=solver))

    for _ in range(2):  # run 1, run 2: every method once per pass
        for m in methods:
            seconds, cpu, m.result = timed(m.run, args.repeats)
            m.runs.append(seconds)
            m.cpu.append(cpu)

    for m in methods:
        failures = getattr(m.solver, "failures", 0)
        if failures:
            m.setup += f"; find_root: {failures} brackets not converged"
    reference = methods[0].result
    positive = int(np.count_nonzero(reference > 0))
    gamma_c = None
    if "critical_weight_decay" in kernels.KERNEL_ARGUMENTS:
        c_args = kernels.KERNEL_ARGUMENTS["critical_weight_decay"]
        gamma_c = float(kernels.critical_weight_decay(*(float(defaults.get(
            n, b.params[n]["default"])) for n in c_args)))
    return {
        "name": name, "methods": methods, "build": build_seconds, "derive": derive_seconds,
        "rebuilt": b.rebuilt, "positive": positive, "gamma_c": gamma_c, "n": gammas.size,
    }


def _numba_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def _load() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_notes() -> list[str]:
    import numba
    import scipy
    import sympy

    try:
        import symengine

        se_version = f"symengine {symengine.__version__}"
    except ImportError:
        se_version = "symengine not installed"
    return [
        f"machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()}), "
        f"numba {numba.__version__} with {_numba_threads()} threads "
        f"(layer {numba.config.THREADING_LAYER}), SVML: "
        f"{'yes' if numba.config.USING_SVML else 'no'}",
        f"python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, sympy {sympy.__version__}, {se_version}",
    ]


def report(results: list[dict], args: argparse.Namespace) -> bool:
    ok = True
    lines = [
        "| model | method | run 1 (s) | run 2 (s) | CPU (s) | / parallel kernel | "
        "/ serial kernel | max abs diff of b* vs parallel kernel | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for res in results:
        methods = res["methods"]
        parallel, serial = methods[0], methods[1]
        for m in methods:
            diff, nan_mismatch = difference(m.result, parallel.result)
            agree = diff <= args.tolerance and nan_mismatch == 0
            ok &= agree
            diff_text = "reference" if m is parallel else f"{diff:.1e}"
            if nan_mismatch:
                diff_text += f" ({nan_mismatch} NaN mismatches)"
            if not agree:
                diff_text += " DISAGREE"
            lines.append(
                f"| {res['name']} | {m.label} | {m.runs[0]:.3f} | {m.runs[1]:.3f} | "
                f"{min(m.cpu):.3f} | "
                f"{m.best / parallel.best:.2f} | {m.best / serial.best:.2f} | {diff_text} | "
                f"{m.setup} |")
    print()
    print("\n".join(lines))
    print()
    print(f"Times: wall seconds per b*(gamma) over the whole grid, min of {args.repeats} calls "
          "in each run; CPU: process CPU seconds (all threads), min over both runs; ratios: "
          "wall time of the better run over the kernel's (ratio > 1: the kernel is faster).")
    for res in results:
        gc = "" if res["gamma_c"] is None else f", gamma_c = {res['gamma_c']:.6g}"
        print(f"{res['name']}: b* > 0 at {res['positive']} of {res['n']} gammas{gc}; build "
              f"{'(derive + codegen)' if res['rebuilt'] else '(cached)'} {res['build']:.2f} s, "
              f"sympy derive for lambdify {res['derive']:.2f} s")
    print("Notes column: 'first call' = the kernel's first call (numba compile when the build "
          "is fresh, else a load from numba's on-disk cache; the parallel kernel's first call "
          "also compiles the scalar b_star both grids share), excluded from the runs; 'setup' "
          "= lambdify / Lambdify of the formulas (the sympy derivation is listed below).")
    for note in machine_notes():
        print(note)
    print(f"load average (1, 5, 15 min) at the end: {_load()} (other processes share the cores)")
    print("agreement:", "all methods agree within "
          f"{args.tolerance:g}" if ok else "SOME METHODS DISAGREE (see DISAGREE above)")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="number of gamma values")
    parser.add_argument("--gamma-min", type=float, default=0.01)
    parser.add_argument("--gamma-max", type=float, default=0.6)
    parser.add_argument("--repeats", type=int, default=2,
                        help="calls per run (the min is reported); default 2")
    parser.add_argument("--chunk", type=int, default=2048,
                        help="rows of the (rows, scan_points + 1) numpy scan per chunk")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--tolerance", type=float, default=1e-10,
                        help="largest accepted |b* difference| between methods")
    parser.add_argument("--no-symengine", action="store_true")
    parser.add_argument("--cache-dir", help="NETDERIVE_CACHE_DIR to use (default: "
                        "$NETDERIVE_CACHE_DIR if set, else a fresh temporary directory)")
    args = parser.parse_args(argv)

    temporary = None
    if args.cache_dir:
        os.environ["NETDERIVE_CACHE_DIR"] = args.cache_dir
    elif not os.environ.get("NETDERIVE_CACHE_DIR"):
        temporary = tempfile.mkdtemp(prefix="netderive-bench-")
        os.environ["NETDERIVE_CACHE_DIR"] = temporary
    print(f"b*(gamma) benchmark, {datetime.date.today()}: {args.n} gammas in "
          f"[{args.gamma_min}, {args.gamma_max}], other parameters at their defaults; "
          f"cache {os.environ['NETDERIVE_CACHE_DIR']}")
    for note in machine_notes():
        print(note)
    print(f"load average (1, 5, 15 min) at the start: {_load()}")
    gammas = np.linspace(args.gamma_min, args.gamma_max, args.n)
    try:
        results = []
        for name in args.models:
            print(f"benchmarking {name} ...", flush=True)
            results.append(bench_model(name, gammas, args))
        ok = report(results, args)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
