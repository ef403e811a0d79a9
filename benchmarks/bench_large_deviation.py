#!/usr/bin/env python
r"""Benchmark: the sign-unit rate function I_L(q) of ``ld_sign_dilution`` (Li and Saad 2020).

Run from the project root (a fixed cache keeps numba's compiled kernels between calls)::

    NETDERIVE_CACHE_DIR=/tmp/ndcache_helper3 python benchmarks/bench_large_deviation.py
    python benchmarks/bench_large_deviation.py --help

``I_L`` is the min-plus dynamic programming of the contraction principle on ``G`` points of
[-1, 1]: ``I_1(q) = J(q|q0)``, ``I_(l+1)(q) = min_q' [I_l(q') + J(q|q')]``, with the one-layer
rate ``J`` the binary relative entropy (notes, sections 4.2-4.3), then linear interpolation
at q.  The derivation found ``J = A(q) + X(q) m(q') + c(q')``, so the generated kernel
``rate_function_curves`` takes the lower envelope of lines (convex-hull trick, O(G) per
layer after one sort); ``rate_function_curves_dp`` is the plain O(G^2) DP.

Three parts, every timed method run twice (run 1, run 2: both passes over all methods;
ratios are taken within one run):

1. **grid**: ``--p-values`` x ``--q-values`` (default 100 x 1000 = 10^5) points (p, q),
   L = ``--depth`` (10), q0 = 1, G = ``--grid-size`` (1001): the generated kernels
   ``rate_function_grid`` (prange over the runs of points that share (p, L, q0, G): one curve
   per p) and ``rate_function_grid_serial``; ``rate_function_curves_dp`` called per p; and the
   plain alternatives built from the same sympy formulas with ``sympy.lambdify``: the O(G^2)
   DP in numpy (the G x G matrix J(x_i|x_j) at once by broadcasting, one add + min over an
   axis per layer), and the same envelope idea with numpy + scipy (the lower convex hull of
   the points (m_j, c_j + I_l(x_j)) by qhull, ``scipy.spatial.ConvexHull``, and
   ``np.searchsorted`` of all queries on its edge slopes).  All results are compared with the
   parallel kernel (max |difference|); prange vs serial kernel with wall and process CPU time.
2. **scaling**: one curve (p = 0.1), envelope vs DP for G = 501 ... 4001, kernels and numpy.
3. **sampling at equal accuracy**: the accuracy ``--accuracy`` (1e-3, absolute, in I_L(q)
   at the ``--q-points``) reached by the kernel (smallest G) and by the finite-N estimates:
   the exact finite-N binomial chain (``runtime.families.large_deviation.reference``, log space) at
   N = ``--chain-n``, with the raw estimate ``-ln P_N(q)/N``, the same minus ``ln(N)/(2N)``
   and ``-ln[P_N(q)/max P_N]/N``; Monte Carlo costs from measured per-sample times
   (full networks by ``sample_overlaps``, and the Gaussian-level chain by binomial draws)
   times the number of samples a binomial proportion needs.  The reference I_L(q) is the
   kernel at G = 20001 (checked against G = 10001).

Not a test: pytest does not collect ``bench_*.py`` files.  Unless ``NETDERIVE_CACHE_DIR`` is
set (or ``--cache-dir`` given) the build goes to a fresh temporary directory, deleted at the
end, so the first-call times are real numba compiles.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import numpy as np

MODEL = "ld_sign_dilution"
ITEM = "rate_function"
REFERENCE_GRID = 20001  # the largest grid_size the model allows
CHECK_GRID = 10001
KERNEL_GRIDS = (11, 21, 31, 41, 51, 61, 81, 101, 151, 201, 401, 1001)


# -- timing --------------------------------------------------------------------------------
def timed(fn: Callable[[], object], budget: float, max_calls: int = 200
          ) -> tuple[float, float, object]:
    """(min wall seconds, min process CPU seconds per call, last result).

    Calls ``fn`` at least once and then again while the total stays below ``budget`` seconds.
    """
    best = best_cpu = math.inf
    total, calls, out = 0.0, 0, None
    while calls == 0 or (total < budget and calls < max_calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - start
        best, best_cpu = min(best, wall), min(best_cpu, time.process_time() - start_cpu)
        total += wall
        calls += 1
    return best, best_cpu, out


def first_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


#: Largest accepted |difference| between two methods of the same quantity.
TOLERANCE = 1e-9
DISAGREEMENTS: list[str] = []


def max_diff(a: np.ndarray, b: np.ndarray, what: str = "") -> str:
    """max |a - b| where both are finite, and the count of finite/non-finite mismatches.

    Appends to :data:`DISAGREEMENTS` (and to the text) when a difference exceeds
    :data:`TOLERANCE` or the non-finite points differ.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    inf_a, inf_b = ~np.isfinite(a), ~np.isfinite(b)
    both = ~(inf_a | inf_b)
    value = float(np.max(np.abs(a - b), where=both, initial=0.0))
    text = f"{value:.1e}"
    mismatches = int(np.count_nonzero(inf_a != inf_b))
    if mismatches:
        text += f" ({mismatches} inf/NaN mismatches)"
    if value > TOLERANCE or mismatches:
        text += " DISAGREE"
        DISAGREEMENTS.append(f"{what}: {text}")
    return text


