"""``netderive demo``: every bundled model derived, printed, compiled, evaluated, checked.

Writes ``<output>/report.md`` with the formulas (Markdown), ``<output>/<model>/formulas.tex``,
tables, the check against the independent references, and PNG figures per family.
The report is assembled in a temporary folder and moved into place at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from netderive.codegen.cache import public_mode

from .compile import CompileWatch
from .progress import format_seconds
from .session import Build, UsageError, apply_structural, build

#: A report folder holds this file; only such a folder (or an empty one) is replaced.
REPORT_MARKER = ".netderive-report"


def _say(text: str) -> None:
    from .progress import status

    status(text)


def _grid(b: Build, name: str, axis: str, xs: np.ndarray, values: dict[str, float]
          ) -> np.ndarray:
    arrays = [xs if a == axis else np.full(xs.size, float(values[a]))
              for a in b.item(name)["arguments"]]
    return getattr(b.kernels(), name + "_grid_serial")(*arrays)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Write ``fig`` as PNG through a temporary file renamed into place, and close it."""
    from .evaluate import atomic_output

    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    _pyplot().close(fig)


def weight_decay_figures(b: Build, folder: Path, quick: bool = False
                         ) -> list[tuple[str, str]]:
    """b* and L* against gamma for D = 1, 2, 3 (jump at gamma_c for D >= 2)."""
    if b.spec.stem != "weight_decay":
        return []
    plt = _pyplot()
    fig, (ax_b, ax_l) = plt.subplots(1, 2, figsize=(11, 4))
    rows = []
    gammas = np.linspace(0.002, 1.2, 1200)
    for depth, colour in zip((1, 2, 3), ("C0", "C1", "C2"), strict=True):
        bd = build(apply_structural(b.spec, {"depth": depth}, "demo"))
        values = bd.defaults
        b_star = _grid(bd, "b_star", "weight_decay", gammas, values)
        loss = _grid(bd, "loss_at_minimum", "weight_decay", gammas, values)
        gamma_c = bd.call("critical_weight_decay", values)
        ax_b.plot(gammas, b_star, color=colour, label=f"D = {depth}")
        ax_l.plot(gammas, loss, color=colour, label=f"D = {depth}")
        for ax in (ax_b, ax_l):
            ax.axvline(gamma_c, color=colour, ls=":", lw=1)
        jump = bd.call("b_star", {**values, "weight_decay": gamma_c * (1 - 1e-9)})
        rows.append((depth, gamma_c, jump))
    ax_b.set(xlabel=r"weight decay $\gamma$", ylabel=r"$b^*$ (layer norm at the global min)",
             title=r"$b^*(\gamma)$: continuous for D = 1, jumps at $\gamma_c$ for D $\geq$ 2")
    ax_l.set(xlabel=r"weight decay $\gamma$", ylabel=r"$\mathcal{L}^*$",
             title=r"loss at the global minimum (dotted: $\gamma_c$)")
    for ax in (ax_b, ax_l):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, folder / "b_star_and_loss_vs_weight_decay.png")
    table = ["| D | gamma_c | b*(gamma_c-) |", "|---|---|---|"]
    table += [f"| {d} | {g:.6f} | {j:.6f} |" for d, g, j in rows]
    return [("b* and L* against the weight decay, D = 1, 2, 3",
             "![b* and L* against gamma](b_star_and_loss_vs_weight_decay.png)\n\n"
             + "\n".join(table))]


#: The bundled models compared in the large-deviation figures, by (activation, perturbation).
LD_MODELS = {("sign", "dilution"): "ld_sign_dilution",
             ("sign", "binarization"): "ld_sign_binarization",
             ("relu", "dilution"): "ld_relu_dilution",
             ("relu", "binarization"): "ld_relu_binarization"}
