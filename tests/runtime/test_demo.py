"""The demo validates first: every model, and every model its figures and checks need, is
derived before the long work; the figures' models come from their own settings; a model
that fails is reported in its section (and in the exit status) and the others are written."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from netderive import models
from netderive.derivations.model import load_model
from netderive.runtime import cli, demo
from netderive.runtime.families import family_runtime, registry
from netderive.runtime.families.weight_decay import figures as weight_decay_figures

#: The edit of the issue: the demo ran 11 minutes, then stopped deriving the figure's D = 1.
EDITED_WIDTHS = "widths = [4, 2]"


def _edited_weight_decay(folder: Path) -> Path:
    """The bundled weight_decay.toml with unequal widths (no depth can be completed)."""
    folder.mkdir(exist_ok=True)
    path = folder / "weight_decay.toml"
    text = models.bundled_model("weight_decay").read_text()
    path.write_text(re.sub(r"^widths = \[4, 4\]", EDITED_WIDTHS, text, flags=re.M))
    assert EDITED_WIDTHS in path.read_text()
    return path


def test_figure_models_come_from_the_figures_own_settings(tmp_path: Path) -> None:
    """The weight-decay figure draws D = 1, 2, 3 of its own model, whatever the edits of the
    model file whose section shows it; its model is the bundled one as shipped."""
    edited = load_model(_edited_weight_decay(tmp_path))
    bundled = load_model(models.bundled_model("weight_decay"))
    (figure,) = family_runtime("weight_decay").figures
    assert figure.shows(edited) and figure.shows(bundled)
    own = {key: spec.canonical() for key, spec in figure.models(edited).items()}
    assert own == {key: spec.canonical() for key, spec in figure.models(bundled).items()}
    assert sorted(own) == [f"D={d}" for d in weight_decay_figures.DEPTHS]
    depth_2 = figure.models(edited)["D=2"]
    assert depth_2.canonical() == bundled.canonical() and depth_2.stem == "weight_decay"
    assert figure.models(edited)["D=3"]["widths"] == (4, 4, 4)


def test_every_figure_and_check_model_of_the_bundled_models_is_valid() -> None:
    """What the demo derives first: every model each bundled model's figures and check need
    (cross-key checks included; no derivation here)."""
    count = 0
    for path in models.bundled_model_paths():
        spec = load_model(path)
        family = family_runtime(spec.family)
        needed = [other for figure in family.figures if figure.shows(spec)
                  for other in figure.models(spec).values()]
        for other in [*needed, *family.check_models(spec).values()]:
            assert other.with_cross_checks().family == spec.family
            count += 1
    assert count >= 3 + 4 + 2 * 3  # weight decay D = 1..3, four sign/ReLU, orders


def _fake_demo(monkeypatch: pytest.MonkeyPatch, fail: set[str]) -> list[tuple[str, str]]:
    """Record the demo's builds and sections instead of doing them; sections of ``fail``
    raise.  Returns the list of events."""
    events: list[tuple[str, str]] = []

    def fake_build(spec, on_derive=None):
        events.append(("build", spec.stem))
        return SimpleNamespace(spec=spec, rebuilt=False, seconds=0.0)

    def fake_section(prepared, tmp, quick, lines):
        events.append(("section", prepared.path.stem))
        lines += [f"formulas of {prepared.path.stem}", ""]
        if prepared.path.stem in fail:
            raise RuntimeError("the check found no minimum")

    monkeypatch.setattr(demo, "build", fake_build)
    monkeypatch.setattr(demo, "_model_section", fake_section)
    return events


def _models(folder: Path) -> list[Path]:
    """good.toml (valid), bad.toml (invalid: depth 0), boom.toml (valid; its section fails)."""
    folder.mkdir(exist_ok=True)
    text = models.bundled_model("weight_decay_anisotropic").read_text()
    paths = []
    for stem, body in (("good", text), ("bad", re.sub(r"^depth = \d+", "depth = 0", text,
                                                      flags=re.M)),
                       ("boom", text)):
        paths.append(folder / f"{stem}.toml")
        paths[-1].write_text(body)
    return paths


def test_demo_validates_first_and_keeps_the_other_sections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _fake_demo(monkeypatch, fail={"boom"})
    result = demo.run_demo(tmp_path / "report", paths=_models(tmp_path / "models"))
    kinds = [kind for kind, _ in events]
    assert kinds == ["build", "build", "section", "section"], events  # bad is never built
    assert [stem for kind, stem in events if kind == "section"] == ["good", "boom"]
    assert set(result.failures) == {"bad", "boom"}
    assert "depth" in result.failures["bad"] and "\n" not in result.failures["bad"]
    assert result.failures["boom"] == "RuntimeError: the check found no minimum"
    text = result.report.read_text()
    sections = {m.group(1): m.group(2) for m in re.finditer(r"^## (\w+).*?\n(.*?)(?=^## |\Z)",
                                                            text, re.M | re.S)}
    assert list(sections) == ["good", "bad", "boom"]
    assert "formulas of good" in sections["good"] and "Failed" not in sections["good"]
    assert "### Failed" in sections["bad"] and result.failures["bad"] in sections["bad"]
    assert "formulas of boom" in sections["boom"]  # what was done before the failure stays
    assert "the check found no minimum" in sections["boom"]
    assert "2 of 3 models failed: bad, boom." in text


def test_demo_exit_status_is_one_when_a_model_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    _fake_demo(monkeypatch, fail=set())
    paths = _models(tmp_path / "models")
    monkeypatch.setattr(models, "bundled_model_paths", lambda: paths)
    assert cli.main(["-q", "demo", "--output", str(tmp_path / "report")]) == 1
    captured = capsys.readouterr()
    assert "report: " in captured.out
    assert "1 model(s) failed: bad" in captured.err
    monkeypatch.setattr(models, "bundled_model_paths", lambda: [paths[0], paths[2]])
    assert cli.main(["-q", "demo", "--output", str(tmp_path / "report")]) == 0


def test_the_figures_models_are_derived_before_any_section(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edited weight_decay.toml: its own build, then the figure's D = 1, 2, 3, all before
    the first section."""
    events = _fake_demo(monkeypatch, fail=set())
    result = demo.run_demo(tmp_path / "report", paths=[_edited_weight_decay(tmp_path / "m")])
    assert result.failures == {}
    assert events == [("build", "weight_decay")] * 4 + [("section", "weight_decay")]
    assert len(registry()) == 3


@pytest.mark.slow  # derives the edited model and the figure's D = 1, 3 models; runs the check
def test_demo_with_an_edited_bundled_model(tmp_path: Path, kernel_cache_dir: Path) -> None:
    """The issue's run: ``widths = [4, 2]`` in weight_decay.toml.  The demo draws the figure
    from its own settings and checks the edited model; nothing fails."""
    result = demo.run_demo(tmp_path / "report", quick=True,
                           paths=[_edited_weight_decay(tmp_path / "m")])
    assert result.failures == {}
    text = result.report.read_text()
    assert "![b* and L* against gamma](weight_decay/" in text
    assert re.search(r"^\| 2 \| 0\.\d+ \| ", text, re.M)  # the figure's D = 2 row
    assert re.search(r"^\d+/\d+ agree: all agree$", text, re.M), text
