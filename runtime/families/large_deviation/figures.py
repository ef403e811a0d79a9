"""The large-deviation figures of the demo: sign against ReLU networks under the same weight
perturbation (Li and Saad 2020).

(1) The typical overlap q_l (sign) and r_l (ReLU) for l = 0..10 under dilution (three p) and
binarization, with the ReLU fixed point r*; (2) the rate functions I_L of the output overlap
for L = 1, 2, 3, 5 (dynamic programming; zero at the typical overlap).  The figures draw their
own four models (:data:`MODELS`) and are shown once, in the section of :data:`HOST`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netderive.derivations.model import ModelSpec, parse_model
from netderive.runtime.figures import pyplot, save_png
from netderive.runtime.session import Build

from .. import Figure, FigureInput, Section

#: The figures' models by (activation, perturbation): the bundled sign and ReLU models as
#: shipped (so that their builds are shared), at the bundled models' p = 0.1 and depth 3.
MODELS: dict[tuple[str, str], dict] = {
    (activation, perturbation): {
        "family": "large_deviation",
        "description": f"{activation} units, {perturbation}",
        "activation": activation,
        "perturbation": perturbation,
        **({"p": 0.1} if perturbation == "dilution" else {}),
        "depth": 3,
        "input_overlap": 1.0,
    }
    for activation in ("sign", "relu") for perturbation in ("dilution", "binarization")}
#: The stems of their builds (cache folders, messages).
STEMS = {(activation, perturbation): f"ld_{activation}_{perturbation}"
         for activation, perturbation in MODELS}
#: The figures compare all four models; they are drawn once, in the section of the bundled
#: model of this name (the first of them in the report).
HOST = min(STEMS.values())
#: Dilution fractions of the typical-overlap figure; depths of the rate-function figure.
DILUTIONS = (0.1, 0.3, 0.5)
LAYERS = 10
RATE_DEPTHS = (1, 2, 3, 5)
#: Dilution fraction of the rate-function figure (the bundled models' p).
RATE_DILUTION = 0.1
#: DP grid sizes of the rate functions: (--quick, full) per activation.
RATE_GRIDS = {"sign": (1001, 2001), "relu": (201, 401)}
#: The overlap of the rate examples of the text, and the width N of its probabilities.
EXAMPLE_OVERLAP = 0.5
EXAMPLE_WIDTH = 100
NAMES = {"sign": "sign", "relu": "ReLU"}
TYPICAL_FILE, RATE_FILE = "ld_typical_overlap.png", "ld_rate_functions.png"


def _key(activation: str, perturbation: str) -> str:
    return f"{activation} {perturbation}"


def models(spec: ModelSpec) -> dict[str, ModelSpec]:
    """The four models of :data:`MODELS` (``spec``, the host's, unused)."""
    return {_key(*key): parse_model(raw, f"{STEMS[key]}.toml (demo figure)")
            for key, raw in MODELS.items()}


def _values(b: Build, p: float | None, **more: float) -> dict[str, float]:
    return {**b.defaults, **({} if p is None else {"p": p}), **more}


def draw(figure: FigureInput) -> list[Section]:
    """Both figures and their report text (numbers by name in each section's ``numbers``)."""
    plt = pyplot()
    builds = {key: figure.builds[_key(*key)] for key in MODELS}
    perturbations = {"dilution": DILUTIONS, "binarization": (None,)}
    styles = {"sign": dict(ls="--", marker="s", ms=4, mfc="none"),
              "relu": dict(ls="-", marker="o", ms=4)}

    # (1) typical overlap against the layer
    layers = np.arange(LAYERS + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    typical: dict[tuple[str, str, float | None], np.ndarray] = {}
    fixed: dict[tuple[str, float | None], float] = {}
    for ax, (perturbation, ps) in zip(axes, perturbations.items(), strict=True):
        for colour, p in zip(("C0", "C1", "C2"), ps, strict=False):
            label_p = "" if p is None else f"p = {p:g}, "
            for activation in ("sign", "relu"):
                bd = builds[activation, perturbation]
                overlaps = [bd.call("typical_overlap", _values(bd, p, depth=int(layer)))
                            for layer in layers[1:]]
                path = np.array([_values(bd, p)["input_overlap"], *overlaps])
                typical[activation, perturbation, p] = path
                ax.plot(layers, path, color=colour, **styles[activation],
                        label=f"{label_p}{NAMES[activation]}")
            relu = builds["relu", perturbation]
            r_star = relu.call("fixed_point", _values(relu, p))
            fixed[perturbation, p] = r_star
            ax.axhline(r_star, color=colour, ls=":", lw=1.2)
            ax.annotate(f"$r^* = {r_star:.3f}$", (LAYERS, r_star), xytext=(4, 0),
                        textcoords="offset points", va="center", color=colour, fontsize=9)
        ax.set(xlabel="layer $l$", xlim=(0, LAYERS), xticks=layers, ylim=(-0.02, 1.02))
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
    save_png(fig, figure.folder / TYPICAL_FILE)

    # (2) rate functions I_L(q) for several depths: rows perturbation, columns activation
    depth = max(RATE_DEPTHS)
    grids = {activation: sizes[0 if figure.quick else 1]
             for activation, sizes in RATE_GRIDS.items()}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharey=True, sharex="col")
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    worst = 0.0
    for row_axes, perturbation in zip(axes, perturbations, strict=True):
        p = RATE_DILUTION if perturbation == "dilution" else None
        case = f"dilution p = {p:g}" if p is not None else "binarization"
        for ax, activation in zip(row_axes, ("sign", "relu"), strict=True):
            bd = builds[activation, perturbation]
            x, rates = bd.curves("rate_function",
                                 _values(bd, p, depth=depth, grid_size=grids[activation]))
            curves[activation, perturbation] = x, rates
            path = typical[activation, perturbation, p]
            for colour, layer in zip(("C0", "C1", "C2", "C3"), RATE_DEPTHS, strict=True):
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
            ax.set(title=f"{NAMES[activation]}, {case}", ylim=(0, 0.8),
                   xlim=(float(x[0]), float(x[-1])))
            if perturbation == "binarization":
                ax.set(xlabel=f"output overlap ${symbol}$")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9, loc="upper center" if activation == "sign" else "upper left")
        row_axes[0].set(ylabel=r"rate function $I_L$")
    fig.suptitle(r"Finite width $N$: $P(\mathrm{overlap}_L \approx q) \asymp e^{-N I_L(q)}$; "
                 "dots: typical overlap (the zero of $I_L$)", fontsize=11)
    fig.tight_layout()
    save_png(fig, figure.folder / RATE_FILE)
    return [_typical_section(builds, typical, fixed, perturbations),
            _rate_section(curves, typical, worst, grids, depth)]


