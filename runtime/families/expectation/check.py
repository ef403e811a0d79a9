"""The expectation check (Borovykh 2019): E f_t and Var f_t of the kernels against a Monte
Carlo of noisy gradient descent on the network itself; then the horizon of orders 1 and 2."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netderive.runtime.check import CheckRow
from netderive.runtime.progress import status
from netderive.runtime.session import Build

from .. import CheckOptions, FamilyCheck
from . import report

#: The early steps compared: 1 and min(EARLY_STEP, step).
EARLY_STEP = 10
#: Fewest antithetic pairs of the Monte Carlo (``--draws`` / 2 otherwise).
FEWEST_PAIRS = 2
#: Standard errors of the Monte Carlo allowed on top of the tolerances of :mod:`.report`.
STANDARD_ERRORS = 3
#: Bits of the seed of the Monte Carlo drawn from the check's generator.
SEED_BITS = 31


def check(build: Build, values: Mapping[str, float], options: CheckOptions) -> FamilyCheck:
    """E f_t and Var f_t at every test input, at t = 1 and t = min(10, step), against a
    Monte Carlo of noisy gradient descent on the network itself (``draws`` paths as
    antithetic pairs), within 3 SE plus the tolerance of :mod:`.report` (the Taylor
    expansion is not exact: 2% of the output's standard deviation for the mean, 5% for the
    variance); then the horizon of orders 1 and 2 (first step off) up to ``step``."""
    draws, rng = options.draws, options.rng
    last = int(values["step"])
    early = sorted({1, max(1, min(EARLY_STEP, last))})
    steps = report.horizon_steps(max(last, 1))
    pairs = max(draws // 2, FEWEST_PAIRS)
    status(f"check: Monte Carlo of noisy gradient descent ({2 * pairs} paths)")
    mc = report.monte_carlo(build, values, sorted(set(steps + early)), pairs,
                            int(rng.integers(2**SEED_BITS)))
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
                agree = abs(got - ref) <= STANDARD_ERRORS * se + tol
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
    return FamilyCheck(tuple(rows), "\n".join(lines))