def seconds(t: float) -> str:
    if not math.isfinite(t) or t >= 1e5:
        return f"{t:.1e}"
    if t >= 100:
        return f"{t:.0f}"
    if t >= 1:
        return f"{t:.2f}"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} us"


# -- the plain alternative: lambdified formulas + numpy / scipy ------------------------------
def inline_formulas(fs, expr):
    """``expr`` with every Formula item's symbol replaced by its expression."""
    import sympy as sp

    from netderive.derivations.ir import Formula, item_symbol

    formulas = {item_symbol(i.name): i.expr for i in fs.items if isinstance(i, Formula)}
    expr = sp.sympify(expr)
    for _ in range(len(fs.items) + 1):
        new = expr.xreplace(formulas)
        if new == expr:
            break
        expr = new
    return expr


def _full(value, shape) -> np.ndarray:
    """A float array of ``shape`` (lambdified constants come back as scalars)."""
    return np.broadcast_to(np.asarray(value, dtype=float), shape).astype(float)


class NumpyRate:
    """I_L(q) curves from ``sympy.lambdify(modules="numpy", cse=True)`` of the derived J.

    ``curves_dp``: the G x G matrix J at once (broadcasting), per layer one add and one min
    over an axis (O(G^2) time and memory).  ``curves_envelope``: the derived line form
    J = A(q) + X(q) m(q') + c(q'); per layer the lower convex hull of the points
    (m_j, c_j + I_l(x_j)) by qhull (``scipy.spatial.ConvexHull``), then every query X(x_i)
    located on the hull's edge slopes with ``np.searchsorted`` (O(G log G), vectorised).
    """

    def __init__(self, fs) -> None:
        import sympy as sp
        from scipy.spatial import ConvexHull

        self._hull = ConvexHull
        item = fs.item(ITEM)
        q, qp = item.variable, item.previous
        p = fs.param("p").symbol
        rate = inline_formulas(fs, item.step_rate)
        extra = rate.free_symbols - {q, qp, p}
        if extra:
            raise NotImplementedError(f"J depends on {sorted(map(str, extra))}")
        lam = sp.lambdify
        self.rate = lam((q, qp, p), rate, modules="numpy", cse=True)
        offset, abscissa, slope, intercept = (inline_formulas(fs, e) for e in item.envelope)
        self.offset_abscissa = lam((q, p), [offset, abscissa], modules="numpy", cse=True)
        self.lines = lam((qp, p), [slope, intercept], modules="numpy", cse=True)
        self.lower, self.upper = float(item.lower), float(item.upper)

    def _first(self, p: float, q0: float, grid_size: int, depth: int):
        x = np.linspace(self.lower, self.upper, grid_size)
        curves = np.empty((depth, grid_size))
        with np.errstate(divide="ignore", invalid="ignore"):
            first = _full(self.rate(x, q0, p), x.shape)
        curves[0] = np.where(np.isnan(first), np.inf, first)
        return x, curves

    def curves_dp(self, p: float, depth: int, q0: float, grid_size: int):
        x, curves = self._first(p, q0, grid_size, depth)
        if depth > 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = _full(self.rate(x[:, None], x[None, :], p), (grid_size, grid_size))
            rate[np.isnan(rate)] = np.inf  # NaN counts as +inf, as in the kernel
            work = np.empty_like(rate)
            for layer in range(1, depth):
                np.add(rate, curves[layer - 1][None, :], out=work)
                np.min(work, axis=1, out=curves[layer])
        return x, curves

    def curves_envelope(self, p: float, depth: int, q0: float, grid_size: int):
        x, curves = self._first(p, q0, grid_size, depth)
        with np.errstate(divide="ignore", invalid="ignore"):
            offset, abscissa = (_full(v, x.shape) for v in self.offset_abscissa(x, p))
            slope, intercept = (_full(v, x.shape) for v in self.lines(x, p))
        for layer in range(1, depth):
            level = intercept + curves[layer - 1]
            ok = np.isfinite(slope) & np.isfinite(level)
            points = np.column_stack((slope[ok], level[ok]))
            hull = self._hull(points)
            lower = hull.equations[:, 1] < 0.0  # facets whose outward normal points down
            vertices = np.unique(hull.simplices[lower])
            vertices = vertices[np.argsort(points[vertices, 0])]
            m, b = points[vertices, 0], points[vertices, 1]
            # vertex k is the minimum for -X in [s_(k-1), s_k], s = the edge slopes
            k = np.searchsorted(np.diff(b) / np.diff(m), -abscissa)
            curves[layer] = offset + m[k] * abscissa + b[k]
        return x, curves


