"""The demo's large-deviation figures: sign against ReLU under dilution and binarization.

The slow tests derive and compile the four bundled sign/ReLU models in the session's cache
(about a minute on a fresh cache), then draw the figures with the quick grids.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from netderive.runtime import demo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_FILES = ("ld_typical_overlap.png", "ld_rate_functions.png")
#: notes lisaad2020.md, section 6: ReLU fixed points r* (dilution 0.1, 0.3, 0.5; binarization)
R_STAR = {"dilution, p = 0.1": .781117, "dilution, p = 0.3": .623552,
          "dilution, p = 0.5": .527001, "binarization": .589277}


def _assert_pngs(folder: Path) -> None:
    for name in FIGURE_FILES:
        data = (folder / name).read_bytes()
        assert len(data) > 10_000 and data.startswith(PNG_MAGIC), name
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers  # atomic writes leave no temporary files


def test_large_deviation_figures_are_registered_and_drawn_once(tmp_path: Path) -> None:
    assert demo.FIGURES["large_deviation"] is demo.large_deviation_figures
    assert demo.LD_FIGURE_MODEL in demo.LD_MODELS.values()
    for stem in ("ld_tanh_dilution", *sorted(set(demo.LD_MODELS.values())
                                            - {demo.LD_FIGURE_MODEL})):
        other = SimpleNamespace(spec=SimpleNamespace(stem=stem))
        assert demo.large_deviation_figures(other, tmp_path, True) == []
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def host_build(kernel_cache_dir: Path):
    from netderive.runtime.session import build, resolve_model

    return build(resolve_model(demo.LD_FIGURE_MODEL))


@pytest.mark.slow
def test_large_deviation_figures_quick(host_build, tmp_path: Path) -> None:
    sections = demo.large_deviation_figures(host_build, tmp_path, True)
    _assert_pngs(tmp_path)
    text = "\n".join(title + "\n" + body for title, body in sections)
    for name in FIGURE_FILES:
        assert f"]({name})" in text
    rows = {m.group(1): [float(v) for v in m.group(2).split("|")]
            for m in re.finditer(r"^\| ([a-z][^|]*?) \| ([0-9.| ]+)\|$", text, re.M)}
    assert rows.keys() == R_STAR.keys()
    for case, (_rho, sign_q10, relu_r10, r_star) in rows.items():
        assert r_star == pytest.approx(R_STAR[case], abs=1e-4)
        # the paper's claim: sign decorrelates, ReLU stays near its fixed point r* > 1/pi
        assert sign_q10 < 0.02 and relu_r10 > r_star > 0.5
    assert "+inf at exactly r = 0" in text
    minimum_gap = float(re.search(r"grid minimum is within ([0-9.]+)", text).group(1))
    assert minimum_gap <= 2 / 200  # one step of the quick ReLU grid (201 points on [0, 1])


@pytest.mark.slow
def test_demo_report_links_the_large_deviation_figures(host_build, tmp_path: Path) -> None:
    from netderive import models

    report = demo.run_demo(tmp_path / "report", quick=True,
                           paths=[models.bundled_model(demo.LD_FIGURE_MODEL)])
    text = report.read_text()
    folder = report.parent / demo.LD_FIGURE_MODEL
    _assert_pngs(folder)
    for name in FIGURE_FILES:
        assert f"]({demo.LD_FIGURE_MODEL}/{name})" in text
    assert "sign against ReLU" in text and "more robust than sign networks" in text
