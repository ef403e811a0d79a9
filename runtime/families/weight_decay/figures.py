"""The weight-decay figure of the demo: b* and the loss at the global minimum against the
weight decay for D = 1, 2, 3 (Ziyin, Li, Meng 2022: continuous for D = 1, a jump at gamma_c
for D >= 2).

The figure draws its own models (:data:`MODEL` at the depths :data:`DEPTHS`), whatever the
user has done to the bundled model file whose section shows it (:data:`HOST`).
"""

from __future__ import annotations

import numpy as np

from netderive.derivations.model import ModelSpec, parse_model
from netderive.runtime.figures import pyplot, save_png

from .. import Figure, FigureInput, Section

#: The section showing the figure: that of the bundled model of this name.
HOST = "weight_decay"
#: The figure's model: isotropic data, hidden layers of width 4, dropout-like noise (the
#: bundled ``weight_decay.toml`` as shipped, so that the builds are shared with it).
MODEL = {
    "family": "weight_decay",
    "description": "isotropic, D = 2 hidden layers, dropout-like noise",
    "depth": 2,
    "widths": [4, 4],
    "noise_variance": 0.5,
    "weight_decay": 0.2,
    "data": {"input_covariance": [[1.0, 0.0], [0.0, 1.0]],
             "input_output_covariance": [1.0, 0.0],
             "output_variance": 2.0},
}
#: Where the figure's models come from in messages (its stem names their builds).
SOURCE = f"{HOST}.toml (demo figure)"
#: The depths drawn (hidden layers; equal widths completed by the family's schema).
DEPTHS = (1, 2, 3)
#: The weight-decay axis: START, STOP, NUM of a linspace.
GAMMA_AXIS = (0.002, 1.2, 1200)
#: b* just below gamma_c is taken at gamma_c (1 - JUMP_OFFSET).
JUMP_OFFSET = 1e-9
FILE = "b_star_and_loss_vs_weight_decay.png"


def models(spec: ModelSpec) -> dict[str, ModelSpec]:
    """The figure's model at every depth of :data:`DEPTHS` (``spec``, the host's, unused)."""
    base = parse_model(MODEL, SOURCE)
    return {f"D={depth}": base.with_values({"depth": depth}, f"{SOURCE}, D = {depth}")
            for depth in DEPTHS}


def draw(figure: FigureInput) -> list[Section]:
    """b* and L* against gamma for D = 1, 2, 3 (jump at gamma_c for D >= 2)."""
    plt = pyplot()
    fig, (ax_b, ax_l) = plt.subplots(1, 2, figsize=(11, 4))
    rows = []
    gammas = np.linspace(*GAMMA_AXIS)
    numbers: dict[str, float] = {}
    for depth, colour in zip(DEPTHS, ("C0", "C1", "C2"), strict=True):
        bd = figure.builds[f"D={depth}"]
        values = bd.defaults
        b_star = bd.grid("b_star", {"weight_decay": gammas}, values)
        loss = bd.grid("loss_at_minimum", {"weight_decay": gammas}, values)
        gamma_c = bd.call("critical_weight_decay", values)
        ax_b.plot(gammas, b_star, color=colour, label=f"D = {depth}")
        ax_l.plot(gammas, loss, color=colour, label=f"D = {depth}")
        for ax in (ax_b, ax_l):
            ax.axvline(gamma_c, color=colour, ls=":", lw=1)
        jump = bd.call("b_star", {**values, "weight_decay": gamma_c * (1 - JUMP_OFFSET)})
        rows.append((depth, gamma_c, jump))
        numbers[f"gamma_c D={depth}"] = gamma_c
        numbers[f"b_star below gamma_c D={depth}"] = jump
    ax_b.set(xlabel=r"weight decay $\gamma$", ylabel=r"$b^*$ (layer norm at the global min)",
             title=r"$b^*(\gamma)$: continuous for D = 1, jumps at $\gamma_c$ for D $\geq$ 2")
    ax_l.set(xlabel=r"weight decay $\gamma$", ylabel=r"$\mathcal{L}^*$",
             title=r"loss at the global minimum (dotted: $\gamma_c$)")
    for ax in (ax_b, ax_l):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, figure.folder / FILE)
    table = ["| D | gamma_c | b*(gamma_c-) |", "|---|---|---|"]
    table += [f"| {d} | {g:.6f} | {j:.6f} |" for d, g, j in rows]
    return [Section("b* and L* against the weight decay, D = 1, 2, 3",
                    f"![b* and L* against gamma]({FILE})\n\n" + "\n".join(table), numbers)]


FIGURES = (Figure("b* and L* against the weight decay", lambda spec: spec.stem == HOST, draw,
                  models),)
