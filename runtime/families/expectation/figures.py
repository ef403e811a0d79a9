"""The expectation figures of the demo (Borovykh 2019), drawn for every model of the family:
(1) E f_t and Var f_t at the first test input, orders 1 and 2 against Monte Carlo of noisy GD
on the network (bands: 2 SE); (2) the noise: the order-2 shift E f_t(sigma) - f_t(sigma = 0)
with the Monte Carlo's, and the trace of the expected loss Hessian at the mean weights (noisy
minus noiseless: the noise flattens it) for three noise levels, with the network's own Hessian
at w_0 + E d_t of the Monte Carlo."""

from __future__ import annotations

import numpy as np

from netderive.derivations.model import ModelSpec
from netderive.runtime.figures import pyplot, save_png
from netderive.runtime.progress import status

from .. import Figure, FigureInput, Section
from . import report

#: The orders compared.
ORDERS = (1, 2)
#: Steps drawn (log-spaced): (--quick, full).
STEP_COUNTS = (12, 20)
#: Antithetic pairs of the Monte Carlo: (--quick, full); the noise figure uses half per level.
PAIRS = (4_000, 20_000)
#: Seeds of the Monte Carlo of the first figure and of the noise figure.
SEEDS = (1, 2)
#: Noise levels of the noise figure, as multiples of the model's noise_std.
NOISE_FACTORS = (0.5, 1.0, 2.0)
#: The noise level taken for those multiples when the model has noise_std = 0.
NOISE_WITHOUT_NOISE = 0.1
#: The test input drawn (0-based).
TEST_POINT = 0
#: Standard errors of the Monte Carlo bands.
BAND_SE = 2
OUTPUT_FILE, NOISE_FILE = "expectation_output.png", "expectation_noise.png"


def models(spec: ModelSpec) -> dict[str, ModelSpec]:
    """The shown model at the orders of :data:`ORDERS`."""
    specs = report.order_specs(spec)
    return {f"order {order}": specs[order] for order in ORDERS}


def log_steps(last: int, count: int) -> np.ndarray:
    """About ``count`` distinct integer steps from 0 to ``last``, log-spaced after 1."""
    steps = np.unique(np.round(np.geomspace(1, max(last, 1), count)).astype(int))
    return np.concatenate([[0], steps])


