"""The demo's large-deviation figures: sign against ReLU under dilution and binarization.

The slow tests derive and compile the figures' four sign/ReLU models in the session's cache
(about a minute on a fresh cache), then draw the figures with the quick grids.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from netderive.derivations.model import load_model
from netderive.runtime import demo
from netderive.runtime.families import FigureInput, family_runtime
from netderive.runtime.families.large_deviation import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_FILES = ("ld_typical_overlap.png", "ld_rate_functions.png")
#: notes lisaad2020.md, section 6: ReLU fixed points r* (dilution 0.1, 0.3, 0.5; binarization)
R_STAR = {"dilution, p = 0.1": .781117, "dilution, p = 0.3": .623552,
          "dilution, p = 0.5": .527001, "binarization": .589277}
#: The quick ReLU grid: 201 points on [0, 1]; the figure's minimum lies within one step.
QUICK_RELU_STEP = 1 / 200


def _assert_pngs(folder: Path) -> None:
    for name in FIGURE_FILES:
        data = (folder / name).read_bytes()
        assert len(data) > 10_000 and data.startswith(PNG_MAGIC), name
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers  # atomic writes leave no temporary files


def test_large_deviation_figures_are_registered_and_shown_once() -> None:
    """The family's figure is shown in the section of one bundled model only, and it draws its
    own four models: the bundled sign and ReLU models as shipped (their builds are shared)."""
    from netderive import models

    (figure,) = family_runtime("large_deviation").figures
    assert figure.draw is figures.draw
    shown = [p.stem for p in models.bundled_model_paths() if figure.shows(load_model(p))]
    assert shown == [figures.HOST]
    own = figure.models(load_model(models.bundled_model("ld_tanh_dilution")))
    assert len(own) == len(figures.MODELS) == 4
    for key, stem in figures.STEMS.items():
        bundled = load_model(models.bundled_model(stem))
        assert own[figures._key(*key)].canonical() == bundled.canonical(), stem
        assert own[figures._key(*key)].stem == stem  # the same cache folder


@pytest.fixture(scope="module")
def figure_builds(kernel_cache_dir: Path) -> dict:
    from netderive import models
    from netderive.runtime.session import build

    host = load_model(models.bundled_model(figures.HOST))
    return build(host), {key: build(spec) for key, spec in figures.models(host).items()}


@pytest.mark.slow
def test_large_deviation_figures_quick(figure_builds, tmp_path: Path) -> None:
    host, builds = figure_builds
    sections = figures.draw(FigureInput(host, builds, tmp_path, True))
    _assert_pngs(tmp_path)
    text = "\n".join(section.title + "\n" + section.body for section in sections)
    for name in FIGURE_FILES:
        assert f"]({name})" in text
    rows = {m.group(1): [float(v) for v in m.group(2).split("|")]
            for m in re.finditer(r"^\| ([a-z][^|]*?) \| ([0-9.| ]+)\|$", text, re.M)}
    assert rows.keys() == R_STAR.keys()
    typical, rates = sections[0].numbers, sections[1].numbers
    for case, (rho, sign_q10, relu_r10, r_star) in rows.items():
        assert r_star == pytest.approx(R_STAR[case], abs=1e-4)
        assert typical[f"relu r* {case}"] == pytest.approx(r_star, abs=1e-4)  # table = numbers
        assert typical[f"rho {case}"] == pytest.approx(rho, abs=1e-4)
        # the paper's claim: sign decorrelates, ReLU stays near its fixed point r* > 1/pi
        assert sign_q10 < 0.02 and relu_r10 > r_star > 0.5
        assert typical[f"relu r_10 {case}"] > typical[f"sign q_10 {case}"] + 0.5
    assert typical["relu more robust"] == 1.0
    # what the figure says of the ReLU rates at the grid ends r = 0 and r = 1 is what the
    # kernels give there (finite for dilution: I_1(0) = J(0 | 1) > 0)
    depth = max(figures.RATE_DEPTHS)
    ends = []
    for perturbation in ("dilution", "binarization"):
        bd = builds[figures._key("relu", perturbation)]
        p = figures.RATE_DILUTION if perturbation == "dilution" else None
        x, curves = bd.curves("rate_function", figures._values(
            bd, p, depth=depth, grid_size=figures.RATE_GRIDS["relu"][0]))
        assert x[0] == 0.0 and x[-1] == 1.0
        ends += [curves[:, 0], curves[:, -1]]
    lowest = min(float(min(end)) for end in ends)
    assert rates["relu rate at the grid ends"] == lowest > 0
    finite_text = "finite where drawn" in sections[1].body
    assert finite_text == math.isfinite(lowest)
    assert rates["grid minimum gap"] <= 2 * QUICK_RELU_STEP
    # both at overlap 0.5 are large deviations at L = 5 (the text states the two rates; which
    # is rarer depends on the dilution: sign 0.047 < ReLU 0.076 at p = 0.1)
    for activation in ("sign", "relu"):
        bd = builds[figures._key(activation, "dilution")]
        x, curves = bd.curves("rate_function", figures._values(
            bd, figures.RATE_DILUTION, depth=depth,
            grid_size=figures.RATE_GRIDS[activation][0]))
        stated = rates[f"{activation} I_5(0.5)"]
        assert stated == pytest.approx(float(np.interp(0.5, x, curves[4])), rel=1e-12)
        assert stated > 0.01


@pytest.mark.slow
def test_demo_report_links_the_large_deviation_figures(figure_builds, tmp_path: Path) -> None:
    from netderive import models

    result = demo.run_demo(tmp_path / "report", quick=True,
                           paths=[models.bundled_model(figures.HOST)])
    assert result.failures == {}
    text = result.report.read_text()
    folder = result.report.parent / figures.HOST
    _assert_pngs(folder)
    for name in FIGURE_FILES:
        assert f"]({figures.HOST}/{name})" in text
    rows = {m.group(1): [float(v) for v in m.group(2).split("|")]
            for m in re.finditer(r"^\| ([a-z][^|]*?) \| ([0-9.| ]+)\|$", text, re.M)}
    assert rows.keys() == R_STAR.keys()
    for _rho, sign_q10, relu_r10, _r_star in rows.values():  # ReLU keeps more overlap
        assert relu_r10 > sign_q10 + 0.5
