"""The large-deviation check (Li and Saad 2020): typical overlaps and N Var at every layer
against finite random networks, the rate function against finite-N chains (extrapolated),
the weight correlation against Monte Carlo of the weights."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from netderive.runtime.check import CheckRow, within_se
from netderive.runtime.progress import status
from netderive.runtime.session import Build, UsageError

from .. import CheckOptions, FamilyCheck
from . import reference as ref
from . import reference_sampling as tails
from . import report

#: Width of the simulated networks: sign units use the exact O(N) sampler of full networks, other
#: activations the brute-force simulator (N x N weight matrices).
WIDTH_SIGN = 1000
WIDTH = 500
#: Networks simulated: at least this many, else ``--draws`` divided by the divisor.
NETWORKS_SIGN = (200, 20)
NETWORKS = (20, 2000)
#: Batches of the Monte Carlo of the weight correlation (``--draws`` weights each).
CORRELATION_BATCHES = 20
#: Allowed O(1/N) finite-size bias of the mean overlap (notes section 6: about +0.6/N for sign at
#: l = 2; the exact finite-network law at N = 1000 gives at most 0.62/N for l <= 3)
MEAN_BIAS = 1.0
#: Allowed finite-N offset of N Var, relative (notes section 6: +4-6 % for ReLU at N = 400).
NVAR_BIAS = 20.0
#: Level of the kernel's rate function at which the rate is checked (one point on either side
#: of the typical overlap), and the allowance of the Richardson value (O(1/N^2) residual).
RATE_LEVEL = 0.05
RATE_TOLERANCE = 0.003
#: Samples of the finite-N chains at N = 25: at least this many, else ``--draws`` / 20.
CHAIN_SAMPLES = (500, 20)
#: The overlaps the chains can reach: |q| <= EDGE (ReLU units: q >= RELU_LOWEST, the overlap of
#: nonnegative units is nonnegative).
EDGE = 0.97
RELU_LOWEST = 0.03
#: Lattice of the sign chains: 2k/N - 1 for every N = 25, 50, 100, 200 (multiples of 0.08).
SIGN_LATTICE = 0.08
#: Other activations: the rate is checked at q rounded to this many decimal places.
ROUNDING_DIGITS = 2


def check(build: Build, values: Mapping[str, float], options: CheckOptions) -> FamilyCheck:
    """Typical overlaps and N Var at every layer against finite random networks; the rate
    function at the last layer against -(1/N) ln P_N from finite-N chains (extrapolated);
    the weight correlation against Monte Carlo of the weights. ``--draws`` sets the sample
    sizes (networks: draws/20 for sign units, draws/2000 otherwise; chain samples at N = 25:
    draws/20). The rate is checked where the kernel's rate reaches :data:`RATE_LEVEL`, or at
    ``--set q=...`` (for sign units moved to the nearest point of the lattice 2k/N - 1 shared
    by N = 25..200, multiples of 0.08 from -1)."""
    draws, rng = options.draws, options.rng
    values = dict(values)
    model = report.reference_model(build, values)
    depth = int(values["depth"])
    rows: list[CheckRow] = []
    items = set(build.quantities)
    chosen = None
    if values.get("q") is not None and values["q"] != build.defaults.get("q"):  # --set q=...
        chosen = _snap(float(values["q"]), model.kind)
        lowest = RELU_LOWEST if model.kind == "relu" else -EDGE
        if not lowest <= chosen <= EDGE:
            raise UsageError(f"--set q={values['q']:g}: the rate is checked by sampling near q; "
                             f"allowed: {lowest:g} <= q <= {EDGE:g}")

    if "weight_correlation" in items:
        status(f"check: Monte Carlo of the weight correlation ({CORRELATION_BATCHES} x {draws} "
               "draws)")
        batches = [ref.weight_correlation(model.perturbation, model.p, draws, rng)
                   for _ in range(CORRELATION_BATCHES)]
        rows.append(within_se("weight_correlation", build.call("weight_correlation", values),
                              float(np.mean(batches)),
                              float(np.std(batches, ddof=1) / math.sqrt(CORRELATION_BATCHES)),
                              f"Monte Carlo of the weights, {CORRELATION_BATCHES} x {draws} "
                              "draws"))

    # typical overlaps and N Var of finite random networks, every layer
    if model.kind == "sign":
        width, networks = WIDTH_SIGN, max(NETWORKS_SIGN[0], draws // NETWORKS_SIGN[1])
        status(f"check: {networks} random sign networks of width {width}")
        samples = tails.sign_network_sample(model.perturbation, model.p, depth, width, networks,
                                            rng, model.input_overlap)
        how = f"full sign networks N={width} (exact O(N) sampler), {networks} nets"
    else:
        width, networks = WIDTH, max(NETWORKS[0], draws // NETWORKS[1])
        status(f"check: {networks} random networks of width {width}")
        sim = ref.sample_overlaps(model.activation, model.perturbation, model.p, depth, width,
                                  networks, rng, model.input_overlap,
                                  weight_variance=model.weight_variance)
        samples = sim.r
        how = f"full networks N={width}, {networks} nets"
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(networks)
    centred = samples - mean
    nvar = width * centred.var(axis=0, ddof=1)
    nvar_se = width * np.sqrt((np.mean(centred**4, axis=0) - np.mean(centred**2, axis=0) ** 2)
                              / networks)
    bias = MEAN_BIAS / width
    name = "q" if model.kind == "sign" else "r"
    for layer in range(1, depth + 1):
        at = {**values, "depth": layer}
        typical = build.call("typical_overlap", at)
        diff = abs(typical - mean[layer - 1])
        rows.append(CheckRow(f"typical_overlap l={layer}", typical, float(mean[layer - 1]),
                             float(se[layer - 1]), f"mean {name}_l of {how}",
                             diff <= 3 * se[layer - 1] + bias,
                             f"|diff| <= 3 se + {MEAN_BIAS:g}/N"))
        if "overlap_variance" in items:
            v = build.call("overlap_variance", at)
            allowance = NVAR_BIAS / width * abs(v)
            rows.append(CheckRow(f"overlap_variance l={layer}", v, float(nvar[layer - 1]),
                                 float(nvar_se[layer - 1]), f"N Var {name}_l of {how}",
                                 abs(v - nvar[layer - 1]) <= 3 * nvar_se[layer - 1] + allowance,
                                 f"|diff| <= 3 se + {NVAR_BIAS:g}/N relative"))

    # the rate function: one point on either side of the typical overlap, last layer
    if model.kind == "generic" and model.bound is None:
        return FamilyCheck(tuple(rows), (
            "rate function not checked: sampling its tails needs a bounded activation "
            "(activation_bound = inf: sup |phi| is infinite or was not decided "
            "symbolically, see the notes of the build)"))
    if chosen is not None:
        points = [(depth, chosen)]
    else:
        grid, curves = report.kernel_rate_curves(build, {**values, "depth": depth}, depth,
                                                 last_only=True)
        points = [(depth, q) for q in rate_points(grid, curves[depth - 1], model.kind)]
    status(f"check: rate function at q = {', '.join(f'{q:g}' for _, q in points)} from "
           "finite-N chains")
    table = report.convergence_rows(build, points,
                                    samples=max(CHAIN_SAMPLES[0], draws // CHAIN_SAMPLES[1]),
                                    rng=rng, values={**values, "depth": depth})
    for row in table:
        error = row.extrapolated_error
        diff = abs(row.extrapolated - row.kernel)
        method = (f"-(1/N) ln P_N(bin), {row.method}, N={row.sizes[-2]},{row.sizes[-1]} "
                  "Richardson after ln(N)/(2N)")
        rows.append(CheckRow(f"rate_function L={row.depth} q={row.q:g}", row.kernel,
                             row.extrapolated, error, method,
                             diff <= 3 * error + RATE_TOLERANCE,
                             f"|diff| <= 3 se + {RATE_TOLERANCE:g}"))
    return FamilyCheck(tuple(rows), report.format_convergence_table(table))


def rate_points(grid: np.ndarray, rate: np.ndarray, kind: str) -> list[float]:
    """Where the kernel's rate first reaches :data:`RATE_LEVEL` on either side of its minimum,
    rounded to the lattice 2k/N - 1 of N = 25, 50, 100, 200 (multiples of 0.08 from -1) for sign
    units and to :data:`ROUNDING_DIGITS` places otherwise; sides that never reach the level are
    left out (|q| at most :data:`EDGE`)."""
    lowest = int(np.nanargmin(rate))
    points = []
    for side in (range(lowest, -1, -1), range(lowest, len(grid))):
        hit = next((i for i in side if rate[i] >= RATE_LEVEL), None)
        if hit is None:
            continue
        q = _snap(float(grid[hit]), kind)
        if -EDGE <= q <= EDGE and (kind != "relu" or q >= RELU_LOWEST):
            points.append(q)
    return sorted(set(points))


def _snap(q: float, kind: str) -> float:
    """``q`` on the lattice 2k/N - 1 of every N = 25, 50, 100, 200 (sign units), else rounded
    to :data:`ROUNDING_DIGITS` places."""
    if kind == "sign":
        return round(-1.0 + SIGN_LATTICE * round((q + 1.0) / SIGN_LATTICE), 10)
    return round(q, ROUNDING_DIGITS)
