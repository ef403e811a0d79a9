"""``netderive check``: generated kernels against independent references.

The references (``runtime/reference/``) are plain numpy/scipy and never call generated
code: Monte Carlo over the noise of the full network, and multi-start minimisation of
the full network's exact loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .session import Build, UsageError


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

    @property
    def all_agree(self) -> bool:
        return all(r.agree for r in self.rows)

    def table(self) -> str:
        head = (f"{'quantity':34s} {'netderive':>16s} {'reference':>16s} {'+-':>10s} "
                f"{'deviation':>10s}  agree  method; criterion")
        lines = [f"check of {self.model}", head, "-" * len(head)]
        for r in self.rows:
            unc = f"{r.uncertainty:.2e}" if r.uncertainty > 0 else "exact"
            lines.append(f"{r.quantity:34s} {r.netderive:16.10g} {r.reference:16.10g} "
                         f"{unc:>10s} {r.deviation:>10s}  {'yes' if r.agree else 'NO ':3s}    "
                         f"{r.method}; {r.criterion}")
        verdict = "all agree" if self.all_agree else "DISAGREEMENT"
        lines.append(f"{sum(r.agree for r in self.rows)}/{len(self.rows)} agree: {verdict}")
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


CHECKS: dict[str, Callable[..., list[CheckRow]]] = {
    "weight_decay": check_weight_decay,
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
    rows = CHECKS[build.spec.family](build, values, draws=draws, starts=starts, rng=rng)
    return CheckReport(build.spec.source, rows)
