#!/usr/bin/env python
r"""Benchmark: how long the expectation recursions (orders 1 and 2) follow noisy GD.

Run from the project root (kernels are cached on disk, in ``$NETDERIVE_CACHE_DIR`` or the
user cache, so a second run does not compile)::

    python benchmarks/expectation_horizons.py            # ~30 min on a busy 2-core machine
    python benchmarks/expectation_horizons.py --quick    # fewer networks and paths, ~2 min

The Monte Carlo runs in ``--workers`` (2) processes while the kernels are derived and
compiled; the cost study (part 2) runs after it, alone.

What is measured (Borovykh 2019, notes ``borovykh2019.md`` sections 3, 4, 7, 8):

1. **Horizons.**  For each network and (eta, sigma) setting (noise scaling s = eta sigma):
   the first step t of 1, 2, 5, 10, 20, 50, 100, 200 at which the generated kernels of
   order 1 (linearised network) and order 2 (Gaussian closure) leave a Monte Carlo of
   noisy GD on the network itself (``runtime/families/expectation/reference.py``, plain
   numpy, antithetic pairs), with the tolerance of :mod:`runtime.families.expectation.report`:
   off when ``|mean error| > 3 SE + 0.02 sd`` or ``|Var error| > 3 SE + 0.05 Var`` at any
   test input (a non-finite prediction is off too).  Also: whether each order agrees with
   the Monte Carlo at t = 1 within 3 SE alone (no tolerance), mean and variance, every
   test input, with the largest ``|error| / SE``.  A setting with
   ``eta lambda_max(Theta) >= 2`` (Theta = J J^T at w_0, training rows) is skipped: order 1
   diverges there (notes 3.4, 8.3).
2. **Cost.**  The wall time of one scalar kernel call ``mean_output`` at step 0 (set-up:
   the jets) and at step 100 against P, for one-hidden-layer tanh networks with 2 inputs
   and 4 training points, and the largest P for which a 100-step and a 1000-step run fit in
   one minute, extrapolated from the largest P measured (order 2: set-up and each step
   ~ n P^3; order 1: set-up ~ P^2, each step independent of P: output space).

Networks (data fixed below; tanh nets seeded as in ``derivations.expectation``:
W ~ N(0, 1/fan-in), b = 0, v ~ N(0, 1/width)):

- tanh, one hidden layer of width 4, 16, 32 (2 inputs, 4 training points: the data of
  case A of the notes), orders 1 and 2; width 64 order 1 only (order 2 there is P^3-heavy);
- tanh, two hidden layers 8-8 (3 inputs, 6 training points);
- ReLU, one hidden layer of width 8 and 32, and two hidden layers 8-8 (3 inputs, 6 training
  points): the Taylor jets cannot see a path crossing a kink (notes 8.10), so W is drawn
  N(0, 1/fan-in) from the seed and each bias puts its unit's kink in the middle of the
  widest interior gap of that unit's pre-activations over all (training and test) inputs,
  layer by layer; the targets are ``f0(x_i) + 0.05 N(0, 1)``, so that noiseless GD barely
  moves; the table reports the smallest ``|z|`` at w_0 and the fraction of Monte Carlo
  paths whose activation pattern changed by t = 200 (``models/expectation_relu.toml`` was
  built the same way; tests/reference/test_expectation_networks.py checks it).

Not a test (pytest collects only ``tests/``); ``tests/reference/test_expectation_networks.py``
imports the network definitions from here.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from netderive.derivations import parse_model
from netderive.runtime.families.expectation import report
from netderive.runtime.families.expectation.reference import network_jets
from netderive.runtime.session import Build, build

#: Steps at which the horizon is looked for.
STEPS = report.horizon_steps(200)
#: Tanh settings (eta, sigma) and ReLU settings (smaller noise: kinks).
TANH_SETTINGS = ((0.05, 0.1), (0.05, 0.3), (0.1, 0.2))
RELU_SETTINGS = ((0.05, 0.02), (0.05, 0.05), (0.02, 0.1))
#: Seed of every drawn network.
SEED = 1
#: Standard deviation of the targets around f0: ReLU (kinks) and tanh (the size of the
#: initial residuals of case A, notes 7.2).
TARGET_NOISE = 0.05
TANH_TARGET_OFFSET = 0.1
#: One minute, the budget of the P extrapolation.
BUDGET = 60.0

#: Case A of the notes (section 7.1): 2 inputs, 4 training and 2 test points.
DATA_2D = {"train_inputs": [[-1.0, 0.5], [0.0, -1.0], [1.0, 1.0], [0.5, -0.5]],
           "train_targets": [-1.35, -0.07, 1.43, 1.12],
           "test_inputs": [[0.3, 0.8], [-0.8, -0.6]]}
#: 3 inputs, 6 training and 2 test points (the inputs of models/expectation_relu.toml).
INPUTS_3D = [[1.0, 0.5, -0.3], [-0.6, 1.2, 0.4], [0.3, -0.8, 1.0], [-1.1, -0.2, 0.6],
             [0.8, 0.9, 0.2], [0.1, -0.4, -1.2]]
TESTS_3D = [[0.5, 0.2, 0.7], [-0.7, 0.6, -0.5]]


# -- networks --------------------------------------------------------------------------------
@dataclass
class Network:
    """One network of the study: its model (a raw mapping, as read from TOML) and settings."""

    name: str
    raw: dict
    settings: tuple[tuple[float, float], ...]
    orders: tuple[int, ...] = (1, 2)
    min_abs_z: float | None = None  # ReLU: smallest |pre-activation| at w_0
    builds: dict[int, Build] = field(default_factory=dict)

    @property
    def relu(self) -> bool:
        return self.raw["activation"] == "relu"


def model_raw(activation: str, widths: Sequence[int], data: dict, init: dict,
              eta: float = 0.05, sigma: float = 0.1) -> dict:
    """A raw expectation model (order 2, s = eta sigma, 200 steps)."""
    return {"family": "expectation", "activation": activation, "widths": list(widths),
            "learning_rate": eta, "noise_std": sigma, "noise_scaling": "eta", "order": 2,
            "steps": 200, "data": data, "init": init}


def relu_kinks_in_gaps(widths: Sequence[int], train: Sequence, test: Sequence, seed: int,
                       target_noise: float = TARGET_NOISE) -> tuple[dict, list[float], float]:
    """Explicit ReLU weights with every kink away from the data.

    Layer by layer: W ~ N(0, 1/fan-in); the bias of unit i is minus the midpoint of the
    widest gap between consecutive sorted pre-activations ``(W h)_i`` over all training and
    test inputs (so every unit is active at some inputs and inactive at others); then
    v ~ N(0, 1/width) and targets ``f0(x_i) + target_noise N(0, 1)``.  Returns the [init]
    table, the targets and the smallest ``|z|`` (half the narrowest of the widest gaps).
    """
    rng = np.random.default_rng(seed)
    h = np.vstack([np.asarray(train, float), np.asarray(test, float)])
    dims = [h.shape[1], *widths]
    ws, bs, smallest = [], [], math.inf
    for layer, width in enumerate(widths):
        w = rng.standard_normal((width, dims[layer])) / math.sqrt(dims[layer])
        z = h @ w.T
        b = np.empty(width)
        for i in range(width):
            s = np.sort(z[:, i])
            j = int(np.argmax(np.diff(s)))
            b[i] = -0.5 * (s[j] + s[j + 1])
        z = z + b
        smallest = min(smallest, float(np.min(np.abs(z))))
        ws.append(w)
        bs.append(b)
        h = np.maximum(z, 0.0)
    v = rng.standard_normal(widths[-1]) / math.sqrt(widths[-1])
    f0 = h[: len(train)] @ v
    targets = f0 + target_noise * rng.standard_normal(len(train))
    init = {"hidden_weights": [w.tolist() for w in ws], "hidden_biases": [b.tolist() for b in bs],
            "output_weights": v.tolist()}
    return init, [float(y) for y in targets], smallest


def seeded_outputs(raw: dict) -> np.ndarray:
    """f0 at the training inputs of a seeded tanh model (the derivation's own draw)."""
    from netderive.derivations.expectation import initial_weights

    spec = parse_model(raw, "seeded.toml")
    h = np.array(raw["data"]["train_inputs"], dtype=float)
    ws, bs, v = initial_weights(spec, h.shape[1])
    for w, b in zip(ws, bs, strict=True):
        h = np.tanh(h @ w.T + b)
    return h @ v


def tanh_network(name: str, widths: Sequence[int], orders: tuple[int, ...] = (1, 2),
                 target_offset: float | None = TANH_TARGET_OFFSET) -> Network:
    """A seeded tanh network: one hidden layer on the inputs of DATA_2D, deeper ones on the
    3-D inputs; targets ``f0(x_i) + target_offset N(0, 1)`` (``None``: case A's targets)."""
    if len(widths) == 1:
        data = dict(DATA_2D)
    else:
        data = {"train_inputs": INPUTS_3D, "train_targets": [0.0] * len(INPUTS_3D),
                "test_inputs": TESTS_3D}
    raw = model_raw("tanh(x)", widths, data, {"seed": SEED})
    if target_offset is not None:
        f0 = seeded_outputs(raw)
        rng = np.random.default_rng([SEED, len(widths), *widths])
        data["train_targets"] = [float(y) for y in
                                 f0 + target_offset * rng.standard_normal(f0.size)]
    return Network(name, raw, TANH_SETTINGS, orders)


def relu_network(name: str, widths: Sequence[int]) -> Network:
    """A ReLU network with kinks in the widest gaps (:func:`relu_kinks_in_gaps`)."""
    init, targets, smallest = relu_kinks_in_gaps(widths, INPUTS_3D, TESTS_3D, SEED)
    data = {"train_inputs": INPUTS_3D, "train_targets": targets, "test_inputs": TESTS_3D}
    return Network(name, model_raw("relu", widths, data, init, 0.05, 0.05), RELU_SETTINGS,
                   min_abs_z=smallest)


def tanh_networks() -> list[Network]:
    """The tanh networks of the study that run both orders."""
    return [tanh_network("tanh 4", [4]), tanh_network("tanh 16", [16]),
            tanh_network("tanh 32", [32]), tanh_network("tanh 8-8", [8, 8])]


def all_networks(quick: bool) -> list[Network]:
    """The networks of the study (``quick``: tanh 4 and ReLU 8, two settings each)."""
    if quick:
        nets = [tanh_network("tanh 4", [4]), relu_network("relu 8", [8])]
        for net in nets:
            net.settings = net.settings[::2]
        return nets
    return [*tanh_networks(), tanh_network("tanh 64", [64], orders=(1,)),
            tanh_network("tanh 4, case A targets", [4], target_offset=None),
            relu_network("relu 8", [8]), relu_network("relu 32", [32]),
            relu_network("relu 8-8", [8, 8])]


def order_raw(raw: dict, order: int) -> dict:
    """The same model at another Taylor order."""
    return {**raw, "order": order}


def network_build(net: Network, order: int) -> Build:
    """Derive and generate (or load from the cache) the network's model at ``order``."""
    if order not in net.builds:
        stem = "horizons_" + re.sub(r"[^A-Za-z0-9]+", "_", net.name).strip("_")
        net.builds[order] = build(parse_model(order_raw(net.raw, order), f"{stem}.toml"))
    return net.builds[order]


def size(raw: dict) -> int:
    """Number of weights P."""
    dims = [len(raw["data"]["train_inputs"][0]), *raw["widths"]]
    return sum(dims[k + 1] * (dims[k] + 1) for k in range(len(dims) - 1)) + dims[-1]


def ntk_lambda_max(b: Build) -> float:
    r""":math:`\lambda_{\max}(\Theta)`, :math:`\Theta = JJ^\top` over the training inputs at
    w_0 (jets by the numpy oracle)."""
    net = report.reference_network(b)
    _, jac, _ = network_jets(net.params, net.phi, net.dphi, net.d2phi, net.train_inputs)
    return float(np.linalg.eigvalsh(jac @ jac.T)[-1])


# -- horizons --------------------------------------------------------------------------------
@dataclass
class Row:
    """One (network, setting) row of the horizon table."""

    network: str
    P: int
    n: int
    eta: float
    sigma: float
    horizons: dict[int, str]  # order -> first step off (and why), "> 200", "-", "skipped"
    first_steps: dict[int, int | None]  # order -> first step off as a number (None: never)
    t1: dict[int, tuple[bool, float]]  # order -> (within 3 SE at t = 1, max |error| / SE)
    min_abs_z: float | None
    pattern_changed: float | None
    note: str = ""
    mean_first_steps: dict[int, int | None] = field(default_factory=dict)  # the mean alone

    @property
    def s(self) -> float:
        return self.eta * self.sigma


def off_flags(mean: np.ndarray, var: np.ndarray, mc) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Per step: outside the report's tolerance (``report.off``) or not finite; and the
    parts: the mean alone, the variance alone (the same tolerance split by quantity)."""
    with np.errstate(invalid="ignore"):
        flags = report.off(mean, var, mc)
        sd = np.sqrt(np.maximum(mc.var, 0.0))
        bad_mean = ~(np.abs(mean - mc.mean) <= 3 * mc.mean_se + report.MEAN_TOLERANCE * sd)
        bad_var = ~(np.abs(var - mc.var)
                    <= 3 * mc.var_se + report.VARIANCE_TOLERANCE * mc.var)
    finite = np.all(np.isfinite(mean) & np.isfinite(var), axis=1)
    return flags | ~finite, np.any(bad_mean, axis=1), np.any(bad_var, axis=1)


def first_step(flags: np.ndarray) -> int | None:
    """The first step of STEPS whose flag is set (None: none)."""
    bad = np.nonzero(flags)[0]
    return int(STEPS[bad[0]]) if bad.size else None


def horizon_cell(flags: np.ndarray, bad_mean: np.ndarray, bad_var: np.ndarray) -> str:
    """``report.horizon`` with what left the tolerance first: mean, var or both."""
    text = report.horizon(STEPS, flags)
    k = first_step(flags)
    if k is not None:
        i = STEPS.index(k)
        why = [w for w, f in (("mean", bad_mean[i]), ("var", bad_var[i])) if f]
        text += f" ({'+'.join(why) or 'not finite'})"
    return text


def t1_agreement(mean: np.ndarray, var: np.ndarray, mc, k: int) -> tuple[bool, float]:
    """Within 3 SE at step index ``k`` (mean and variance, every test input)? And the
    largest ``|error| / SE``."""
    z = np.concatenate([np.abs(mean[k] - mc.mean[k]) / mc.mean_se[k],
                        np.abs(var[k] - mc.var[k]) / mc.var_se[k]])
    worst = float(np.max(z)) if np.all(np.isfinite(z)) else math.inf
    return worst <= 3.0, worst


def monte_carlo_job(raw: dict, source: str, eta: float, sigma: float, pairs: int, seed: int
                    ) -> tuple[object, float]:
    """Monte Carlo of noisy GD on the model's network (``report.monte_carlo``) and its wall
    time; top-level, so that a worker process can run it (the build is a cache lookup)."""
    start = time.perf_counter()
    b = build(parse_model(raw, source))
    mc = report.monte_carlo(b, {"learning_rate": eta, "noise_std": sigma}, STEPS, pairs, seed)
    return mc, time.perf_counter() - start


@dataclass
class Pending:
    """A setting of a network whose Monte Carlo was started (``job`` None: skipped)."""

    net: Network
    eta: float
    sigma: float
    lam: float
    job: Future | None


def start_network(net: Network, pairs: int, seed: int, pool: Executor | None = None
                  ) -> list[Pending]:
    """Build both orders and start the Monte Carlo of every stable setting (in ``pool``, or
    here and now)."""
    builds = {o: network_build(net, o) for o in net.orders}
    first = builds[net.orders[0]]
    lam = ntk_lambda_max(first)
    out = []
    for k, (eta, sigma) in enumerate(net.settings):
        job = None
        if eta * lam < 2.0:
            args = (order_raw(net.raw, net.orders[0]), first.spec.source, eta, sigma, pairs,
                    seed + 1000 * k)
            if pool is not None:
                job = pool.submit(monte_carlo_job, *args)
            else:
                job = Future()
                job.set_result(monte_carlo_job(*args))
        out.append(Pending(net, eta, sigma, lam, job))
    return out


def finish_rows(pending: Sequence[Pending], log: Callable[[str], None] = print) -> list[Row]:
    """Rows of started settings: both orders' kernels against their Monte Carlo."""
    rows = []
    for item in pending:
        net, eta, sigma, lam = item.net, item.eta, item.sigma, item.lam
        raw = net.raw
        row = Row(net.name, size(raw), len(raw["data"]["train_inputs"]), eta, sigma, {}, {}, {},
                  net.min_abs_z, None, f"eta lambda_max(Theta) = {eta * lam:.2f}")
        if item.job is None:
            row.horizons = {1: "skipped", 2: "skipped"}
            row.note += " >= 2: unstable"
            rows.append(row)
            log(f"  {net.name}, eta = {eta:g}, sigma = {sigma:g}: skipped ({row.note})")
            continue
        mc, t_mc = item.job.result()
        index1 = list(mc.steps).index(1)
        values = {"learning_rate": eta, "noise_std": sigma}
        timings = []
        for order in (1, 2):
            if order not in net.orders:
                row.horizons[order] = "-"
                continue
            start = time.perf_counter()
            with np.errstate(all="ignore"):
                mean, var = report.predictions(network_build(net, order), values, STEPS)
            timings.append(f"order {order} {time.perf_counter() - start:.1f} s")
            flags, bad_mean, bad_var = off_flags(mean, var, mc)
            row.horizons[order] = horizon_cell(flags, bad_mean, bad_var)
            row.first_steps[order] = first_step(flags)
            row.mean_first_steps[order] = first_step(bad_mean)
            row.t1[order] = t1_agreement(mean, var, mc, index1)
        if net.relu:
            row.pattern_changed = float(mc.pattern_changed[-1])
        rows.append(row)
        log(f"  {net.name}, eta = {eta:g}, sigma = {sigma:g}: horizons {row.horizons}; "
            f"MC {t_mc:.1f} s, kernels {', '.join(timings)}")
    return rows


def horizon_rows(net: Network, pairs: int, seed: int, log: Callable[[str], None] = print
                 ) -> list[Row]:
    """The network's rows: Monte Carlo and both orders' kernels at every stable setting."""
    return finish_rows(start_network(net, pairs, seed), log)


def horizon_table(rows: Sequence[Row], pairs: int) -> str:
    """The Markdown table of the rows."""
    lines = [
        f"Horizon: first step t of {', '.join(map(str, STEPS))} at which the prediction leaves "
        f"the Monte Carlo ({2 * pairs} paths, antithetic): |mean error| > 3 SE + "
        f"{report.MEAN_TOLERANCE:g} sd or |Var error| > 3 SE + {report.VARIANCE_TOLERANCE:g} "
        "Var at any test input; in brackets which left first. Mean only: the same for the "
        "mean alone. t = 1: both mean and variance at every test input within 3 SE (no "
        "tolerance); in brackets the largest |error| / SE. Noise s = eta sigma.",
        "",
        "| network | P | n | eta | sigma | s | horizon order 1 | horizon order 2 "
        "| mean only: order 1 / order 2 | t = 1 within 3 SE: order 1 / order 2 | min abs z "
        "| paths with a changed ReLU pattern at t = 200 | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|"]

    def mean_only(r: Row, order: int) -> str:
        if order not in r.mean_first_steps:
            return "-"
        first = r.mean_first_steps[order]
        return f"> {STEPS[-1]}" if first is None else str(first)

    for r in rows:
        t1 = " / ".join(f"{'yes' if r.t1[o][0] else 'no'} ({r.t1[o][1]:.1f})" if o in r.t1
                        else "-" for o in (1, 2))
        z = f"{r.min_abs_z:.3f}" if r.min_abs_z is not None else "-"
        pat = f"{r.pattern_changed:.3f}" if r.pattern_changed is not None else "-"
        lines.append(f"| {r.network} | {r.P} | {r.n} | {r.eta:g} | {r.sigma:g} | {r.s:g} | "
                     f"{r.horizons[1]} | {r.horizons[2]} | {mean_only(r, 1)} / {mean_only(r, 2)} "
                     f"| {t1} | {z} | {pat} | {r.note} |")
    return "\n".join(lines)


# -- cost ------------------------------------------------------------------------------------
def call_times(fn: Callable[[], object], budget: float = 1.0, max_calls: int = 50
               ) -> tuple[float, float]:
    """(smallest, median) wall time of repeated calls: at least three, then more while the
    total stays below ``budget`` seconds.  The machine is a shared VM whose wall times of
    the same call vary up to ~10x: the minimum is the steadiest estimate of the cost."""
    times: list[float] = []
    while len(times) < 3 or (sum(times) < budget and len(times) < max_calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


@dataclass
class Cost:
    """Wall time of one ``mean_output`` call at step 0 and at step 100."""

    order: int
    P: int
    compile_seconds: float
    setup: float
    step100: float
    step100_median: float

    @property
    def per_step(self) -> float:
        return max(self.step100 - self.setup, 0.0) / 100


def kernel_costs(plan: Sequence[tuple[int, int]], log: Callable[[str], None]) -> list[Cost]:
    """Time one ``mean_output`` call at step 0 and at step 100 for each (order, width) of
    ``plan`` (one hidden tanh layer on the inputs of DATA_2D)."""
    out = []
    eta, sigma = TANH_SETTINGS[0]
    for order, width in plan:
        net = tanh_network(f"tanh {width}", [width])
        k = network_build(net, order).kernels()
        start = time.perf_counter()
        k.mean_output(1.0, 0.0, eta, sigma)  # compiles (or loads numba's cache)
        first = time.perf_counter() - start
        setup, _ = call_times(lambda k=k: k.mean_output(0.0, 0.0, eta, sigma))
        step100, median = call_times(lambda k=k: k.mean_output(100.0, 0.0, eta, sigma), 3.0)
        cost = Cost(order, size(net.raw), first, setup, step100, median)
        out.append(cost)
        log(f"  order {order}, P = {cost.P}: first call {first:.1f} s, step 0 "
            f"{setup * 1e3:.2f} ms, step 100 {step100 * 1e3:.2f} ms (median "
            f"{median * 1e3:.2f} ms)")
    return out


def run_seconds(cost: Cost, steps: int, P: float) -> float:
    """Predicted wall time of a ``steps``-step run at P from ``cost`` (at its own P):
    order 2: (set-up + steps x step) ~ P^3; order 1: set-up ~ P^2, step independent of P."""
    ratio = P / cost.P
    if cost.order == 2:
        return (cost.setup + steps * cost.per_step) * ratio**3
    return cost.setup * ratio**2 + steps * cost.per_step


def largest_p(cost: Cost, steps: int) -> float:
    """P at which :func:`run_seconds` reaches BUDGET."""
    if cost.order == 2:
        return cost.P * (BUDGET / (cost.setup + steps * cost.per_step)) ** (1 / 3)
    room = BUDGET - steps * cost.per_step
    return cost.P * math.sqrt(room / cost.setup) if room > 0 else 0.0


def jet_memory(order: int, P: float, points: int = 6) -> float:
    """Bytes of the largest jet arrays of a one-hidden-layer net (2 inputs, width P/4):
    order 2 ddz and ddh (points x width x P x P), order 1 dz and dh (points x width x P)."""
    return 2 * 8 * points * (P / 4) * P * (P if order == 2 else 1)


def cost_table(costs: Sequence[Cost], fit_limit: dict[int, int]) -> str:
    """Markdown: the timings, the extrapolated largest P for one minute (from the largest P
    up to ``fit_limit[order]``) and the measured points beyond it against the prediction."""
    n = len(DATA_2D["train_inputs"])
    lines = ["Times: the smallest of at least 3 calls (median in brackets).", "",
             "| order | P | first call (s, compile unless cached) | step 0 (ms) | step 100 (ms) "
             "| per step (ms) | per step / (n P^3) (ns) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for c in costs:
        lines.append(f"| {c.order} | {c.P} | {c.compile_seconds:.1f} | {c.setup * 1e3:.3g} | "
                     f"{c.step100 * 1e3:.3g} ({c.step100_median * 1e3:.3g}) | "
                     f"{c.per_step * 1e3:.3g} | "
                     f"{c.per_step / (n * c.P**3) * 1e9:.3g} |")
    lines += ["", f"Largest P for one run within {BUDGET:g} s, extrapolated from the largest P "
              "of the fit (order 2: set-up and steps ~ n P^3 at fixed n = 4; order 1: set-up ~ "
              "P^2, steps independent of P); memory = the largest jet arrays at that P "
              "(one hidden layer of width P/4, 6 points):", "",
              "| order | from P | 100 steps: P | memory (GB) | 1000 steps: P | memory (GB) |",
              "|---:|---:|---:|---:|---:|---:|"]
    checks = []
    for order in sorted({c.order for c in costs}):
        fit = [c for c in costs if c.order == order and c.P <= fit_limit[order]]
        ref = max(fit, key=lambda c: c.P)
        p100, p1000 = largest_p(ref, 100), largest_p(ref, 1000)
        lines.append(f"| {order} | {ref.P} | {p100:.0f} | {jet_memory(order, p100) / 1e9:.2g} | "
                     f"{p1000:.0f} | {jet_memory(order, p1000) / 1e9:.2g} |")
        checks += [f"- order {order}, P = {c.P}: 100 steps measured {c.step100:.3g} s, "
                   f"predicted from P = {ref.P}: {run_seconds(ref, 100, c.P):.3g} s"
                   for c in costs if c.order == order and c.P > fit_limit[order]]
    if checks:
        lines += ["", "Beyond the fit (a check of the extrapolation):", *checks]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the study and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2e3 pairs, tanh 4 and ReLU 8 with two settings, P up to 64")
    parser.add_argument("--pairs", type=int, help="antithetic pairs per setting "
                        "(default 2e4, --quick 2e3)")
    parser.add_argument("--seed", type=int, default=2019, help="Monte Carlo seed")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for the Monte Carlo (default 2)")
    args = parser.parse_args(argv)
    pairs = args.pairs or (2_000 if args.quick else 20_000)
    start = time.perf_counter()
    cpu = time.process_time()

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    print(f"# Expectation recursions: horizons against Monte Carlo\n\n{platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}, numpy "
          f"{np.__version__}; load average {os.getloadavg()[0]:.1f} at the start; cache "
          f"{os.environ.get('NETDERIVE_CACHE_DIR', 'the user cache')}\n")
    build_seconds = {}
    pending: list[Pending] = []
    # Monte Carlo in worker processes while this one derives and compiles the kernels
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        for net in all_networks(args.quick):
            t0 = time.perf_counter()
            for order in net.orders:
                network_build(net, order).kernels().mean_output(0.0, 0.0, 0.05, 0.1)
            build_seconds[net.name] = time.perf_counter() - t0
            log(f"{net.name}: P = {size(net.raw)}, build + compile "
                f"{build_seconds[net.name]:.1f} s")
            pending += start_network(net, pairs, args.seed, pool)
        rows = finish_rows(pending, log)
    print(horizon_table(rows, pairs))
    print("\nBuild + first compile per network (both orders, while the Monte Carlo ran "
          "beside; 0-2 s when cached): "
          + ", ".join(f"{k} {v:.0f} s" for k, v in build_seconds.items()))
    log("kernel cost")
    if args.quick:
        plan, fit_limit = [(o, w) for o in (1, 2) for w in (4, 8, 16)], {1: 64, 2: 64}
    else:  # order 1 is cheap: larger P; order 2 at P = 512 checks the extrapolation
        plan = [(1, w) for w in (4, 8, 16, 32, 64, 256, 1024)]
        plan += [(2, w) for w in (4, 8, 16, 32, 64, 128)]
        fit_limit = {1: 4096, 2: 256}
    costs = kernel_costs(plan, log)
    print(f"\n## Cost of one kernel call (tanh, one hidden layer, 2 inputs, n = 4 training "
          f"and 2 test points, mean_output)\n\n{cost_table(costs, fit_limit)}")
    print(f"\nTotal: {time.perf_counter() - start:.0f} s wall, "
          f"{time.process_time() - cpu:.0f} s CPU; load average "
          f"{os.getloadavg()[0]:.1f} at the end.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