def draw(figure: FigureInput) -> list[Section]:
    """Both figures; the noise table in the second section."""
    plt = pyplot()
    b, quick = figure.host, figure.quick
    builds = {order: figure.builds[f"order {order}"] for order in ORDERS}
    values = b.defaults
    last = int(values["step"])
    steps = log_steps(last, STEP_COUNTS[0 if quick else 1])
    pairs = PAIRS[0 if quick else 1]
    status(f"{b.spec.stem}: Monte Carlo of noisy gradient descent ({2 * pairs} paths)")
    mc = report.monte_carlo(b, values, steps, pairs, seed=SEEDS[0])
    preds = {o: report.predictions(builds[o], values, steps) for o in ORDERS}
    fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(11, 4))
    x = TEST_POINT
    for ax, k, label in ((ax_m, 0, r"$\mathbb{E}f_t(x_*)$"),
                         (ax_v, 1, r"$\mathrm{Var}\,f_t(x_*)$")):
        ref = mc.mean[:, x] if k == 0 else mc.var[:, x]
        se = mc.mean_se[:, x] if k == 0 else mc.var_se[:, x]
        ax.fill_between(steps, ref - BAND_SE * se, ref + BAND_SE * se, color="0.75",
                        label=f"Monte Carlo, {mc.paths} paths ({BAND_SE} SE)")
        ax.plot(steps, ref, color="0.3", lw=1)
        for o, style in ((1, dict(ls="--", color="C0")), (2, dict(ls="-", color="C3"))):
            ax.plot(steps, preds[o][k][:, x], label=f"order {o}", **style)
        ax.set(xlabel="step t", ylabel=label, xscale="symlog")
        ax.legend(fontsize=8)
    ax_m.set_title("mean output at the first test input")
    ax_v.set_title("output variance")
    fig.tight_layout()
    save_png(fig, figure.folder / OUTPUT_FILE)

    # the noise: shift of the mean and the loss-Hessian trace
    sigma0 = float(values["noise_std"]) or NOISE_WITHOUT_NOISE
    sigmas = tuple(factor * sigma0 for factor in NOISE_FACTORS)
    fig, (ax_s, ax_h) = plt.subplots(1, 2, figsize=(11, 4))
    order2 = builds[2]
    t = steps.astype(float)

    def column(name: str, sigma: float) -> np.ndarray:
        return order2.grid(name, {"step": t},
                           {**values, "test_point": float(x), "noise_std": sigma})

    noiseless = column("mean_output", 0.0)
    trace0 = column("mean_weights_hessian_trace", 0.0)
    displacements = report.noiseless_displacements(b, values, steps)
    hessian_rows = np.nonzero(steps >= 1)[0][::2]
    rows = ["| sigma | t | shift, order 2 | shift, Monte Carlo (2 SE) |", "|---|---|---|---|"]
    numbers: dict[str, float] = {}
    for colour, sigma in zip(("C2", "C1", "C3"), sigmas, strict=True):
        shift = column("mean_output", sigma) - noiseless
        ax_s.plot(steps, shift, color=colour, label=rf"order 2, $\sigma$ = {sigma:g}")
        sim = report.monte_carlo(b, {**values, "noise_std": sigma}, steps, pairs // 2,
                                 seed=SEEDS[1])
        # the Monte Carlo's shift is centred on its own noiseless run (noiseless GD)
        mc_shift = sim.mean[:, x] - report.noiseless_outputs(b, values, steps)[:, x]
        ax_s.errorbar(steps, mc_shift, yerr=BAND_SE * sim.mean_se[:, x], fmt="o", ms=3,
                      color=colour, label=rf"Monte Carlo, $\sigma$ = {sigma:g}")
        flat = column("mean_weights_hessian_trace", sigma) - trace0
        ax_h.plot(steps, flat, color=colour, label=rf"order 2, $\sigma$ = {sigma:g}")
        true = [report.loss_hessian_trace_at(b, d) - report.loss_hessian_trace_at(b, d0)
                for d, d0 in zip(sim.mean_displacement[hessian_rows],
                                 displacements[hessian_rows], strict=True)]
        ax_h.plot(steps[hessian_rows], true, "o", ms=4, color=colour,
                  label=rf"network at $w_0+\mathbb{{E}}d_t$ (MC), $\sigma$ = {sigma:g}")
        rows.append(f"| {sigma:g} | {steps[-1]} | {shift[-1]:.4g} | {mc_shift[-1]:.4g} "
                    f"(+- {BAND_SE * sim.mean_se[-1, x]:.2g}) |")
        numbers |= {f"shift order 2 sigma={sigma:g}": float(shift[-1]),
                    f"shift Monte Carlo sigma={sigma:g}": float(mc_shift[-1]),
                    f"shift Monte Carlo se sigma={sigma:g}": float(sim.mean_se[-1, x])}
    ax_h.axhline(0, color="k", lw=0.6)
    ax_s.axhline(0, color="k", lw=0.6)
    ax_s.set(xlabel="step t", ylabel=r"$\mathbb{E}f_t(x_*) - f_t(x_*)|_{\sigma=0}$",
             xscale="symlog", title="noise shift of the mean output (order 1: zero)")
    ax_h.set(xlabel="step t", ylabel=r"$\Delta\,\mathrm{tr}\,\nabla^2 L$ at the mean weights",
             xscale="symlog", title="the noise flattens the loss at the mean weights")
    for ax in (ax_s, ax_h):
        ax.legend(fontsize=7)
        ax.set_xlim(left=0)
    fig.tight_layout()
    save_png(fig, figure.folder / NOISE_FILE)
    return [Section("Output evolution: order 1, order 2 and Monte Carlo",
                    f"![mean and variance of the output]({OUTPUT_FILE})"),
            Section("The noise: shift of the mean output and the loss-Hessian trace",
                    f"![noise shift and Hessian trace]({NOISE_FILE})\n\n" + "\n".join(rows),
                    numbers)]


FIGURES = (Figure("orders 1 and 2 against Monte Carlo; the noise", lambda spec: True, draw,
                  models),)