def _case(perturbation: str, p: float | None) -> str:
    return perturbation if p is None else f"{perturbation}, p = {p:g}"


def _typical_section(builds: Mapping[tuple[str, str], Build],
                     typical: Mapping[tuple[str, str, float | None], np.ndarray],
                     fixed: Mapping[tuple[str, float | None], float],
                     perturbations: Mapping[str, tuple]) -> Section:
    """The text and table of the typical-overlap figure, with the paper's claim checked on
    the numbers: ReLU keeps more overlap than sign after :data:`LAYERS` layers."""
    numbers: dict[str, float] = {}
    table = ["| perturbation | weight correlation $\\rho$ | sign $q_{10}$ | ReLU $r_{10}$ "
             "| ReLU $r^*$ |", "|---|---|---|---|---|"]
    for perturbation, ps in perturbations.items():
        for p in ps:
            sign = builds["sign", perturbation]
            case = _case(perturbation, p)
            numbers |= {f"rho {case}": sign.call("weight_correlation", _values(sign, p)),
                        f"sign q_{LAYERS} {case}": float(typical["sign", perturbation, p][-1]),
                        f"relu r_{LAYERS} {case}": float(typical["relu", perturbation, p][-1]),
                        f"relu r* {case}": fixed[perturbation, p]}
            table.append(f"| {case} | {numbers[f'rho {case}']:.4f} | "
                         f"{numbers[f'sign q_{LAYERS} {case}']:.4f} | "
                         f"{numbers[f'relu r_{LAYERS} {case}']:.4f} | "
                         f"{numbers[f'relu r* {case}']:.4f} |")
    cases = [_case(perturbation, p) for perturbation, ps in perturbations.items() for p in ps]
    robust = all(numbers[f"relu r_{LAYERS} {c}"] > numbers[f"sign q_{LAYERS} {c}"]
                 for c in cases)
    d = RATE_DILUTION
    sign_d, relu_d = typical["sign", "dilution", d], typical["relu", "dilution", d]
    claim = ("This is the paper's claim: ReLU networks are more robust than sign networks to the "
             "same perturbation." if robust else
             "Here the paper's claim, ReLU networks more robust than sign networks, does not "
             f"hold at every perturbation of the table (layer {LAYERS}).")
    text = (
        "Typical overlap between a random network and its perturbed copy at every layer "
        "(mean field, same input). The perturbation enters only through the weight "
        r"correlation $\rho$. Sign overlaps follow $q_l = \frac{2}{\pi}\arcsin(\rho\, q_{l-1})$ "
        "and decay to 0: the perturbed sign network computes an unrelated function after a "
        r"few layers. ReLU overlaps follow $r_l = \kappa(\rho\, r_{l-1})$ and converge to the "
        r"fixed point $r^* > 1/\pi$ (dotted): the perturbed ReLU network stays correlated "
        f"with the original at any depth. With {d:.0%} of the weights removed, sign has "
        f"$q_{{{LAYERS}}}$ = {sign_d[-1]:.4f} and ReLU $r_{{{LAYERS}}}$ = {relu_d[-1]:.4f} "
        f"($r^*$ = {fixed['dilution', d]:.4f}); binarization ($\\rho$ = "
        f"{numbers['rho binarization']:.3f}) leaves ReLU at $r_{{{LAYERS}}}$ = "
        f"{typical['relu', 'binarization', None][-1]:.4f} against sign "
        f"{typical['sign', 'binarization', None][-1]:.4f}. " + claim)
    numbers["relu more robust"] = float(robust)
    return Section("Large deviations: sign against ReLU, typical overlap (all four sign and "
                   "ReLU models)",
                   f"![typical overlap against the layer]({TYPICAL_FILE})\n\n" + text + "\n\n"
                   + "\n".join(table), numbers)


