"""``netderive check``: generated kernels against independent references.

The references (``runtime/reference/``) are plain numpy/scipy and never call generated
code: Monte Carlo over the noise of the full network, and multi-start minimisation of
the full network's exact loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .progress import format_seconds, status
from .session import Build, UsageError, format_value


@dataclass(frozen=True)
class CheckRow:
    """One comparison: netderive's value, the reference's, and the tolerance used."""

    quantity: str
    netderive: float
    reference: float
    uncertainty: float  # standard error (Monte Carlo) or 0 for deterministic references
    method: str
    agree: bool
    criterion: str

    @property
    def deviation(self) -> str:
        diff = abs(self.netderive - self.reference)
        if self.uncertainty > 0:
            return f"{diff / self.uncertainty:.2f} se"
        return f"{diff:.2e}"


@dataclass
class CheckReport:
    model: str
    rows: list[CheckRow] = field(default_factory=list)
    appendix: str = ""  # further output of the family's check, printed after the verdict
    settings: str = ""  # the values given on the command line (--set), as text

    @property
    def all_agree(self) -> bool:
        return all(r.agree for r in self.rows)

    def table(self) -> str:
        width = max([len("quantity"), *(len(r.quantity) for r in self.rows)])
        head = (f"{'quantity':{width}s} {'netderive':>16s} {'reference':>16s} {'+-':>10s} "
                f"{'deviation':>10s}  agree  method; criterion")
        title = f"check of {self.model}" + (f" at {self.settings}" if self.settings else "")
        lines = [title, head, "-" * len(head)]
        for r in self.rows:
            unc = f"{r.uncertainty:.2e}" if r.uncertainty > 0 else "exact"
            lines.append(f"{r.quantity:{width}s} {r.netderive:16.10g} {r.reference:16.10g} "
                         f"{unc:>10s} {r.deviation:>10s}  {'yes' if r.agree else 'NO ':3s}    "
                         f"{r.method}; {r.criterion}")
        verdict = "all agree" if self.all_agree else "DISAGREEMENT"
        lines.append(f"{sum(r.agree for r in self.rows)}/{len(self.rows)} agree: {verdict}")
        if self.appendix:
            lines += ["", self.appendix]
        return "\n".join(lines)


def _within_se(name: str, value: float, mean: float, se: float, method: str,
               k: float = 3.0) -> CheckRow:
    agree = abs(value - mean) <= k * se if se > 0 else abs(value - mean) <= 1e-12 * (
        1 + abs(mean))
    return CheckRow(name, value, mean, se, method, agree, f"|diff| <= {k:g} se")


def _within_tol(name: str, value: float, ref: float, tol: float, method: str) -> CheckRow:
    agree = abs(value - ref) <= tol * (1 + abs(ref))
    return CheckRow(name, value, ref, 0.0, method, agree, f"|diff| <= {tol:g} (1+|ref|)")


def check_weight_decay(build: Build, values: Mapping[str, float], *, draws: int, starts: int,
                       rng: np.random.Generator) -> list[CheckRow]:
    """Loss, layer norms, predictor and variance at the global minimum; gamma_c bracket."""
    from .reference import weight_decay as ref

    spec = build.spec
    data_keys = [n for n, p in build.params.items()
                 if n not in ("weight_decay", "noise_variance", "output_variance")
                 and p["default"] is not None and values[n] != p["default"]]
    if data_keys:
        raise UsageError(f"--set {data_keys[0]}: check uses the model's data moments; "
                         "allowed: weight_decay, noise_variance, output_variance "
                         "(edit [data] in the model file)")

    def call(name: str) -> float:
        return build.call(name, values)

    data = ref.DataMoments(np.array(spec["data"]["input_covariance"], dtype=float),
                           np.array(spec["data"]["input_output_covariance"], dtype=float),
                           float(values["output_variance"]))
    widths, depth = list(spec["widths"]), spec["depth"]
    sigma2 = float(values["noise_variance"])
    gamma = float(values["weight_decay"])
    model_decay = spec["weight_decay"]
    decays = (np.array(model_decay) if isinstance(model_decay, tuple)
              and math.isclose(gamma, build.params["weight_decay"]["default"])
              else np.full(depth + 1, gamma))
    b_star = call("b_star")
    loss = call("loss_at_minimum")
    rows = []

    # the closed-form minimiser, mapped back to the per-layer decays (section 1)
    balanced = ref.balanced_minimiser(b_star, widths, data, sigma2, gamma)
    scale = np.sqrt(gamma / decays)
    weights = [w * s for w, s in zip(balanced, scale, strict=True)]
    status(f"check: Monte Carlo of the loss at b* ({draws} draws)")
    mean, se = ref.monte_carlo_loss(weights, data, sigma2, decays, draws=draws, rng=rng)
    rows.append(_within_se("loss_at_minimum (at b*)", loss, mean, se,
                           f"Monte Carlo dropout, {draws} draws"))

    maps = ref.sample_end_to_end_maps(weights, sigma2, draws, rng)
    v = ref.end_to_end_predictor(weights)
    dev = maps - v
    per_draw = np.einsum("ni,ij,nj->n", dev, data.input_covariance, dev)
    rows.append(_within_se("prediction_variance", call("prediction_variance"),
                           float(per_draw.mean()), float(per_draw.std(ddof=1) / np.sqrt(draws)),
                           f"Monte Carlo of Var_eps f, {draws} draws"))

    status(f"check: multi-start minimisation of the full network ({starts} starts)")
    best = ref.multistart_minimum(widths, data, sigma2, decays, starts=starts, rng=rng)
    method = f"multi-start L-BFGS on the full network, {starts} starts"
    rows.append(_within_tol("loss_at_minimum", loss, best.loss, 1e-7, method))
    rescaled = best.layer_norms / scale
    rows.append(_within_tol("b_star (max layer-norm gap)", b_star,
                            float(rescaled[np.argmax(np.abs(rescaled - b_star))]), 1e-4, method))
    rows.append(_within_tol("predictor_norm", call("predictor_norm"),
                            float(np.linalg.norm(best.predictor)), 1e-4, method))

    gamma_c = call("critical_weight_decay")
    ey2 = data.output_variance
    status("check: minimisation on either side of the critical weight decay")
    for factor in (0.97, 1.03):
        g = factor * gamma_c
        found = ref.multistart_minimum(widths, data, sigma2, np.full(depth + 1, g),
                                       starts=max(4, starts // 2), rng=rng)
        below = factor < 1
        agree = found.loss < ey2 - 1e-9 if below else abs(found.loss - ey2) <= 1e-9
        rows.append(CheckRow(
            f"L(0) vs L* at {factor:g} gamma_c={g:.4g}", ey2, found.loss, 0.0,
            f"netderive column: L(0) = E[y^2]; {method}", agree,
            "L* < L(0): nonzero minimum below gamma_c" if below
            else "L* = L(0): zero is the global minimum above gamma_c"))
    return rows


#: Width of the simulated networks: sign units use the exact O(N) sampler of full networks, other
#: activations the brute-force simulator (N x N weight matrices).
LD_WIDTH_SIGN = 1000
LD_WIDTH = 500
#: Allowed O(1/N) finite-size bias of the mean overlap (notes section 6: about +0.6/N for sign at
#: l = 2; the exact finite-network law at N = 1000 gives at most 0.62/N for l <= 3)
LD_MEAN_BIAS = 1.0
#: Allowed finite-N offset of N Var, relative (notes section 6: +4-6 % for ReLU at N = 400).
LD_NVAR_BIAS = 20.0
#: Level of the kernel's rate function at which the rate is checked (one point on either side
#: of the typical overlap), and the allowance of the Richardson value (O(1/N^2) residual).
LD_RATE_LEVEL = 0.05
LD_RATE_TOLERANCE = 0.003


def check_large_deviation(build: Build, values: Mapping[str, float], *, draws: int,
                          starts: int, rng: np.random.Generator
                          ) -> tuple[list[CheckRow], str]:
    """Typical overlaps and N Var at every layer against finite random networks; the rate
    function at the last layer against -(1/N) ln P_N from finite-N chains (extrapolated);
    the weight correlation against Monte Carlo of the weights. ``--draws`` sets the sample
    sizes (networks: draws/20 for sign units, draws/2000 otherwise; chain samples at N = 25:
    draws/20); ``--starts`` is unused. The rate is checked where the kernel's rate reaches
    :data:`LD_RATE_LEVEL`, or at ``--set q=...`` (for sign units moved to the nearest point of
    the lattice 2k/N - 1 shared by N = 25..200, multiples of 0.08 from -1)."""
    from . import ld_report
    from .reference import large_deviation as ref
    from .reference import large_deviation_sampling as tails

    del starts
    values = dict(values)
    model = ld_report.reference_model(build, values)
    depth = int(values["depth"])
    rows: list[CheckRow] = []
    items = set(build.quantities)
    chosen = None
    if values.get("q") is not None and values["q"] != build.defaults.get("q"):  # --set q=...
        chosen = _snap(float(values["q"]), model.kind)
        lowest = 0.03 if model.kind == "relu" else -0.97
        if not lowest <= chosen <= 0.97:
            raise UsageError(f"--set q={values['q']:g}: the rate is checked by sampling near q; "
                             f"allowed: {lowest:g} <= q <= 0.97")

    if "weight_correlation" in items:
        status(f"check: Monte Carlo of the weight correlation (20 x {draws} draws)")
        batches = [ref.weight_correlation(model.perturbation, model.p, draws, rng)
                   for _ in range(20)]
        rows.append(_within_se("weight_correlation", build.call("weight_correlation", values),
                               float(np.mean(batches)),
                               float(np.std(batches, ddof=1) / math.sqrt(20)),
                               f"Monte Carlo of the weights, 20 x {draws} draws"))

    # typical overlaps and N Var of finite random networks, every layer
    if model.kind == "sign":
        width, networks = LD_WIDTH_SIGN, max(200, draws // 20)
        status(f"check: {networks} random sign networks of width {width}")
        samples = tails.sign_network_sample(model.perturbation, model.p, depth, width, networks,
                                            rng, model.input_overlap)
        how = f"full sign networks N={width} (exact O(N) sampler), {networks} nets"
    else:
        width, networks = LD_WIDTH, max(20, draws // 2000)
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
    bias = LD_MEAN_BIAS / width
    name = "q" if model.kind == "sign" else "r"
    for layer in range(1, depth + 1):
        at = {**values, "depth": layer}
        typical = build.call("typical_overlap", at)
        diff = abs(typical - mean[layer - 1])
        rows.append(CheckRow(f"typical_overlap l={layer}", typical, float(mean[layer - 1]),
                             float(se[layer - 1]), f"mean {name}_l of {how}",
                             diff <= 3 * se[layer - 1] + bias,
                             f"|diff| <= 3 se + {LD_MEAN_BIAS:g}/N"))
        if "overlap_variance" in items:
            v = build.call("overlap_variance", at)
            allowance = LD_NVAR_BIAS / width * abs(v)
            rows.append(CheckRow(f"overlap_variance l={layer}", v, float(nvar[layer - 1]),
                                 float(nvar_se[layer - 1]), f"N Var {name}_l of {how}",
                                 abs(v - nvar[layer - 1]) <= 3 * nvar_se[layer - 1] + allowance,
                                 f"|diff| <= 3 se + {LD_NVAR_BIAS:g}/N relative"))

    # the rate function: one point on either side of the typical overlap, last layer
    appendix = ""
    rate_depth = depth
    if model.kind == "generic" and model.bound is None:
        return rows, ("rate function not checked: sampling its tails needs a bounded activation "
                      "(activation_bound = inf: sup |phi| is infinite or was not decided "
                      "symbolically, see the notes of the build)")
    if chosen is not None:
        points = [(rate_depth, chosen)]
    else:
        grid, curves = ld_report.kernel_rate_curves(build, {**values, "depth": rate_depth},
                                                    rate_depth, last_only=True)
        points = [(rate_depth, q) for q in _rate_points(grid, curves[rate_depth - 1],
                                                         model.kind)]
    status(f"check: rate function at q = {', '.join(f'{q:g}' for _, q in points)} from "
           "finite-N chains")
    table = ld_report.convergence_rows(build, points, samples=max(500, draws // 20), rng=rng,
                                       values={**values, "depth": rate_depth})
    for row in table:
        error = row.extrapolated_error
        diff = abs(row.extrapolated - row.kernel)
        method = (f"-(1/N) ln P_N(bin), {row.method}, N={row.sizes[-2]},{row.sizes[-1]} "
                  "Richardson after ln(N)/(2N)")
        rows.append(CheckRow(f"rate_function L={row.depth} q={row.q:g}", row.kernel,
                             row.extrapolated, error, method,
                             diff <= 3 * error + LD_RATE_TOLERANCE,
                             f"|diff| <= 3 se + {LD_RATE_TOLERANCE:g}"))
    appendix = ld_report.format_convergence_table(table)
    return rows, appendix


def _rate_points(grid: np.ndarray, rate: np.ndarray, kind: str) -> list[float]:
    """Where the kernel's rate first reaches :data:`LD_RATE_LEVEL` on either side of its minimum,
    rounded to the lattice 2k/N - 1 of N = 25, 50, 100, 200 (multiples of 0.08 from -1) for sign
    units and to 0.01 otherwise; sides that never reach the level are left out (at most 0.97)."""
    lowest = int(np.nanargmin(rate))
    points = []
    for side in (range(lowest, -1, -1), range(lowest, len(grid))):
        hit = next((i for i in side if rate[i] >= LD_RATE_LEVEL), None)
        if hit is None:
            continue
        q = _snap(float(grid[hit]), kind)
        if -0.97 <= q <= 0.97 and (kind != "relu" or q >= 0.03):
            points.append(q)
    return sorted(set(points))


def _snap(q: float, kind: str) -> float:
    """``q`` on the lattice 2k/N - 1 of every N = 25, 50, 100, 200 (sign units), else to 0.01."""
    return round(-1.0 + 0.08 * round((q + 1.0) / 0.08), 10) if kind == "sign" else round(q, 2)


def check_expectation(build: Build, values: Mapping[str, float], *, draws: int, starts: int,
                      rng: np.random.Generator) -> tuple[list[CheckRow], str]:
    """E f_t and Var f_t at every test input, at t = 1 and t = min(10, step), against a
    Monte Carlo of noisy gradient descent on the network itself (``draws`` paths as
    antithetic pairs), within 3 SE plus the tolerance of
    :mod:`runtime.expectation_report` (the Taylor expansion is not exact: 2% of the
    output's standard deviation for the mean, 5% for the variance); then the horizon of
    orders 1 and 2 (first step off) up to ``step``.  ``--starts`` is unused."""
    from . import expectation_report as report

    del starts
    last = int(values["step"])
    early = sorted({1, max(1, min(10, last))})
    steps = report.horizon_steps(max(last, 1))
    status(f"check: Monte Carlo of noisy gradient descent ({2 * max(draws // 2, 2)} paths)")
    mc = report.monte_carlo(build, values, sorted(set(steps + early)), max(draws // 2, 2),
                            int(rng.integers(2**31)))
    index = {int(t): k for k, t in enumerate(mc.steps)}
    order = int(build.spec["order"])
    mean, var = report.predictions(build, values, mc.steps)
    rows = []
    method = f"Monte Carlo of noisy GD on the network, {mc.paths} paths (antithetic)"
    for t in early:
        k = index[t]
        for x in range(mean.shape[1]):
            sd = float(np.sqrt(max(mc.var[k, x], 0.0)))
            for name, got, ref, se, tol in (
                    ("mean_output", mean[k, x], mc.mean[k, x], mc.mean_se[k, x],
                     report.MEAN_TOLERANCE * sd),
                    ("output_variance", var[k, x], mc.var[k, x], mc.var_se[k, x],
                     report.VARIANCE_TOLERANCE * mc.var[k, x])):
                agree = abs(got - ref) <= 3 * se + tol
                rows.append(CheckRow(f"{name}(step={t}, test_point={x})", float(got),
                                     float(ref), float(se), method, bool(agree),
                                     f"|diff| <= 3 se + {tol:.2g} (order {order})"))
    builds = report.order_builds(build)
    lines = [f"Horizon at learning_rate = {values['learning_rate']:g}, noise_std = "
             f"{values['noise_std']:g} (first step of {', '.join(map(str, mc.steps))} where the "
             f"prediction is off: |mean error| > 3 SE + {report.MEAN_TOLERANCE:g} sd or "
             f"|variance error| > 3 SE + {report.VARIANCE_TOLERANCE:g} Var):"]
    all_steps = [int(t) for t in mc.steps]
    for o in sorted(builds):
        m, v = report.predictions(builds[o], values, all_steps)
        lines.append(f"  order {o}: {report.horizon(all_steps, report.off(m, v, mc))}")
    return rows, "\n".join(lines)


CHECKS: dict[str, Callable[..., list[CheckRow] | tuple[list[CheckRow], str]]] = {
    "weight_decay": check_weight_decay,
    "large_deviation": check_large_deviation,
    "expectation": check_expectation,
}


def run_check(build: Build, fixed: Mapping[str, float], *, draws: int, starts: int,
              seed: int = 0) -> CheckReport:
    """All checks of the model's family at its defaults updated by ``fixed``."""
    if build.spec.family not in CHECKS:
        raise UsageError(f"check: no independent reference for family {build.spec.family!r} "
                         "yet; allowed: " + ", ".join(sorted(CHECKS)))
    from .session import check_value

    values = build.defaults
    values.update({n: check_value(build, n, v, f"--set {n}") for n, v in fixed.items()})
    from .evaluate import Request, check_constraints

    check_constraints(build, Request([], values, {}), given=fixed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    result = CHECKS[build.spec.family](build, values, draws=draws, starts=starts, rng=rng)
    rows, appendix = result if isinstance(result, tuple) else (result, "")
    status(f"check: {len(rows)} comparisons in {format_seconds(time.perf_counter() - start)}")
    settings = ", ".join(f"{n} = {format_value(build, n, v)}" for n, v in fixed.items())
    return CheckReport(build.spec.source, rows, appendix, settings)
