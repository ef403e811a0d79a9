"""ReLU rate function I_L(r) at scattered points: the generated saddle-point kernel
(``rate_function_legendre``, Newton on the whole path) against the strongest plain
alternatives -- the reference's continuous minimisation (scipy Nelder-Mead over the inner
overlaps, bounded scalar Chernoff maximisation per layer) and the generated DP, which has to
build the whole curve (1001 points) -- and the tanh 3-D rate (``rate_function``) against the
reference's nested minimisation (L-BFGS-B over inner states, trust-region 3-D Cramer
transforms).  Each timing is run twice; the ratios are from the same run.

    python benchmarks/bench_path_saddle.py
"""

from __future__ import annotations

import math
import time

import numpy as np

from netderive.runtime.families.large_deviation import reference_sampling as tails
from netderive.runtime.session import build, resolve_model

POINTS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    relu = build(resolve_model("ld_relu_dilution"))
    values = {**relu.defaults, "p": 0.1}
    rho = math.sqrt(0.9)
    relu.call("rate_function_legendre", {**values, "q": 0.9})  # compile outside the timings
    print("ReLU dilution p = 0.1: I_L(r) at 8 points (seconds for all 8; two runs)")
    print(f"{'L':>3} {'saddle kernel':>16} {'scipy min.':>16} {'DP curve G=1001':>18} "
          f"{'scipy/saddle':>14} {'DP/saddle':>11} {'max |saddle - scipy|':>21}")
    for depth in (1, 3, 10):
        for _ in range(2):
            t_saddle, saddle = timed(lambda d=depth: [relu.call(
                "rate_function_legendre", {**values, "depth": d, "q": r}) for r in POINTS])
            t_ref, ref = timed(lambda d=depth: [tails.relu_optimal_path(rho, d, r)[1]
                                                for r in POINTS])
            args = [float({**values, "depth": depth}[a])
                    for a in relu.item("rate_function")["arguments"] if a != "q"]
            t_dp, _ = timed(lambda a=args: relu.kernels().rate_function_curves(*a))
            gap = float(np.max(np.abs(np.array(saddle) - np.array(ref))))
            print(f"{depth:3d} {t_saddle:16.4f} {t_ref:16.4f} {t_dp:18.3f} "
                  f"{t_ref / t_saddle:14.0f} {t_dp / t_saddle:11.0f} {gap:21.1e}")
    tanh = build(resolve_model("ld_tanh_dilution"))
    tv = tanh.defaults
    tanh.call("rate_function", {**tv, "q": 0.6})
    model_args = (np.tanh, rho, 0.9, float(tv["weight_variance"]))
    print("\ntanh dilution p = 0.1, sigma_w^2 = 1.5: I_L(0.6) (seconds; two runs)")
    print(f"{'L':>3} {'saddle kernel':>14} {'nested scipy':>14} {'ratio':>7} {'kernel':>10} "
          f"{'reference':>10}")
    for depth in (2, 3):
        for _ in range(2):
            t_k, k = timed(lambda d=depth: tanh.call("rate_function", {**tv, "depth": d,
                                                                       "q": 0.6}))
            t_r, r = timed(lambda d=depth: tails.generic_exact_rate(*model_args, d, 0.6))
            print(f"{depth:3d} {t_k:14.3f} {t_r:14.3f} {t_r / t_k:7.1f} {k:10.6f} {r:10.6f}")


if __name__ == "__main__":
    main()