#: The figures compare all four models; they are drawn once, in the section of this one
#: (the first of them in the report).
LD_FIGURE_MODEL = min(LD_MODELS.values())
#: Dilution fractions of the typical-overlap figure; depths of the rate-function figure.
LD_DILUTIONS = (0.1, 0.3, 0.5)
LD_LAYERS = 10
LD_RATE_DEPTHS = (1, 2, 3, 5)
#: Dilution fraction of the rate-function figure (the bundled models' p).
LD_RATE_DILUTION = 0.1


def _ld_builds(b: Build) -> dict[tuple[str, str], Build]:
    from .session import resolve_model

    return {key: b if stem == b.spec.stem else build(resolve_model(stem))
            for key, stem in LD_MODELS.items()}


def _ld_values(b: Build, p: float | None, **more: float) -> dict[str, float]:
    return {**b.defaults, **({} if p is None else {"p": p}), **more}


def large_deviation_figures(b: Build, folder: Path, quick: bool = False
                            ) -> list[tuple[str, str]]:
    """Sign against ReLU under the same weight perturbation (Li and Saad 2020).

    (1) typical overlap q_l (sign) and r_l (ReLU) for l = 0..10 under dilution (three p)
    and binarization, with the ReLU fixed point r*; (2) rate functions I_L of the output
    overlap for L = 1, 2, 3, 5 (dynamic programming; zero at the typical overlap).
    """
    if b.spec.stem != LD_FIGURE_MODEL:
        return []
    plt = _pyplot()
    builds = _ld_builds(b)
    perturbations = {"dilution": LD_DILUTIONS, "binarization": (None,)}
    styles = {"sign": dict(ls="--", marker="s", ms=4, mfc="none"),
              "relu": dict(ls="-", marker="o", ms=4)}
    names = {"sign": "sign", "relu": "ReLU"}

    # (1) typical overlap against the layer
    layers = np.arange(LD_LAYERS + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    typical: dict[tuple[str, str, float | None], np.ndarray] = {}
    fixed: dict[tuple[str, float | None], float] = {}
    for ax, (perturbation, ps) in zip(axes, perturbations.items(), strict=True):
        for colour, p in zip(("C0", "C1", "C2"), ps, strict=False):
            label_p = "" if p is None else f"p = {p:g}, "
            for activation in ("sign", "relu"):
                bd = builds[activation, perturbation]
                overlaps = [bd.call("typical_overlap", _ld_values(bd, p, depth=int(layer)))
                            for layer in layers[1:]]
                path = np.array([_ld_values(bd, p)["input_overlap"], *overlaps])
                typical[activation, perturbation, p] = path
                ax.plot(layers, path, color=colour, **styles[activation],
                        label=f"{label_p}{names[activation]}")
            r_star = builds["relu", perturbation].call(
                "fixed_point", _ld_values(builds["relu", perturbation], p))
            fixed[perturbation, p] = r_star
            ax.axhline(r_star, color=colour, ls=":", lw=1.2)
            ax.annotate(f"$r^* = {r_star:.3f}$", (LD_LAYERS, r_star), xytext=(4, 0),
                        textcoords="offset points", va="center", color=colour, fontsize=9)
        ax.set(xlabel="layer $l$", xlim=(0, LD_LAYERS), xticks=layers, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8.5, loc="upper right", bbox_to_anchor=(1, 0.47),
                  ncol=1 if len(ps) == 1 else 2)
    axes[0].set(ylabel="typical overlap ($q_l$ sign, $r_l$ ReLU)",
                title="dilution: a fraction $p$ of the weights removed")
    axes[1].set(title=r"binarization: $\hat W = \alpha\,\mathrm{sgn}(W)$")
    fig.suptitle("Typical overlap of a network and its perturbed copy (same input, "
                 "$N \\to \\infty$); dotted: ReLU fixed point $r^*$", fontsize=11)
    fig.tight_layout()
    fig.subplots_adjust(right=0.93)
    _save(fig, folder / "ld_typical_overlap.png")

    # (2) rate functions I_L(q) for several depths: rows perturbation, columns activation
    depth = max(LD_RATE_DEPTHS)
    grids = {"sign": 1001 if quick else 2001, "relu": 201 if quick else 401}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharey=True, sharex="col")
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    worst = 0.0
    for row_axes, perturbation in zip(axes, perturbations, strict=True):
        p = LD_RATE_DILUTION if perturbation == "dilution" else None
        case = f"dilution p = {p:g}" if p is not None else "binarization"
        for ax, activation in zip(row_axes, ("sign", "relu"), strict=True):
            bd = builds[activation, perturbation]
            values = _ld_values(bd, p, depth=depth, grid_size=grids[activation])
            args = [a for a in bd.item("rate_function")["arguments"] if a != "q"]
            x, rates = bd.kernels().rate_function_curves(*[float(values[a]) for a in args])
            curves[activation, perturbation] = x, rates
            path = typical[activation, perturbation, p]
            for colour, layer in zip(("C0", "C1", "C2", "C3"), LD_RATE_DEPTHS, strict=True):
                row = rates[layer - 1]
                finite = np.isfinite(row)
                ax.plot(x[finite], row[finite], color=colour, label=f"L = {layer}")
                ax.plot(path[layer], 0.0, color=colour, marker="o", ms=7, clip_on=False,
                        zorder=3)
                worst = max(worst, abs(x[np.argmin(row)] - path[layer]))
            if activation == "relu":
                ax.axvline(fixed[perturbation, p], color="0.4", ls=":", lw=1.2,
                           label=f"$r^* = {fixed[perturbation, p]:.3f}$")
            symbol = "q" if activation == "sign" else "r"
            ax.set(title=f"{names[activation]}, {case}", ylim=(0, 0.8),
                   xlim=(float(x[0]), float(x[-1])))
            if perturbation == "binarization":
                ax.set(xlabel=f"output overlap ${symbol}$")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9, loc="upper center" if activation == "sign" else "upper left")
        row_axes[0].set(ylabel=r"rate function $I_L$")
    fig.suptitle(r"Finite width $N$: $P(\mathrm{overlap}_L \approx q) \asymp e^{-N I_L(q)}$; "
                 "dots: typical overlap (the zero of $I_L$)", fontsize=11)
    fig.tight_layout()
    _save(fig, folder / "ld_rate_functions.png")

    # numbers for the report
    def rate(activation: str, perturbation: str, layer: int, q: float) -> float:
        x, rates = curves[activation, perturbation]
        return float(np.interp(q, x, rates[layer - 1]))

    def rho(perturbation: str, p: float | None) -> float:
        bd = builds["sign", perturbation]
        return bd.call("weight_correlation", _ld_values(bd, p))

    table = ["| perturbation | weight correlation $\\rho$ | sign $q_{10}$ | ReLU $r_{10}$ "
             "| ReLU $r^*$ |", "|---|---|---|---|---|"]
    for perturbation, ps in perturbations.items():
        for p in ps:
            name = perturbation if p is None else f"{perturbation}, p = {p:g}"
            table.append(f"| {name} | {rho(perturbation, p):.4f} | "
                         f"{typical['sign', perturbation, p][-1]:.4f} | "
                         f"{typical['relu', perturbation, p][-1]:.4f} | "
                         f"{fixed[perturbation, p]:.4f} |")
    d, L, n = LD_RATE_DILUTION, depth, 100
    sign_d, relu_d = typical["sign", "dilution", d], typical["relu", "dilution", d]
    sign_half, relu_half = rate("sign", "dilution", L, 0.5), rate("relu", "dilution", L, 0.5)
    text_typical = (
        "Typical overlap between a random network and its perturbed copy at every layer "
        "(mean field, same input). The perturbation enters only through the weight "
        r"correlation $\rho$. Sign overlaps follow $q_l = \frac{2}{\pi}\arcsin(\rho\, q_{l-1})$ "
        "and decay to 0: the perturbed sign network computes an unrelated function after a "
        r"few layers. ReLU overlaps follow $r_l = \kappa(\rho\, r_{l-1})$ and converge to the "
        r"fixed point $r^* > 1/\pi$ (dotted): the perturbed ReLU network stays correlated "
        f"with the original at any depth. With {d:.0%} of the weights removed, sign has "
        f"$q_{{10}}$ = {sign_d[-1]:.4f} and ReLU $r_{{10}}$ = {relu_d[-1]:.4f} ($r^*$ = "
        f"{fixed['dilution', d]:.4f}); binarization ($\\rho$ = "
        f"{rho('binarization', None):.3f}) leaves ReLU at $r_{{10}}$ = "
        f"{typical['relu', 'binarization', None][-1]:.4f} against sign "
        f"{typical['sign', 'binarization', None][-1]:.4f}. This is the paper's claim: ReLU "
        "networks are more robust than sign networks to the same perturbation.")
    text_rates = (
        "Rate functions of the output overlap at finite width $N$, "
        r"$P(\mathrm{overlap}_L \approx q) \asymp e^{-N I_L(q)}$ (contraction principle, "
        f"dynamic programming on {grids['sign']} points for sign, {grids['relu']} for ReLU). "
        "Each curve is zero at the typical overlap of the first figure (dots; the grid "
        f"minimum is within {worst:.4f} of it). With depth the sign minimum slides towards 0, "
        f"the ReLU minimum only towards $r^*$. At L = {L} with {d:.0%} dilution the typical "
        f"overlaps are {sign_d[L]:.3f} (sign) and {relu_d[L]:.3f} (ReLU). A sign network "
        f"that still has overlap 0.5 is a large deviation, $I_{L}(0.5)$ = {sign_half:.3f} "
        f"(probability roughly $e^{{-{n * sign_half:.1f}}}$ at N = {n}, up to a "
        "sub-exponential factor); so is a ReLU network that has fallen to 0.5, "
        f"$I_{L}(0.5)$ = {relu_half:.3f} ($e^{{-{n * relu_half:.1f}}}$). The ReLU kernels "
        "return +inf at exactly r = 0 and r = 1; those two grid points are not drawn.")
    return [("Large deviations: sign against ReLU, typical overlap (all four sign and ReLU "
             "models)",
             "![typical overlap against the layer](ld_typical_overlap.png)\n\n"
             + text_typical + "\n\n" + "\n".join(table)),
            ("Large deviations: sign against ReLU, rate functions",
             "![rate functions of the output overlap](ld_rate_functions.png)\n\n"
             + text_rates)]