def _rate_section(curves: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
                  typical: Mapping[tuple[str, str, float | None], np.ndarray], worst: float,
                  grids: Mapping[str, int], depth: int) -> Section:
    """The text of the rate-function figure: examples at :data:`EXAMPLE_OVERLAP`, and what
    the ReLU curves are at the ends r = 0 and r = 1 of their grid."""
    def rate(activation: str, layer: int, q: float) -> float:
        x, rates = curves[activation, "dilution"]
        return float(np.interp(q, x, rates[layer - 1]))

    d, L, n, q = RATE_DILUTION, depth, EXAMPLE_WIDTH, EXAMPLE_OVERLAP
    sign_d, relu_d = typical["sign", "dilution", d], typical["relu", "dilution", d]
    sign_half, relu_half = rate("sign", L, q), rate("relu", L, q)
    ends = [rates[:, k] for activation, perturbation in curves if activation == "relu"
            for rates in [curves[activation, perturbation][1]] for k in (0, -1)]
    infinite_ends = all(np.all(np.isinf(end)) for end in ends)
    numbers = {"grid minimum gap": worst, f"sign I_{L}({q:g})": sign_half,
               f"relu I_{L}({q:g})": relu_half,
               "relu rate at the grid ends": float(np.min(np.concatenate(ends)))}
    ends_text = ("The ReLU kernels return +inf at exactly r = 0 and r = 1; those two grid "
                 "points are not drawn." if infinite_ends else
                 "The ReLU rates at the grid ends r = 0 and r = 1 are finite where drawn.")
    text = (
        "Rate functions of the output overlap at finite width $N$, "
        r"$P(\mathrm{overlap}_L \approx q) \asymp e^{-N I_L(q)}$ (contraction principle, "
        f"dynamic programming on {grids['sign']} points for sign, {grids['relu']} for ReLU). "
        "Each curve is zero at the typical overlap of the first figure (dots; the grid "
        f"minimum is within {worst:.4f} of it). With depth the sign minimum slides towards 0, "
        f"the ReLU minimum only towards $r^*$. At L = {L} with {d:.0%} dilution the typical "
        f"overlaps are {sign_d[L]:.3f} (sign) and {relu_d[L]:.3f} (ReLU). A sign network "
        f"that still has overlap {q:g} is a large deviation, $I_{L}({q:g})$ = {sign_half:.3f} "
        f"(probability roughly $e^{{-{n * sign_half:.1f}}}$ at N = {n}, up to a "
        f"sub-exponential factor); so is a ReLU network that has fallen to {q:g}, "
        f"$I_{L}({q:g})$ = {relu_half:.3f} ($e^{{-{n * relu_half:.1f}}}$). " + ends_text)
    return Section("Large deviations: sign against ReLU, rate functions",
                   f"![rate functions of the output overlap]({RATE_FILE})\n\n" + text, numbers)


FIGURES = (Figure("sign against ReLU", lambda spec: spec.stem == HOST, draw, models),)
