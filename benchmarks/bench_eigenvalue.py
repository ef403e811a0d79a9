"""lambda_max of a symmetric block: LAPACK ``eigvalsh`` against Lanczos
(codegen/algorithms/eigenvalue.py).

Picks ``EIGVALSH_MAX_SIZE``: the size above which Lanczos (to ``LANCZOS_TOLERANCE``) is faster.
The matrices are loss-Hessian-like: a Gauss-Newton part J^T J of rank n plus a small
indefinite part, the shape of K-bar_t in the expectation family.

    python benchmarks/bench_eigenvalue.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from netderive.codegen.algorithms.eigenvalue import (
    LANCZOS_MAX_ITERATIONS,
    LANCZOS_TOLERANCE,
    _symmetric_block,
    lanczos_largest_eigenvalue,
    largest_symmetric_eigenvalue,
)

SIZES = (50, 100, 200, 300, 400, 600, 800, 1200)
TRAINING_POINTS = 8


def hessian_like(size: int, rng: np.random.Generator) -> np.ndarray:
    jac = rng.standard_normal((TRAINING_POINTS, size))
    noise = rng.standard_normal((size, size)) * 0.01
    return jac.T @ jac + (noise + noise.T) / 2


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    largest_symmetric_eigenvalue(np.eye(3), 3)  # compile
    lanczos_largest_eigenvalue(np.eye(3), LANCZOS_TOLERANCE, LANCZOS_MAX_ITERATIONS)
    print(f"load average {os.getloadavg()[0]:.2f}; best of {args.repeat}")
    print(f"{'size':>6} {'eigvalsh ms':>12} {'lanczos ms':>11} {'ratio':>7} {'rel. error':>11}")
    for size in SIZES:
        a = hessian_like(size, rng)
        block = _symmetric_block(a, size)
        exact = np.linalg.eigvalsh(block)[-1]
        t_eig = best_of(lambda block=block: np.linalg.eigvalsh(block), args.repeat)
        value, converged = lanczos_largest_eigenvalue(block, LANCZOS_TOLERANCE,
                                                      LANCZOS_MAX_ITERATIONS)
        t_lan = best_of(lambda block=block: lanczos_largest_eigenvalue(
            block, LANCZOS_TOLERANCE, LANCZOS_MAX_ITERATIONS), args.repeat)
        print(f"{size:6d} {t_eig * 1e3:12.3f} {t_lan * 1e3:11.3f} {t_eig / t_lan:7.2f} "
              f"{(value - exact) / exact:11.2e}{'' if converged else ' (not converged)'}")


if __name__ == "__main__":
    main()
