"""A sweep over the steps of an array program against one evaluation at the last step.

``netderive eval MODEL QUANTITY --grid step=0:T:T+1`` runs one trajectory and records the
output at every step on the way; it should cost little more than ``--set step=T`` (the issue's
bound: 1.2x).  Both go through the same path as the command line (request, constraint check,
chunked sweep), in one process, twice each, after the kernels are compiled.

    python benchmarks/bench_step_grid.py [--models expectation_tanh expectation_relu] [--steps 1000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from netderive.runtime.evaluate import make_request, sweep
from netderive.runtime.session import build, resolve_model

QUANTITY = "mean_output"


def run(b, grid: dict, fixed: dict) -> float:
    start = time.perf_counter()
    request = make_request(b, [QUANTITY], fixed, grid)
    sweep(b, request)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["expectation_tanh", "expectation_relu"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    t = args.steps
    print(f"load average {os.getloadavg()[0]:.2f}; T = {t}; best of {args.repeat}, two rounds")
    print(f"{'model':20s} {'--set step=T s':>15s} {'--grid step=0:T:T+1 s':>22s} {'ratio':>7s}")
    for name in args.models:
        b = build(resolve_model(name))
        grid = {"step": np.linspace(0, t, t + 1)}
        run(b, {}, {"step": float(t)})  # compile
        run(b, grid, {})
        for _ in range(2):
            single = min(run(b, {}, {"step": float(t)}) for _ in range(args.repeat))
            swept = min(run(b, grid, {}) for _ in range(args.repeat))
            print(f"{name:20s} {single:15.3f} {swept:22.3f} {swept / single:7.2f}")


if __name__ == "__main__":
    main()