def _log_steps(last: int, count: int) -> np.ndarray:
    """About ``count`` distinct integer steps from 0 to ``last``, log-spaced after 1."""
    steps = np.unique(np.round(np.geomspace(1, max(last, 1), count)).astype(int))
    return np.concatenate([[0], steps])


def expectation_figures(b: Build, folder: Path, quick: bool = False
                        ) -> list[tuple[str, str]]:
    """Borovykh 2019: (1) E f_t and Var f_t at the first test input, orders 1 and 2 against
    Monte Carlo of noisy GD on the network (bands: 2 SE); (2) the noise: order-2 shift
    E f_t(sigma) - f_t(sigma = 0) with the Monte Carlo's, and the trace of the expected
    loss Hessian at the mean weights (noisy minus noiseless: the noise flattens it) for
    three noise levels, with the network's own Hessian at w_0 + E d_t of the Monte Carlo."""
    from . import expectation_report as report

    plt = _pyplot()
    builds = report.order_builds(b)
    values = b.defaults
    last = int(values["step"])
    steps = _log_steps(last, 12 if quick else 20)
    pairs = 4_000 if quick else 20_000
    _say(f"{b.spec.stem}: Monte Carlo of noisy gradient descent ({2 * pairs} paths)")
    mc = report.monte_carlo(b, values, steps, pairs, seed=1)
    preds = {o: report.predictions(builds[o], values, steps) for o in (1, 2)}
    fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(11, 4))
    x = 0
    for ax, k, label in ((ax_m, 0, r"$\mathbb{E}f_t(x_*)$"),
                         (ax_v, 1, r"$\mathrm{Var}\,f_t(x_*)$")):
        ref = mc.mean[:, x] if k == 0 else mc.var[:, x]
        se = mc.mean_se[:, x] if k == 0 else mc.var_se[:, x]
        ax.fill_between(steps, ref - 2 * se, ref + 2 * se, color="0.75",
                        label=f"Monte Carlo, {mc.paths} paths (2 SE)")
        ax.plot(steps, ref, color="0.3", lw=1)
        for o, style in ((1, dict(ls="--", color="C0")), (2, dict(ls="-", color="C3"))):
            ax.plot(steps, preds[o][k][:, x], label=f"order {o}", **style)
        ax.set(xlabel="step t", ylabel=label, xscale="symlog")
        ax.legend(fontsize=8)
    ax_m.set_title("mean output at the first test input")
    ax_v.set_title("output variance")
    fig.tight_layout()
    _save(fig, folder / "expectation_output.png")

    # the noise: shift of the mean and the loss-Hessian trace
    sigma0 = float(values["noise_std"]) or 0.1
    sigmas = (0.5 * sigma0, sigma0, 2 * sigma0)
    fig, (ax_s, ax_h) = plt.subplots(1, 2, figsize=(11, 4))
    order2 = builds[2]
    k2 = order2.kernels()
    t = steps.astype(float)
    n = t.size
    eta = np.full(n, float(values["learning_rate"]))

    def column(name: str, sigma: float, with_point: bool = True) -> np.ndarray:
        args = (t, np.zeros(n), eta, np.full(n, sigma)) if with_point else (
            t, eta, np.full(n, sigma))
        return getattr(k2, name + "_grid_serial")(*args)

    noiseless = column("mean_output", 0.0)
    trace0 = column("mean_weights_hessian_trace", 0.0, False)
    displacements = report.noiseless_displacements(b, values, steps)
    hessian_rows = np.nonzero(steps >= 1)[0][::2]
    rows = ["| sigma | t | shift, order 2 | shift, Monte Carlo (2 SE) |", "|---|---|---|---|"]
    for colour, sigma in zip(("C2", "C1", "C3"), sigmas, strict=True):
        shift = column("mean_output", sigma) - noiseless
        ax_s.plot(steps, shift, color=colour, label=rf"order 2, $\sigma$ = {sigma:g}")
        sim = report.monte_carlo(b, {**values, "noise_std": sigma}, steps, pairs // 2,
                                 seed=2)
        # the Monte Carlo's shift is centred on its own noiseless run (noiseless GD)
        mc_shift = sim.mean[:, 0] - report.noiseless_outputs(b, values, steps)[:, 0]
        ax_s.errorbar(steps, mc_shift, yerr=2 * sim.mean_se[:, 0], fmt="o", ms=3,
                      color=colour, label=rf"Monte Carlo, $\sigma$ = {sigma:g}")
        flat = column("mean_weights_hessian_trace", sigma, False) - trace0
        ax_h.plot(steps, flat, color=colour, label=rf"order 2, $\sigma$ = {sigma:g}")
        true = [report.loss_hessian_trace_at(b, d) - report.loss_hessian_trace_at(b, d0)
                for d, d0 in zip(sim.mean_displacement[hessian_rows],
                                 displacements[hessian_rows], strict=True)]
        ax_h.plot(steps[hessian_rows], true, "o", ms=4, color=colour,
                  label=rf"network at $w_0+\mathbb{{E}}d_t$ (MC), $\sigma$ = {sigma:g}")
        rows.append(f"| {sigma:g} | {steps[-1]} | {shift[-1]:.4g} | {mc_shift[-1]:.4g} "
                    f"(+- {2 * sim.mean_se[-1, 0]:.2g}) |")
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
    _save(fig, folder / "expectation_noise.png")
    return [("Output evolution: order 1, order 2 and Monte Carlo",
             "![mean and variance of the output](expectation_output.png)"),
            ("The noise: shift of the mean output and the loss-Hessian trace",
             "![noise shift and Hessian trace](expectation_noise.png)\n\n" + "\n".join(rows))]