def interpolate(x: np.ndarray, row: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The kernels' linear interpolation on the grid (+inf outside it)."""
    out = np.interp(q, x, row)
    out[(q < x[0]) | (q > x[-1])] = np.inf
    return out


def on_grid(curves: Callable, p_values: np.ndarray, q_values: np.ndarray, depth: int,
            grid_size: int) -> np.ndarray:
    """I_L at every (p, q) of the product grid (p-major), one curve per p."""
    out = np.empty((p_values.size, q_values.size))
    for r, p in enumerate(p_values):
        x, rows = curves(float(p), depth, 1.0, grid_size)
        out[r] = interpolate(x, rows[-1], q_values)
    return out.ravel()


# -- environment -------------------------------------------------------------------------------
def _load() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_notes() -> list[str]:
    import numba
    import scipy
    import sympy

    return [
        f"machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()}), "
        f"numba {numba.__version__} with {numba.config.NUMBA_NUM_THREADS} threads "
        f"(layer {numba.config.THREADING_LAYER}), SVML: "
        f"{'yes' if numba.config.USING_SVML else 'no'}",
        f"python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, sympy {sympy.__version__}",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], notes: bool = False) -> None:
    """A markdown table; first column (and the last with ``notes``) left-aligned."""
    align = ["---"] + ["---:"] * (len(header) - 1)
    if notes:
        align[-1] = "---"
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(align) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


