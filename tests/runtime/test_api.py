"""The Python interface (``netderive.load``, ``Model``) and the package as installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI, PROJECT_ROOT

import netderive
from netderive.runtime.session import build, resolve_model


@pytest.fixture(scope="module")
def model(kernel_cache_dir):
    return netderive.load("weight_decay")


def test_quantities_and_parameters(model) -> None:
    b = build(resolve_model("weight_decay"))
    assert model.quantities == tuple(b.quantities)
    assert model.parameters["weight_decay"] == 0.2 and model.parameters["noise_variance"] == 0.5
    assert set(model.parameters) == set(b.inputs)


def test_eval_broadcasts_like_numpy_and_matches_the_scalar_kernel(model) -> None:
    gammas = np.linspace(0.05, 0.6, 7)
    noise = np.array([0.0, 0.5, 1.0])
    table = model.eval("loss_at_minimum", weight_decay=gammas[:, None], noise_variance=noise)
    assert table.shape == (7, 3)
    b = model.build
    for i, g in enumerate(gammas):
        for j, s in enumerate(noise):
            want = b.call("loss_at_minimum", {**b.defaults, "weight_decay": g,
                                              "noise_variance": s})
            assert table[i, j] == want
    one = model.eval("b_star", weight_decay=0.1)
    assert isinstance(one, float) and one == b.call("b_star", {**b.defaults,
                                                                "weight_decay": 0.1})
    assert model.eval("b_star", weight_decay=[0.1]).shape == (1,)
    assert isinstance(model.eval("critical_weight_decay"), float)


@pytest.mark.parametrize(("call", "text"), [
    (lambda m: m.eval("b_sta"), "did you mean 'b_star'"),
    (lambda m: m.eval("b_star", weight_decy=0.1), "did you mean 'weight_decay'"),
    (lambda m: m.eval("b_star", weight_decay=-1.0), "outside the domain"),
    (lambda m: m.eval("b_star", weight_decay=np.array([0.1, np.nan])), "weight_decay"),
    (lambda m: m.check(draws=2000, no_such=1), "no_such"),
])
def test_bad_input_is_a_model_error_in_one_line(model, call, text) -> None:
    with pytest.raises(netderive.ModelError, match=text) as info:
        call(model)
    assert "\n" not in str(info.value)


def test_load_overrides_are_model_keys(kernel_cache_dir) -> None:
    deeper = netderive.load("weight_decay", depth=3)
    assert deeper.build.spec["widths"] == (4, 4, 4)
    with pytest.raises(netderive.ModelError, match="depth"):
        netderive.load("weight_decay", depth=0)
    with pytest.raises(netderive.ModelError, match="did you mean 'weight_decay'"):
        netderive.load("weight_decy")
    assert r"\begin{document}" in deeper.latex()


def _readme_snippet() -> str:
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index("```python", text.index("From Python")) + len("```python\n")
    return text[start:text.index("```", start)]


def _shadowing_folder(tmp_path: Path) -> Path:
    """A user's project with its own ``models``, ``runtime`` and ``codegen`` packages."""
    for name in ("models", "runtime", "codegen", "derivations"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ImportError('the user\\'s own {name} package was imported')\n")
    return tmp_path


def test_cli_and_readme_snippet_ignore_a_users_own_packages(kernel_cache_dir,
                                                            tmp_path: Path) -> None:
    """From a folder holding its own models/, runtime/, codegen/ packages (first on sys.path),
    the command line and the README's Python section use netderive's."""
    folder = _shadowing_folder(tmp_path)
    env = {**os.environ, "NETDERIVE_CACHE_DIR": str(kernel_cache_dir)}
    run = subprocess.run([*CLI, "-q", "eval", "weight_decay", "b_star"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == "b_star"
    (folder / "snippet.py").write_text(_readme_snippet())
    run = subprocess.run([sys.executable, "snippet.py"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "all agree" in run.stdout


@pytest.mark.slow  # builds a wheel (pip, an isolated build environment: ~3 s and setuptools)
def test_the_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: pip builds in the source tree (build/, *.egg-info)
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".netderive-cache"))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                          str(tmp_path), str(source)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    (wheel,) = tmp_path.glob("netderive-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"netderive"}, top
    assert len(top) == 2  # netderive and its .dist-info
    assert "netderive/models/weight_decay.toml" in names
    assert not any(n.startswith("netderive/tests/") for n in names)
    packages = [p.relative_to(PROJECT_ROOT).as_posix() for folder in
                ("derivations", "codegen", "runtime", "models")
                for p in sorted((PROJECT_ROOT / folder).rglob("__init__.py"))]
    assert len(packages) >= 9  # every package of the checkout, the families' too
    missing = [p for p in packages if f"netderive/{p}" not in names]
    assert not missing, missing


def test_grid_kernels_by_name(model) -> None:
    """``Build.grid``: columns and fixed values by name (any order), the result of the scalar
    kernel at each point; a column that is no argument, columns of unequal length and a
    missing argument are errors."""
    b = model.build
    gammas = np.linspace(0.05, 0.6, 5)
    noise = np.linspace(0.0, 1.0, 5)
    got = b.grid("loss_at_minimum", {"noise_variance": noise, "weight_decay": gammas},
                 b.defaults)
    want = [b.call("loss_at_minimum", {**b.defaults, "weight_decay": g, "noise_variance": s})
            for g, s in zip(gammas, noise, strict=True)]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(KeyError, match="'weight_decy' is not an argument"):
        b.grid("b_star", {"weight_decy": gammas}, b.defaults)
    with pytest.raises(ValueError, match="different lengths"):
        b.grid("loss_at_minimum", {"weight_decay": gammas, "noise_variance": noise[:3]},
               b.defaults)
    with pytest.raises(KeyError, match="no value for argument"):
        b.grid("b_star", {"weight_decay": gammas}, {})


def test_check_starts_default_is_the_familys(model) -> None:
    """No ``starts`` given: the weight-decay check takes its family's default (24)."""
    from netderive.runtime.families import family_runtime

    starts = family_runtime("weight_decay").starts
    assert starts is not None and (starts.default, starts.quick) == (24, 8)