FIGURES: dict[str, Callable[[Build, Path, bool], list[tuple[str, str]]]] = {
    "weight_decay": weight_decay_figures,
    "large_deviation": large_deviation_figures,
    "expectation": expectation_figures,
}


def _model_section(spec, path: Path, tmp: Path, label: str, quick: bool,
                   checks: Mapping[str, object]) -> list[str]:
    """The report section of one model: formulas, values at the defaults, figures, check."""
    from .check import run_check

    _say(f"{label}: building")
    b = build(spec, on_derive=lambda _: _say(f"{label}: deriving ..."))
    if b.rebuilt:
        _say(f"{label}: derived in {format_seconds(b.seconds)}")
    folder = tmp / path.stem
    folder.mkdir()
    shutil.copy(b.latex_path, folder / "formulas.tex")
    shutil.copy(b.markdown_path, folder / "formulas.md")
    lines = [f"## {path.stem} ({spec.family})", "",
             spec.get("description", ""), "",
             f"Formulas: [{path.stem}/formulas.md]({path.stem}/formulas.md), "
             f"LaTeX: [{path.stem}/formulas.tex]({path.stem}/formulas.tex).", ""]
    _say(f"{label}: evaluating")
    values = b.defaults
    rows = ["| quantity | value at the model's defaults |", "|---|---|"]
    for q in b.quantities:
        args = b.item(q)["arguments"]
        if all(a in values for a in args):
            rows.append(f"| `{q}` | {b.call(q, values):.10g} |")
    lines += rows + [""]
    for title, body in FIGURES.get(spec.family, lambda *_: [])(b, folder, quick):
        lines += [f"### {title}", "", body.replace("](", f"]({path.stem}/"), ""]
    if spec.family in checks:
        _say(f"{label}: checking against the references")
        report = run_check(b, {}, draws=20_000 if quick else 200_000,
                           starts=8 if quick else 24)
        lines += ["### Check against independent references", "", "```",
                  report.table(), "```", ""]
    return lines