# -- part 1: the grid of (p, q) points ---------------------------------------------------
def part_grid(k, numpy_rate: NumpyRate, args, setup: dict) -> None:
    p_values = np.linspace(args.p_min, args.p_max, args.p_values)
    q_values = np.linspace(-1.0, 1.0, args.q_values)
    n = p_values.size * q_values.size
    depth, size = args.depth, args.grid_size
    grid_args = (np.repeat(p_values, q_values.size), np.full(n, float(depth)), np.full(n, 1.0),
                 np.tile(q_values, p_values.size), np.full(n, float(size)))

    methods: list[tuple[str, Callable[[], np.ndarray], str]] = [
        ("kernel rate_function_grid (prange, envelope)", lambda: k.rate_function_grid(*grid_args),
         f"first call {setup['grid']:.2f} s"),
        ("kernel rate_function_grid_serial (envelope)",
         lambda: k.rate_function_grid_serial(*grid_args),
         f"first call {setup['grid_serial']:.2f} s"),
        ("kernel rate_function_curves_dp per p + np.interp (O(G^2) DP)",
         lambda: on_grid(k.rate_function_curves_dp, p_values, q_values, depth, size),
         f"first call {setup['curves_dp']:.2f} s"),
        ("lambdify + numpy O(G^2) DP (G x G matrix, min per layer)",
         lambda: on_grid(numpy_rate.curves_dp, p_values, q_values, depth, size),
         f"setup {setup['lambdify']:.2f} s"),
        ("lambdify + numpy/scipy envelope (qhull lower hull + searchsorted)",
         lambda: on_grid(numpy_rate.curves_envelope, p_values, q_values, depth, size),
         "same lambdify"),
    ]
    print(f"## 1. Grid: {p_values.size} p in [{args.p_min}, {args.p_max}] x {q_values.size} q "
          f"in [-1, 1] = {n} points, L = {depth}, q0 = 1, grid_size G = {size}\n", flush=True)
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in methods}
    results: dict[str, np.ndarray] = {}
    for _ in range(2):
        for label, fn, _ in methods:
            wall, cpu, results[label] = timed(fn, args.budget)
            runs[label].append((wall, cpu))
    labels = [m[0] for m in methods]
    par, ser = labels[0], labels[1]
    rows = []
    for label, _, note in methods:
        r = runs[label]
        rows.append([
            label, f"{r[0][0]:.4f}", f"{r[1][0]:.4f}", f"{r[0][1]:.4f}", f"{r[1][1]:.4f}",
            f"{r[0][0] / runs[par][0][0]:.2f} / {r[1][0] / runs[par][1][0]:.2f}",
            f"{r[0][0] / runs[ser][0][0]:.2f} / {r[1][0] / runs[ser][1][0]:.2f}",
            "reference" if label == par else max_diff(results[label], results[par], label),
            note])
    table(["method", "run 1 (s)", "run 2 (s)", "CPU run 1 (s)", "CPU run 2 (s)",
           "/ prange kernel (run 1 / run 2)", "/ serial kernel (run 1 / run 2)",
           "max abs diff vs prange kernel", "notes"], rows, notes=True)
    ref = results[par]
    print(f"I_L over the grid: min {np.min(ref):.4g}, max {np.max(ref):.4g}, "
          f"{int(np.count_nonzero(~np.isfinite(ref)))} non-finite; time = wall seconds for "
          f"all {n} points, min over calls within {args.budget} s per method and run; CPU = "
          "process CPU seconds (all threads) of that call; ratios within one run (> 1: slower "
          "than the kernel).\n")


# -- part 2: envelope vs DP, scaling with G ---------------------------------------------------
def part_scaling(k, numpy_rate: NumpyRate, args) -> None:
    p, depth = args.p, args.depth
    sizes = args.scaling_sizes
    print(f"## 2. One curve I_1..I_L (p = {p}, L = {depth}, q0 = 1): envelope (convex-hull "
          "trick) vs O(G^2) DP\n", flush=True)
    methods = {
        "kernel envelope": k.rate_function_curves,
        "kernel DP": k.rate_function_curves_dp,
        "numpy DP": numpy_rate.curves_dp,
        "numpy/qhull envelope": numpy_rate.curves_envelope,
    }
    times: dict[tuple[str, int], list[float]] = {}
    curves: dict[tuple[str, int], np.ndarray] = {}
    for _ in range(2):
        for size in sizes:
            for name, fn in methods.items():
                if name == "kernel DP" and size > args.dp_max_grid:
                    continue
                wall, _, (_, rows) = timed(lambda f=fn, g=size: f(p, depth, 1.0, g), args.budget)
                times.setdefault((name, size), []).append(wall)
                curves[(name, size)] = rows
    out = []
    for size in sizes:
        env = times[("kernel envelope", size)]
        dp = times.get(("kernel DP", size), [math.nan, math.nan])
        ndp, nenv = times[("numpy DP", size)], times[("numpy/qhull envelope", size)]
        ref = curves[("kernel envelope", size)]
        dp_diff = (max_diff(curves[("kernel DP", size)], ref, f"kernel DP, G = {size}")
                   if ("kernel DP", size) in curves else "skipped")
        out.append([
            str(size), f"{seconds(env[0])} / {seconds(env[1])}",
            f"{seconds(dp[0])} / {seconds(dp[1])}",
            f"{dp[0] / env[0]:.0f} / {dp[1] / env[1]:.0f}",
            f"{seconds(ndp[0])} / {seconds(ndp[1])}",
            f"{ndp[0] / env[0]:.0f} / {ndp[1] / env[1]:.0f}",
            f"{seconds(nenv[0])} / {seconds(nenv[1])}",
            f"{nenv[0] / env[0]:.0f} / {nenv[1] / env[1]:.0f}",
            dp_diff,
            f"{max_diff(curves[('numpy DP', size)], ref, f'numpy DP, G = {size}')} / "
            f"{max_diff(curves[('numpy/qhull envelope', size)], ref, f'qhull, G = {size}')}",
        ])
    table(["G", "kernel envelope (run 1 / run 2)", "kernel DP", "DP / envelope",
           "numpy DP", "numpy DP / kernel envelope", "numpy/qhull envelope",
           "qhull / kernel envelope", "max abs diff kernel DP vs envelope (all L rows)",
           "max abs diff numpy DP / qhull vs kernel envelope"], out)
    from netderive.codegen.algorithms.min_plus import DP_MATRIX_LIMIT

    print("Times per curve (all L rows, wall, min over calls within "
          f"{args.budget} s); ratios within one run.  The generated DP tabulates J in a G x G "
          f"matrix only for G <= {DP_MATRIX_LIMIT} (DP_MATRIX_LIMIT) and re-evaluates J "
          "(asin, logs) inside the loop above that.\n")


