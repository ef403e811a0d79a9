#!/usr/bin/env python
r"""Benchmark: b*(gamma) of isotropic deep linear nets with weight decay, netderive's generated
kernels against what a user would write instead, in one process on the same inputs.

Run from the project root::

    python benchmarks/bench_b_star.py                  # about a minute on 2 idle cores
    python benchmarks/bench_b_star.py --n 100000 1000000 --depths 2 4 8 --repeats 5

Work: b* on ``linspace(0.01, 0.6, n)`` gammas with m = |E[xy]| = 1, a = 1, s^2 = 1 (noise
variance 0), so k = s^2 a = 1: the larger positive root of P(b) = k b^(2D) - m b^(D-1) +
gamma where it beats b = 0 in the reduced loss (Ziyin, Li, Meng 2022, arXiv:2202.04777,
sections 3-4).

Compared (the competitors are the strongest plain alternatives we know; they know the
structure of this one formula, which netderive derives):

- ``netderive grid``: the bundled model at depth D, ``b_star_grid`` (``prange``) and
  ``b_star_grid_serial``, through ``netderive.load``;
- ``hand numba``: a hand-written ``@njit(parallel=True)`` Newton from b_hi = (m/k)^(1/(D+1))
  with powers by multiplication (the limit proxy), and the same kernel serial;
- ``symengine + Newton``: the formulas derived with sympy, ``symengine.Lambdify`` (LLVM
  backend when available), a vectorised Newton over the gamma array (the user without
  netderive who knows numpy);
- ``numpy Newton``: the same Newton written by hand in numpy.

Every method's b* is compared with the hand numba kernel's (max |difference|; exit status 1
above ``--tolerance``).  Each method runs twice (run 1, run 2); a run's time is the
fastest of ``--repeats`` calls.  Not a test: pytest does not collect ``bench_*.py``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence

import numba
import numpy as np

M, K = 1.0, 1.0
#: Newton stops once a step is below this (the competitors' tolerance; the kernels use a
#: relative 1e-14)
NEWTON_TOLERANCE = 1e-12
NEWTON_MAX_ITERATIONS = 100
GAMMA_RANGE = (0.01, 0.6)
WIDTH = 4


# -- the competitors ---------------------------------------------------------------------------
def hand_b_star(gammas: np.ndarray, depth: int, m: float, k: float) -> np.ndarray:
    """Hand-written Newton on P from b_hi, where P > 0 and convex: monotone convergence."""
    out = np.zeros(gammas.size)
    b_sp = ((depth - 1) * m / (2 * depth * k)) ** (1.0 / (depth + 1))
    b_hi = (m / k) ** (1.0 / (depth + 1))
    p_sp = k * b_sp ** (2 * depth) - m * b_sp ** (depth - 1)
    for i in numba.prange(gammas.size):
        g = gammas[i]
        if p_sp + g >= 0.0:
            continue
        b = b_hi
        for _ in range(NEWTON_MAX_ITERATIONS):
            bd1 = 1.0
            for _ in range(depth - 1):
                bd1 *= b  # b^(D-1)
            b2d = bd1 * bd1 * b * b  # b^(2D)
            step = (k * b2d - m * bd1 + g) * b / (2 * depth * k * b2d - (depth - 1) * m * bd1)
            b -= step
            if abs(step) < NEWTON_TOLERANCE:
                break
        b2d = b ** (2 * depth)
        if -m * m * b2d / (k * b2d + g) + g * depth * b * b < 0.0:
            out[i] = b
    return out


hand_parallel = numba.njit(parallel=True, cache=False)(hand_b_star)
hand_serial = numba.njit(cache=False)(hand_b_star)


def symengine_functions(depth: int) -> tuple[Callable, Callable, Callable, float]:
    """P, P' and the loss gain L(b) - L(0), derived with sympy and compiled by symengine."""
    import symengine as se
    import sympy as sp

    b, g = sp.symbols("b gamma", positive=True)
    poly = K * b ** (2 * depth) - M * b ** (depth - 1) + g
    gain = -M**2 * b ** (2 * depth) / (K * b ** (2 * depth) + g) + g * depth * b**2
    b_sp = float(sp.solve(sp.diff(poly, b), b)[0]) if depth > 1 else 0.0
    bs, gs = se.symbols("b gamma")
    exprs = [se.sympify(e.subs({b: bs, g: gs})) for e in (poly, sp.diff(poly, b), gain)]
    try:
        compiled = [se.Lambdify([bs, gs], [e], backend="llvm") for e in exprs]
    except (RuntimeError, ValueError, TypeError):  # symengine built without LLVM
        compiled = [se.Lambdify([bs, gs], [e]) for e in exprs]

    def wrap(f: Callable) -> Callable:
        return lambda x, y: f(np.stack(np.broadcast_arrays(x, y), -1))[..., 0]

    return (*(wrap(f) for f in compiled), b_sp)


def symengine_b_star(gammas: np.ndarray, functions: tuple, depth: int) -> np.ndarray:
    poly, slope, gain, b_sp = functions
    has = poly(np.full_like(gammas, b_sp), gammas) < 0.0
    g = gammas[has]
    b = np.full_like(g, (M / K) ** (1.0 / (depth + 1)))
    for _ in range(NEWTON_MAX_ITERATIONS):
        step = poly(b, g) / slope(b, g)
        b -= step
        if np.max(np.abs(step), initial=0.0) < NEWTON_TOLERANCE:
            break
    out = np.zeros_like(gammas)
    out[has] = np.where(gain(b, g) < 0.0, b, 0.0)
    return out


