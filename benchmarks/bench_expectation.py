#!/usr/bin/env python
r"""Benchmark: the expectation recursions of noisy gradient descent (Borovykh 2019).

Run from the project root::

    NETDERIVE_CACHE_DIR=/tmp/ndcache_bench python benchmarks/bench_expectation.py [--quick]

Networks: one hidden tanh layer of width w (2 inputs, 4 training and 2 test points, seeded
weights), P = 4w weights; the quantity is E f_t(x_*) after T noisy steps (eta = 0.02,
sigma = 0.2).  Every timed method runs twice (run 1, run 2); ratios are within one run.

1. **kernel vs numpy**, order 2 (Gaussian closure, O(n P^3) per step) and order 1 (output
   space), T = 100, w = 4 ... 64: the generated kernel (``mean_output``, compiled and cached)
   against the strongest plain alternative: the jets J, H by explicit symbolic
   differentiation of f(x; w) with symengine, evaluated by ``symengine.Lambdify`` (numpy
   backend), and the one-step map as vectorised numpy (``einsum``/``@``: BLAS).  The jet
   derivation is not timed for the numpy route (it is part 4); its evaluation is.
2. **steps**: T = 10, 100, 1000 at w = 16 (P = 64), kernel and numpy.
3. **Monte Carlo at equal accuracy** (case A, ``models/expectation_tanh.toml``, t = 10):
   the accuracy is order 2's own error |E f_pred - E f_true| at x_*1 (E f_true from a Monte
   Carlo of 4e5 paths); the paths a Monte Carlo needs to reach a standard error equal to
   it, times its measured cost per path (antithetic pairs), against one kernel call.
4. **derivation time** of the jets for w = 4 ... 64: netderive's layer-wise loop
   statements (``derive``, independent of P) against explicit gradients and Hessians of
   f(x; w) with sympy and with symengine (per training point; sympy capped at
   ``--sympy-cap`` seconds, the rest extrapolated from the measured time per entry).

Not a test: pytest does not collect ``bench_*.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

X = [[-1.0, 0.5], [0.0, -1.0], [1.0, 1.0], [0.5, -0.5], [0.3, 0.8], [-0.8, -0.6]]
Y = [-1.35, -0.07, 1.43, 1.12]
ETA, SIGMA = 0.02, 0.2


def model(width: int, order: int, steps: int = 100) -> dict:
    return {"family": "expectation", "activation": "tanh(x)", "widths": [width],
            "learning_rate": ETA, "noise_std": SIGMA, "order": order, "steps": steps,
            "data": {"train_inputs": X[:4], "train_targets": Y, "test_inputs": X[4:]},
            "init": {"seed": 1}}


def best_of(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


# -- the plain alternative: symbolic jets (symengine), Lambdify, numpy recursion ----------
def symbolic_network(width: int):
    """f(x; w) = sum_i v_i tanh(W_i . x + b_i) with P = 4w weight symbols (notes' order)."""
    import symengine as se

    W = [[se.Symbol(f"W_{i}_{j}") for j in range(2)] for i in range(width)]
    b = [se.Symbol(f"b_{i}") for i in range(width)]
    v = [se.Symbol(f"v_{i}") for i in range(width)]
    weights = [s for row in W for s in row] + b + v
    x = [se.Symbol("x0"), se.Symbol("x1")]
    f = sum(v[i] * se.tanh(W[i][0] * x[0] + W[i][1] * x[1] + b[i]) for i in range(width))
    return f, weights, x


def jets_symengine(width: int):
    """Gradient and Hessian expressions of f in the weights (symengine), and a Lambdify of
    (f, J, H) over (weights, x)."""
    import symengine as se

    f, weights, x = symbolic_network(width)
    grad = [f.diff(w) for w in weights]
    hess = [[grad[p].diff(weights[q]) for q in range(len(weights))]
            for p in range(len(weights))]
    exprs = [f, *grad, *[h for row in hess for h in row]]
    return se.Lambdify([*weights, *x], exprs), weights


def numpy_order2(jet_fn, w0: np.ndarray, steps: int, s: float) -> float:
    """E f_T(x_*1) by the order-2 Gaussian-closure map in numpy (notes section 6)."""
    P = w0.size
    rows = [np.asarray(jet_fn([*w0, *x]), dtype=float).ravel() for x in X]
    f0 = np.array([r[0] for r in rows])
    J = np.array([r[1:1 + P] for r in rows])
    H = np.array([r[1 + P:].reshape(P, P) for r in rows])
    n = 4
    Jt, Ht, r0 = J[:n], H[:n], f0[:n] - np.array(Y)
    m, S = np.zeros(P), np.zeros((P, P))
    eye = np.eye(P)
    for _ in range(steps):
        a = Jt + np.einsum("ipq,q->ip", Ht, m)
        HS = Ht @ S
        rho = r0 + Jt @ m + 0.5 * np.einsum("p,ipq,q->i", m, Ht, m) + 0.5 * np.trace(
            HS, axis1=1, axis2=2)
        g = rho @ a + np.einsum("ipr,ir->p", HS, a)
        K = a.T @ a + np.einsum("i,ipq->pq", rho, Ht) + np.einsum("ipr,irq->pq", HS, Ht)
        B = eye - ETA * K
        m = m - ETA * g
        S = B @ S @ B.T + s**2 * eye
        S = 0.5 * (S + S.T)
    x = n
    return float(f0[x] + J[x] @ m + 0.5 * m @ H[x] @ m + 0.5 * np.trace(H[x] @ S))


def numpy_order1(jet_fn, w0: np.ndarray, steps: int, s: float) -> float:
    """E f_T(x_*1) by the order-1 map in output space (notes section 3.3)."""
    P = w0.size
    rows = [np.asarray(jet_fn([*w0, *x]), dtype=float).ravel() for x in X]
    f0 = np.array([r[0] for r in rows])
    J = np.array([r[1:1 + P] for r in rows])
    theta = J @ J.T
    n = 4
    M = np.eye(len(X))
    M[:, :n] -= ETA * theta[:, :n]
    mu, C = f0.copy(), np.zeros_like(theta)
    for _ in range(steps):
        mu = mu - ETA * theta[:, :n] @ (mu[:n] - np.array(Y))
        C = M @ C @ M.T + s**2 * theta
    return float(mu[n])


def initial_weights(width: int) -> np.ndarray:
    from netderive.derivations import parse_model
    from netderive.derivations.expectation import initial_weights as draw

    ws, bs, v = draw(parse_model(model(width, 1), "bench.toml"), 2)
    return np.concatenate([ws[0].ravel(), bs[0], v])


def part_kernel_vs_numpy(widths, runs: int) -> None:
    from netderive.derivations import parse_model
    from netderive.runtime.session import build

    print("\n## 1. kernel vs numpy (T = 100): seconds per call, ratio numpy / kernel\n")
    print("| w | P | order | run | kernel | numpy (jets by symengine Lambdify) | ratio | "
          "agree |")
    print("|---|---|---|---|---|---|---|---|")
    for width in widths:
        jet_fn, _ = jets_symengine(width)
        w0 = initial_weights(width)
        for order in (1, 2):
            if order == 2 and width > 64:
                continue
            kernels = build(parse_model(model(width, order), f"bench_w{width}.toml")).kernels()
            kernels.mean_output(1.0, 0.0, ETA, SIGMA)  # compile / load
            for run in range(1, runs + 1):
                tk, vk = best_of(lambda k=kernels: k.mean_output(100.0, 0.0, ETA, SIGMA))
                plain = numpy_order2 if order == 2 else numpy_order1
                tn, vn = best_of(lambda p=plain, j=jet_fn, w=w0: p(j, w, 100, ETA * SIGMA))
                print(f"| {width} | {4 * width} | {order} | {run} | {tk:.4g} | {tn:.4g} | "
                      f"{tn / tk:.3g} | {abs(vk - vn):.1e} |", flush=True)


def part_steps(width: int, runs: int) -> None:
    from netderive.derivations import parse_model
    from netderive.runtime.session import build

    print(f"\n## 2. steps (w = {width}, P = {4 * width}): seconds per call\n")
    print("| T | order | run | kernel | numpy | ratio |")
    print("|---|---|---|---|---|---|")
    jet_fn, _ = jets_symengine(width)
    w0 = initial_weights(width)
    for order in (1, 2):
        kernels = build(parse_model(model(width, order), f"bench_w{width}.toml")).kernels()
        kernels.mean_output(1.0, 0.0, ETA, SIGMA)
        for steps in (10, 100, 1000):
            for run in range(1, runs + 1):
                tk, _ = best_of(lambda k=kernels, t=steps: k.mean_output(float(t), 0.0, ETA,
                                                                          SIGMA))
                plain = numpy_order2 if order == 2 else numpy_order1
                tn, _ = best_of(lambda p=plain, t=steps: p(jet_fn, w0, t, ETA * SIGMA))
                print(f"| {steps} | {order} | {run} | {tk:.4g} | {tn:.4g} | {tn / tk:.3g} |",
                      flush=True)


def part_monte_carlo(pairs_truth: int, runs: int) -> None:
    from netderive.runtime.families.expectation import report
    from netderive.runtime.session import build, resolve_model

    print("\n## 3. Monte Carlo at equal accuracy (case A, A1, t = 10, x_*1)\n")
    b = build(resolve_model("expectation_tanh"))
    values = b.defaults
    truth = report.monte_carlo(b, values, [10], pairs_truth, seed=11)
    pred = b.call("mean_output", {**values, "step": 10.0, "test_point": 0.0})
    error = abs(pred - truth.mean[0, 0])
    se_truth = truth.mean_se[0, 0]
    print(f"order 2: {pred:.7f}; Monte Carlo ({truth.paths} paths): {truth.mean[0, 0]:.7f} "
          f"+- {se_truth:.1e}; the kernel's error {error:.2e}")
    probe_pairs = 20_000
    for run in range(1, runs + 1):
        tm, probe = best_of(lambda r=run: report.monte_carlo(b, values, [10], probe_pairs,
                                                             seed=r))
        per_pair = tm / probe_pairs
        se_pair = probe.mean_se[0, 0] * np.sqrt(probe_pairs)  # SE of one pair average
        need = (se_pair / error) ** 2
        tk, _ = best_of(lambda: b.call("mean_output", {**values, "step": 10.0,
                                                        "test_point": 0.0}), 5)
        print(f"run {run}: Monte Carlo {per_pair * 1e6:.1f} us per pair (t = 10); SE = "
              f"{error:.1e} needs {need:.3g} pairs = {need * per_pair:.3g} s; kernel "
              f"{tk * 1e3:.3f} ms; ratio {need * per_pair / tk:.3g}")


def part_derivation(widths, sympy_cap: float) -> None:
    import sympy as sp

    from netderive.derivations import derive, parse_model

    print("\n## 4. derivation time of the jets (one training point for sympy/symengine)\n")
    print("| w | P | netderive derive (order 2) | symengine J+H | sympy J+H |")
    print("|---|---|---|---|---|")
    point = {"x0": -1.0, "x1": 0.5}
    for width in widths:
        td, _ = best_of(lambda w=width: derive(parse_model(model(w, 2), "d.toml")))
        f, weights, x = symbolic_network(width)
        fx = f.subs({x[0]: point["x0"], x[1]: point["x1"]})
        start = time.perf_counter()
        grad = [fx.diff(w) for w in weights]
        _ = [[g.diff(w) for w in weights] for g in grad]
        t_se = time.perf_counter() - start
        fs = sp.sympify(str(fx))
        ws = [sp.Symbol(str(w)) for w in weights]
        start = time.perf_counter()
        done, total = 0, len(ws) + len(ws) * (len(ws) + 1) // 2
        grads = []
        for w in ws:
            grads.append(sp.diff(fs, w))
            done += 1
        for p in range(len(ws)):
            for q in range(p, len(ws)):
                sp.diff(grads[p], ws[q])
                done += 1
                if time.perf_counter() - start > sympy_cap:
                    break
            if time.perf_counter() - start > sympy_cap:
                break
        t_sp = time.perf_counter() - start
        sympy_text = f"{t_sp:.3g} s" if done == total else \
            f"{t_sp * total / done:.3g} s (extrapolated from {done}/{total} entries)"
        print(f"| {width} | {4 * width} | {td:.3g} s | {t_se:.3g} s | {sympy_text} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer widths, one run")
    parser.add_argument("--sympy-cap", type=float, default=60.0)
    args = parser.parse_args()
    if "NETDERIVE_CACHE_DIR" not in os.environ:
        os.environ["NETDERIVE_CACHE_DIR"] = tempfile.mkdtemp(prefix="ndbench-")
    runs = 1 if args.quick else 2
    widths = (4, 8, 16) if args.quick else (4, 8, 16, 32, 64)
    start = time.perf_counter()
    print(f"# bench_expectation: {platform.platform()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    part_kernel_vs_numpy(widths, runs)
    part_steps(8 if args.quick else 16, runs)
    part_monte_carlo(20_000 if args.quick else 200_000, runs)
    part_derivation(widths, 5.0 if args.quick else args.sympy_cap)
    print(f"\ntotal {time.perf_counter() - start:.1f} s, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