# -- part 3: equal accuracy against the finite-N estimates -------------------------------------
def part_sampling(k, args) -> None:
    from netderive.runtime.families.large_deviation.reference import (
        binomial_chain_distribution,
        sample_overlaps,
    )

    p, depth, delta = args.p, args.depth, args.accuracy
    qs = np.asarray(args.q_points, dtype=float)
    rho = float(k.weight_correlation(p))
    print(f"## 3. Equal accuracy: |estimate - I_L(q)| <= {delta:g} at q = "
          f"{', '.join(f'{v:g}' for v in qs)} (p = {p}, rho = {rho:.6f}, L = {depth}, q0 = 1)\n",
          flush=True)

    def kernel_at(size: int) -> np.ndarray:
        x, rows = k.rate_function_curves(p, depth, 1.0, size)
        return interpolate(x, rows[-1], qs)

    reference = kernel_at(REFERENCE_GRID)
    check = float(np.max(np.abs(kernel_at(CHECK_GRID) - reference)))
    typical = float(k.typical_overlap(p, depth, 1.0))
    print(f"reference I_L(q) (kernel, G = {REFERENCE_GRID}): "
          + ", ".join(f"{v:.7f}" for v in reference)
          + f"; max |G = {CHECK_GRID} - G = {REFERENCE_GRID}| = {check:.1e}; typical q_L = "
          f"{typical:.6f}\n")

    # the kernel: error and time of one curve (+ interpolation at the q points) per G
    n_q = qs.size
    point_args = (np.full(n_q, p), np.full(n_q, float(depth)), np.full(n_q, 1.0), qs)
    errors = {size: float(np.max(np.abs(kernel_at(size) - reference))) for size in KERNEL_GRIDS}
    kernel_times: dict[int, list[float]] = {size: [] for size in KERNEL_GRIDS}
    for _ in range(2):
        for size in KERNEL_GRIDS:
            kernel_times[size].append(timed(lambda g=size: k.rate_function_grid_serial(
                *point_args, np.full(n_q, float(g))), args.budget / 4)[0])
    # the smallest G from which on every G of the ladder meets the accuracy (the error is not
    # monotone in G on coarse grids)
    kernel_size = next((size for i, size in enumerate(KERNEL_GRIDS)
                        if all(errors[g] <= delta for g in KERNEL_GRIDS[i:])), None)
    table(["kernel G", "max abs error at the q points", "time: one curve + interpolation "
           "(rate_function_grid_serial, run 1 / run 2)"],
          [[str(size), f"{errors[size]:.1e}", " / ".join(seconds(t) for t in kernel_times[size])]
           for size in KERNEL_GRIDS])

    # the exact finite-N chain (Gaussian level), log space
    chain_errors, chain_times, chain_logp = {}, {}, {}
    lattice = {}
    for n in args.chain_n:
        ks = (qs + 1.0) * n / 2.0
        if np.any(np.abs(ks - np.rint(ks)) > 1e-9):
            raise SystemExit(f"--chain-n {n}: some q points are not on the lattice 2k/N - 1")
        lattice[n] = np.rint(ks).astype(int)
    for _ in range(2):
        for n in args.chain_n:
            start = time.perf_counter()
            _, logp = binomial_chain_distribution(rho, depth, n, 1.0, log_probability=True)
            chain_times.setdefault(n, []).append(time.perf_counter() - start)
            chain_logp[n], chain_max = logp[lattice[n]], float(np.max(logp))
            print(f"  chain N = {n}: {chain_times[n][-1]:.2f} s", flush=True)
            raw = -chain_logp[n] / n
            estimates = {"raw": raw, "corrected": raw - math.log(n) / (2 * n),
                         "relative": -(chain_logp[n] - chain_max) / n}
            chain_errors[n] = {name: e - reference for name, e in estimates.items()}
    print()
    table(["chain N", "time (run 1 / run 2)", "max abs error: -ln P_N(q)/N",
           "- ln(N)/(2N) subtracted", "-ln[P_N(q)/max P_N]/N"],
          [[str(n), " / ".join(seconds(t) for t in chain_times[n]),
            *(f"{np.max(np.abs(chain_errors[n][name])):.1e}"
              for name in ("raw", "corrected", "relative"))] for n in args.chain_n])
    if len(args.chain_n) >= 2:
        a, b = args.chain_n[-2:]
        rich = {name: (b * chain_errors[b][name] - a * chain_errors[a][name]) / (b - a)
                for name in ("corrected", "relative")}  # errors ~ C(q)/N: Richardson in 1/N
        print(f"Richardson extrapolation in 1/N from N = {a}, {b} (the chain as an independent "
              "check of the kernel): max |extrapolated - kernel| = "
              f"{np.max(np.abs(rich['corrected'])):.1e} (corrected), "
              f"{np.max(np.abs(rich['relative'])):.1e} (relative)\n")

    def needed(name: str) -> tuple[int, list[float], bool]:
        """(N, seconds per run, measured): the smallest measured N from which on the estimate
        meets the accuracy, else extrapolated with err ~ (a ln N + b)/N fitted to the two
        largest N and the cost scaled by N^2 from the largest measured N."""
        ladder = args.chain_n
        for i, n in enumerate(ladder):
            if all(np.max(np.abs(chain_errors[m][name])) <= delta for m in ladder[i:]):
                return n, chain_times[n], True
        n1, n2 = ladder[-2:]
        e1, e2 = n1 * chain_errors[n1][name], n2 * chain_errors[n2][name]
        slope = (e2 - e1) / math.log(n2 / n1)
        n = float(n2)
        while np.max(np.abs(slope * math.log(n / n2) + e2)) / n > delta and n < 1e9:
            n *= 1.01
        return int(math.ceil(n)), [t * (n / n2) ** 2 for t in chain_times[n2]], False

    def per_run(costs: Sequence[float]) -> tuple[str, str]:
        """'run 1 / run 2' texts of the costs and of their ratios to the kernel's, run by run."""
        return (" / ".join(seconds(c) for c in costs),
                " / ".join(f"{c / k:.1e}" for c, k in zip(costs, kernel_cost, strict=True)))

    if kernel_size is None:
        print(f"no kernel G in {KERNEL_GRIDS} meets {delta:g}\n")
        return
    kernel_cost = kernel_times[kernel_size]
    rows = [[f"kernel rate_function (envelope), G = {kernel_size}",
             f"G = {kernel_size} (max error {errors[kernel_size]:.1e})", per_run(kernel_cost)[0],
             "1", "grid error only; one curve gives every q (and every layer)"]]
    for name, text in (("raw", "-ln P_N(q)/N"), ("corrected", "-ln P_N(q)/N - ln(N)/(2N)"),
                       ("relative", "-ln[P_N(q)/max P_N]/N")):
        n, costs, measured = needed(name)
        cost_text, ratio_text = per_run(costs)
        rows.append([f"exact binomial chain, {text}",
                     f"N = {n}" + ("" if measured else " (extrapolated)"),
                     cost_text + ("" if measured else " (N^2 scaled)"), ratio_text,
                     "finite-N bias only (no sampling noise); all q from one chain"])
    table(["method", f"what {delta:g} needs", "cost (s, run 1 / run 2)",
           "/ kernel (run 1 / run 2)", "notes"], rows, notes=True)

    # Monte Carlo at the N where the corrected estimator's bias is <= delta: M samples give a
    # standard error delta of -ln(P_hat)/N (binomial proportion, delta method)
    n_mc, _, measured = needed("corrected")
    if not measured:
        return
    rng = np.random.default_rng(1)
    draws = 100_000
    per_network, per_draw = [], []
    for _ in range(2):
        start = time.perf_counter()
        sample_overlaps("sign", "dilution", p, depth, args.mc_width, args.mc_networks, rng)
        per_network.append((time.perf_counter() - start) / args.mc_networks)
        start = time.perf_counter()  # the Gaussian-level chain sampled: L binomial draws
        q = np.ones(draws)
        for _ in range(depth):
            mu = (2.0 / np.pi) * np.arcsin(np.clip(rho * q, -1.0, 1.0))
            q = 2.0 * rng.binomial(n_mc, (1.0 + mu) / 2.0) / n_mc - 1.0
        per_draw.append((time.perf_counter() - start) / draws)
    per_net = [t * (n_mc / args.mc_width) ** 2 for t in per_network]
    prob = np.exp(chain_logp[n_mc])
    samples = (1.0 - prob) / (prob * (n_mc * delta) ** 2)
    rows = []
    for q, value, pr, m in zip(qs, reference, prob, samples, strict=True):
        rows.append([f"{q:g}", f"{value:.5f}", f"{pr:.2e}", f"{m:.2g}",
                     *per_run([m * t for t in per_net]), *per_run([m * t for t in per_draw])])
    table(["q", "I_L(q)", f"P_N(q), N = {n_mc}", "samples M", "full networks (s)", "/ kernel",
           "Gaussian-level chain sampler (s)", "/ kernel"], rows)
    print(f"Monte Carlo at N = {n_mc}: M = (1 - P)/(P (N delta)^2) samples so that the standard "
          "error of -ln(P_hat)/N is delta, P = the chain's exact lattice probability P_N(q); "
          "with the bias (<= delta) the total error is up to 2 delta, so these costs are lower "
          f"bounds.  Full networks (sample_overlaps): {per_network[0] * 1e3:.1f} / "
          f"{per_network[1] * 1e3:.1f} ms per pair (run 1 / run 2) measured at N = "
          f"{args.mc_width} ({args.mc_networks} pairs, L = {depth}), scaled by N^2 to "
          f"{per_net[0] * 1e3:.0f} / {per_net[1] * 1e3:.0f} ms; Gaussian-level chain: "
          f"{per_draw[0] * 1e6:.2f} / {per_draw[1] * 1e6:.2f} us per sample ({draws} samples).  "
          "Costs and ratios run by run (run 1 / run 2).\n")


