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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from codegen.cache import public_mode

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


def weight_decay_figures(b: Build, folder: Path) -> list[tuple[str, str]]:
    """b* and L* against gamma for D = 1, 2, 3 (jump at gamma_c for D >= 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if b.spec.stem != "weight_decay":
        return []
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
    fig.savefig(folder / "b_star_and_loss_vs_weight_decay.png", dpi=120)
    plt.close(fig)
    table = ["| D | gamma_c | b*(gamma_c-) |", "|---|---|---|"]
    table += [f"| {d} | {g:.6f} | {j:.6f} |" for d, g, j in rows]
    return [("b* and L* against the weight decay, D = 1, 2, 3",
             "![b* and L* against gamma](b_star_and_loss_vs_weight_decay.png)\n\n"
             + "\n".join(table))]


FIGURES: dict[str, Callable[[Build, Path], list[tuple[str, str]]]] = {
    "weight_decay": weight_decay_figures,
}


def run_demo(output: Path, quick: bool = False) -> Path:
    """Build the report for every bundled model into ``output`` (replaced atomically)."""
    from derivations.model import load_model
    from models import bundled_model_paths

    from .check import CHECKS, run_check

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
        paths = bundled_model_paths()
        for number, path in enumerate(paths, start=1):
            spec = load_model(path)
            _say(f"[{number}/{len(paths)}] {path.stem}: building")
            b = build(spec)
            folder = tmp / path.stem
            folder.mkdir()
            shutil.copy(b.latex_path, folder / "formulas.tex")
            shutil.copy(b.markdown_path, folder / "formulas.md")
            lines += [f"## {path.stem} ({spec.family})", "",
                      spec.get("description", ""), "",
                      f"Formulas: [{path.stem}/formulas.md]({path.stem}/formulas.md), "
                      f"LaTeX: [{path.stem}/formulas.tex]({path.stem}/formulas.tex).", ""]
            _say(f"[{number}/{len(paths)}] {path.stem}: evaluating")
            values = b.defaults
            rows = ["| quantity | value at the model's defaults |", "|---|---|"]
            for q in b.quantities:
                args = b.item(q)["arguments"]
                if all(a in values for a in args):
                    rows.append(f"| `{q}` | {b.call(q, values):.10g} |")
            lines += rows + [""]
            for title, body in FIGURES.get(spec.family, lambda *_: [])(b, folder):
                lines += [f"### {title}", "", body.replace("](", f"]({path.stem}/"), ""]
            if spec.family in CHECKS:
                _say(f"[{number}/{len(paths)}] {path.stem}: checking against the references")
                report = run_check(b, {}, draws=20_000 if quick else 200_000,
                                   starts=8 if quick else 24)
                lines += ["### Check against independent references", "", "```",
                          report.table(), "```", ""]
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
