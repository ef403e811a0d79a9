"""The weight-decay check: loss, layer norms, predictor and variance at the global minimum
against Monte Carlo dropout and multi-start minimisation of the full network; the jump at
the critical weight decay against minimisation on either side of it."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from netderive.runtime.check import CheckRow, within_se, within_tol
from netderive.runtime.progress import status
from netderive.runtime.session import Build, UsageError

from .. import CheckOptions, FamilyCheck
from . import reference as ref

#: Parameters a check may be run at (the data moments come from the model file).
SETTABLE = ("weight_decay", "noise_variance", "output_variance")
#: Tolerance of the loss against the multi-start minimum, relative to 1 + |L*|.
LOSS_TOLERANCE = 1e-7
#: Tolerance of the layer norm and predictor norm against the minimiser found.
NORM_TOLERANCE = 1e-4
#: The weight decays below and above gamma_c, as factors, where the minimum is located.
CRITICAL_FACTORS = (0.97, 1.03)
#: A minimum counts as L(0) = E[y^2] (zero weights) within this absolute gap.
ZERO_MINIMUM_GAP = 1e-9
#: Fewest starts of the minimisations around gamma_c (half the starts otherwise).
FEWEST_CRITICAL_STARTS = 4


def check(build: Build, values: Mapping[str, float], options: CheckOptions) -> FamilyCheck:
    """Loss, layer norms, predictor and variance at the global minimum; gamma_c bracket."""
    draws, starts, rng = options.draws, int(options.starts or 0), options.rng
    spec = build.spec
    data_keys = [n for n, p in build.params.items()
                 if n not in SETTABLE
                 and p["default"] is not None and values[n] != p["default"]]
    if data_keys:
        raise UsageError(f"--set {data_keys[0]}: check uses the model's data moments; "
                         f"allowed: {', '.join(SETTABLE)} (edit [data] in the model file)")

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
    rows.append(within_se("loss_at_minimum (at b*)", loss, mean, se,
                          f"Monte Carlo dropout, {draws} draws"))

    maps = ref.sample_end_to_end_maps(weights, sigma2, draws, rng)
    v = ref.end_to_end_predictor(weights)
    dev = maps - v
    per_draw = np.einsum("ni,ij,nj->n", dev, data.input_covariance, dev)
    rows.append(within_se("prediction_variance", call("prediction_variance"),
                          float(per_draw.mean()), float(per_draw.std(ddof=1) / np.sqrt(draws)),
                          f"Monte Carlo of Var_eps f, {draws} draws"))

    status(f"check: multi-start minimisation of the full network ({starts} starts)")
    best = ref.multistart_minimum(widths, data, sigma2, decays, starts=starts, rng=rng)
    method = f"multi-start L-BFGS on the full network, {starts} starts"
    rows.append(within_tol("loss_at_minimum", loss, best.loss, LOSS_TOLERANCE, method))
    rescaled = best.layer_norms / scale
    rows.append(within_tol("b_star (max layer-norm gap)", b_star,
                           float(rescaled[np.argmax(np.abs(rescaled - b_star))]),
                           NORM_TOLERANCE, method))
    rows.append(within_tol("predictor_norm", call("predictor_norm"),
                           float(np.linalg.norm(best.predictor)), NORM_TOLERANCE, method))

    gamma_c = call("critical_weight_decay")
    ey2 = data.output_variance
    status("check: minimisation on either side of the critical weight decay")
    for factor in CRITICAL_FACTORS:
        g = factor * gamma_c
        found = ref.multistart_minimum(widths, data, sigma2, np.full(depth + 1, g),
                                       starts=max(FEWEST_CRITICAL_STARTS, starts // 2), rng=rng)
        below = factor < 1
        agree = (found.loss < ey2 - ZERO_MINIMUM_GAP if below
                 else abs(found.loss - ey2) <= ZERO_MINIMUM_GAP)
        rows.append(CheckRow(
            f"L(0) vs L* at {factor:g} gamma_c={g:.4g}", ey2, found.loss, 0.0,
            f"netderive column: L(0) = E[y^2]; {method}", agree,
            "L* < L(0): nonzero minimum below gamma_c" if below
            else "L* = L(0): zero is the global minimum above gamma_c"))
    return FamilyCheck(tuple(rows))