# -- main ----------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--p-values", type=int, default=100)
    parser.add_argument("--q-values", type=int, default=1000)
    parser.add_argument("--p-min", type=float, default=0.01)
    parser.add_argument("--p-max", type=float, default=0.5)
    parser.add_argument("--depth", type=int, default=10, help="L (default 10)")
    parser.add_argument("--grid-size", type=int, default=1001, help="G of part 1")
    parser.add_argument("--p", type=float, default=0.1, help="p of parts 2 and 4")
    parser.add_argument("--scaling-sizes", type=int, nargs="+", default=[501, 1001, 2001, 4001])
    parser.add_argument("--dp-max-grid", type=int, default=4001,
                        help="skip the kernel DP above this G (it re-evaluates J above "
                        "DP_MATRIX_LIMIT)")
    parser.add_argument("--accuracy", type=float, default=1e-3)
    parser.add_argument("--q-points", type=float, nargs="+", default=[-0.5, 0.0, 0.25, 0.5, 0.9])
    parser.add_argument("--chain-n", type=int, nargs="+",
                        default=[200, 400, 800, 1600, 2400, 3200, 4800],
                        help="N of the binomial chain (q points must be on its lattice)")
    parser.add_argument("--mc-width", type=int, default=400)
    parser.add_argument("--mc-networks", type=int, default=20)
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of repeated calls per timing (min reported)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["grid", "scaling", "sampling"])
    parser.add_argument("--cache-dir", help="NETDERIVE_CACHE_DIR to use (default: "
                        "$NETDERIVE_CACHE_DIR if set, else a fresh temporary directory)")
    args = parser.parse_args(argv)

    temporary = None
    if args.cache_dir:
        os.environ["NETDERIVE_CACHE_DIR"] = args.cache_dir
    elif not os.environ.get("NETDERIVE_CACHE_DIR"):
        temporary = tempfile.mkdtemp(prefix="netderive-bench-")
        os.environ["NETDERIVE_CACHE_DIR"] = temporary
    print(f"# Rate-function benchmark ({MODEL}), {datetime.datetime.now():%Y-%m-%d %H:%M}; "
          f"cache {os.environ['NETDERIVE_CACHE_DIR']}\n")
    for note in machine_notes():
        print(note)
    print(f"load average (1, 5, 15 min) at the start: {_load()}\n", flush=True)
    try:
        from netderive.derivations import derive
        from netderive.runtime.session import build, resolve_model

        spec = resolve_model(MODEL, cross_checks=True)
        start = time.perf_counter()
        b = build(spec)
        k = b.kernels()
        build_seconds = time.perf_counter() - start
        if tuple(k.KERNEL_ARGUMENTS[ITEM]) != ("p", "depth", "input_overlap", "q", "grid_size"):
            raise RuntimeError(f"unexpected arguments {k.KERNEL_ARGUMENTS[ITEM]}")
        one = (np.array([0.1]), np.array([3.0]), np.array([1.0]), np.array([0.5]),
               np.array([101.0]))
        setup = {
            "curves": first_call(lambda: k.rate_function_curves(0.1, 3, 1.0, 101)),
            "curves_dp": first_call(lambda: k.rate_function_curves_dp(0.1, 3, 1.0, 101)),
            "grid": first_call(lambda: k.rate_function_grid(*one)),
            "grid_serial": first_call(lambda: k.rate_function_grid_serial(*one)),
        }
        start = time.perf_counter()
        fs = derive(spec)
        derive_seconds = time.perf_counter() - start
        start = time.perf_counter()
        numpy_rate = NumpyRate(fs)
        numpy_rate.curves_dp(0.1, 3, 1.0, 11)  # warm up (first calls of the lambdified code)
        numpy_rate.curves_envelope(0.1, 3, 1.0, 11)
        setup["lambdify"] = time.perf_counter() - start
        print(f"build {'(derive + codegen)' if b.rebuilt else '(cached)'} {build_seconds:.2f} s; "
              "first calls (compile or load from numba's cache): "
              + ", ".join(f"{name} {t:.2f} s" for name, t in setup.items() if name != "lambdify")
              + f"; sympy derive for lambdify {derive_seconds:.2f} s, lambdify "
              f"{setup['lambdify']:.2f} s\n", flush=True)
        if "grid" not in args.skip:
            part_grid(k, numpy_rate, args, setup)
        if "scaling" not in args.skip:
            part_scaling(k, numpy_rate, args)
        if "sampling" not in args.skip:
            part_sampling(k, args)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    print(f"load average (1, 5, 15 min) at the end: {_load()} (other processes share the cores)")
    if DISAGREEMENTS:
        print(f"DISAGREEMENTS (tolerance {TOLERANCE:g}):\n  " + "\n  ".join(DISAGREEMENTS))
        return 1
    print(f"agreement: all methods agree within {TOLERANCE:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