def numpy_b_star(gammas: np.ndarray, depth: int) -> np.ndarray:
    b_sp = ((depth - 1) * M / (2 * depth * K)) ** (1.0 / (depth + 1))
    has = K * b_sp ** (2 * depth) - M * b_sp ** (depth - 1) + gammas < 0.0
    g = gammas[has]
    b = np.full_like(g, (M / K) ** (1.0 / (depth + 1)))
    for _ in range(NEWTON_MAX_ITERATIONS):
        bd1 = b.copy()
        for _ in range(depth - 2):
            bd1 *= b
        b2d = bd1 * bd1 * b * b
        step = (K * b2d - M * bd1 + g) / (((2 * depth * K) * b2d - ((depth - 1) * M) * bd1) / b)
        b -= step
        if np.max(np.abs(step), initial=0.0) < NEWTON_TOLERANCE:
            break
    b2d = b ** (2 * depth)
    out = np.zeros_like(gammas)
    out[has] = np.where(-M * M * b2d / (K * b2d + g) + g * depth * b * b < 0.0, b, 0.0)
    return out


# -- timing --------------------------------------------------------------------------------------
def fastest(fn: Callable[[], np.ndarray], repeats: int, min_run: float = 0.05
            ) -> tuple[float, np.ndarray]:
    """Fastest call of ``repeats`` runs; a run repeats a short call until it lasts min_run."""
    out = fn()
    start = time.perf_counter()
    fn()
    calls = max(1, int(min_run / max(time.perf_counter() - start, 1e-9)))
    best = np.inf
    for _ in range(repeats * calls):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def cpu_load(seconds: float = 0.5) -> str:
    """The share of the CPU busy over ``seconds`` (from /proc/stat), as text."""
    def snapshot() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        return values[3] + values[4], sum(values)

    try:
        idle0, total0 = snapshot()
        time.sleep(seconds)
        idle1, total1 = snapshot()
    except OSError:
        return f"load average {os.getloadavg()[0]:.2f}"
    busy = 1.0 - (idle1 - idle0) / max(total1 - total0, 1)
    return f"CPU {busy:.0%} busy of {os.cpu_count()} cores"


def bench(depth: int, n: int, repeats: int, tolerance: float) -> tuple[list[tuple], bool]:
    import netderive

    gammas = np.linspace(*GAMMA_RANGE, n)
    model = netderive.load("weight_decay", depth=depth, widths=[WIDTH] * depth)
    kernels = model.build.kernels()
    args = kernels.KERNEL_ARGUMENTS["b_star"]
    values = {"weight_decay": gammas, "noise_variance": 0.0, "output_variance": 2.0,
              "a": 1.0, "m": 1.0}
    columns = [np.broadcast_to(np.asarray(values[a], float), (n,)).copy() for a in args]
    functions = symengine_functions(depth)
    methods = {
        "netderive grid": lambda: kernels.b_star_grid(*columns),
        "netderive serial": lambda: kernels.b_star_grid_serial(*columns),
        "hand numba": lambda: hand_parallel(gammas, depth, M, K),
        "hand numba serial": lambda: hand_serial(gammas, depth, M, K),
        "symengine + Newton": lambda: symengine_b_star(gammas, functions, depth),
        "numpy Newton": lambda: numpy_b_star(gammas, depth),
    }
    reference = hand_parallel(gammas, depth, M, K)
    rows, ok = [], True
    for run in (1, 2):
        times = {}
        for name, fn in methods.items():
            seconds, out = fastest(fn, repeats)
            difference = float(np.max(np.abs(out - reference)))
            ok &= difference <= tolerance
            times[name] = seconds
            rows.append((run, depth, n, name, seconds, difference))
        rows.append((run, depth, n, "ratios", times["netderive grid"] / times["hand numba"],
                     times["netderive serial"] / times["hand numba serial"],
                     times["symengine + Newton"] / times["netderive grid"]))
    return rows, ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=1e-10)
    args = parser.parse_args(argv)
    print(f"b*(gamma), gammas in {GAMMA_RANGE}, m = a = s^2 = 1; numba "
          f"{numba.__version__}, {numba.get_num_threads()} threads; {cpu_load()}")
    ok = True
    for depth in args.depths:
        for n in args.n:
            rows, good = bench(depth, n, args.repeats, args.tolerance)
            ok &= good
            for row in rows:
                if row[3] == "ratios":
                    print(f"run {row[0]} D={row[1]} n={row[2]:.0e}: netderive/hand "
                          f"{row[4]:.2f}x (prange), {row[5]:.2f}x (serial); "
                          f"symengine/netderive {row[6]:.1f}x")
                else:
                    print(f"run {row[0]} D={row[1]} n={row[2]:.0e} {row[3]:<20} "
                          f"{row[4] * 1e3:9.3f} ms  max|diff| {row[5]:.1e}")
    print(f"at the end: {cpu_load()}")
    if not ok:
        print("DISAGREE: a method differs from the hand kernel by more than --tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