def run_demo(output: Path, quick: bool = False, paths: list[Path] | None = None) -> Path:
    """Build the report for every bundled model (or the model files ``paths``) into
    ``output`` (replaced atomically)."""
    from netderive.derivations.model import load_model
    from netderive.models import bundled_model_paths

    from .check import CHECKS

    output = Path(output).resolve()
    if output.exists() and not (output / REPORT_MARKER).is_file() and (
            output.is_file() or any(output.iterdir())):
        raise UsageError(f"--output {output}: exists and is not a netderive report (no "
                         f"{REPORT_MARKER}); allowed: a new or empty folder, or an earlier "
                         "report folder (it is replaced)")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    public_mode(tmp, directory=True)
    (tmp / REPORT_MARKER).write_text("written by netderive demo; replaced by the next run\n")
    start = time.perf_counter()
    try:
        lines = ["# netderive report", "",
                 f"Every bundled model, derived, printed, compiled, evaluated and checked "
                 f"({time.strftime('%Y-%m-%d %H:%M')}).", ""]
        paths = bundled_model_paths() if paths is None else [Path(p) for p in paths]
        for number, path in enumerate(paths, start=1):
            label = f"[{number}/{len(paths)}] {path.stem}"
            model_start = time.perf_counter()
            with CompileWatch(label=label):
                lines += _model_section(load_model(path), path, tmp, label, quick, CHECKS)
            _say(f"{label}: done in {format_seconds(time.perf_counter() - model_start)} "
                 f"(total {format_seconds(time.perf_counter() - start)})")
        lines.append(f"Report built in {time.perf_counter() - start:.1f} s.")
        (tmp / "report.md").write_text("\n".join(lines) + "\n")
        if output.exists() and output.is_dir() and not any(output.iterdir()):
            output.rmdir()
        if output.exists():
            old = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.old-"))
            os.replace(output, old / "report")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output / "report.md"
