"""``netderive check`` on a large-deviation model, run as a user runs it (a subprocess)."""

from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import CLI


def run_cli(*args: str, cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("NETDERIVE_DEBUG",
                                                             "NETDERIVE_PROGRESS")}
    env["NETDERIVE_CACHE_DIR"] = str(cache)  # PYTHONPATH: conftest's link to this checkout
    return subprocess.run([*CLI, *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sign_check(kernel_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("ld-check")
    return run_cli("check", "ld_sign_dilution", "--draws", "2000", "--seed", "3",
                   cache=kernel_cache_dir, cwd=work)


def test_check_exits_zero_and_all_agree(sign_check) -> None:
    assert sign_check.returncode == 0, sign_check.stderr
    assert "Traceback" not in sign_check.stderr
    out = sign_check.stdout
    assert "check of" in out and "ld_sign_dilution.toml" in out
    assert re.search(r"^\d+/\d+ agree: all agree$", out, re.M), out


def test_check_rows(sign_check) -> None:
    """A row per layer for the typical overlap and N Var, the weight correlation, the rate at a
    point on either side of the typical overlap; each with both numbers, "yes" and a method."""
    rows = {}
    lines = sign_check.stdout.splitlines()
    header = next(line for line in lines if line.startswith("quantity"))
    width = header.index("netderive") - (16 - len("netderive")) - 1  # right-aligned in 16
    for line in lines:
        if re.match(r"^(typical_overlap|overlap_variance|rate_function|weight_correlation) ",
                    line):
            rows[line[:width].strip()] = line[width:].split()
    for layer in (1, 2, 3):
        assert f"typical_overlap l={layer}" in rows
        assert f"overlap_variance l={layer}" in rows
    assert "weight_correlation" in rows
    rates = [name for name in rows if name.startswith("rate_function L=3 q=")]
    assert len(rates) == 2, rows
    for name, fields in rows.items():
        netderive, reference = float(fields[0]), float(fields[1])
        assert math.isfinite(netderive) and math.isfinite(reference), name
        assert "yes" in fields, name
        assert "|diff| <=" in " ".join(fields), name
    assert "N=1000" in " ".join(rows["typical_overlap l=1"])


def test_check_prints_the_convergence_table(sign_check) -> None:
    """The table of -(1/N) ln P_N at N = 25, 50, 100, 200 and its extrapolation follows."""
    out = sign_check.stdout
    head = next(line for line in out.splitlines() if line.startswith("case"))
    for column in ("N=25", "N=50", "N=100", "N=200", "extrapolated"):
        assert column in head
    table = [line for line in out.splitlines() if line.startswith("ld_sign_dilution ")]
    assert len(table) == 2
    for line in table:
        numbers = [float(x) for x in line.split()[1:9]]
        kernel, rates, extrapolated = numbers[2], numbers[3:7], numbers[7]
        assert all(a > b for a, b in zip(rates, rates[1:], strict=False))  # the gap shrinks
        assert abs(extrapolated - kernel) < 1e-3


def test_check_rejects_too_few_draws(kernel_cache_dir: Path, tmp_path: Path) -> None:
    run = run_cli("check", "ld_sign_dilution", "--draws", "10", cache=kernel_cache_dir,
                  cwd=tmp_path)
    assert run.returncode == 2
    assert "--draws 10" in run.stderr


def test_check_rate_at_a_chosen_overlap(kernel_cache_dir: Path, tmp_path: Path) -> None:
    """``--set q=0.3``: the rate is checked there (sign units: the nearest point of the lattice
    shared by N = 25..200, 0.28); an overlap the samplers cannot reach is a usage error."""
    run = run_cli("check", "ld_sign_dilution", "--set", "q=0.3", "--draws", "500",
                  cache=kernel_cache_dir, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rates = [line for line in run.stdout.splitlines() if line.startswith("rate_function")]
    assert len(rates) == 1 and rates[0].startswith("rate_function L=3 q=0.28"), run.stdout
    bad = run_cli("check", "ld_sign_dilution", "--set", "q=0.99", "--draws", "500",
                  cache=kernel_cache_dir, cwd=tmp_path)
    assert bad.returncode == 2 and "q <= 0.97" in bad.stderr, bad.stderr


#: softsign, x / (1 + |x|): bounded (sup 1) but saturating slowly (1 - 1/|x|), which the old
#: numeric test of boundedness (max on [-60, 60] against phi(1e6)) took for unbounded.
SOFTSIGN = """family = "large_deviation"
description = "softsign units, dilution"
activation = "x/(1+abs(x))"
perturbation = "dilution"
p = 0.1
depth = 1
input_overlap = 1.0
weight_variance = 1.5
"""


@pytest.fixture(scope="module")
def softsign_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("softsign") / "ld_softsign.toml"
    path.write_text(SOFTSIGN)
    return path


def test_softsign_reference_model_is_bounded(kernel_cache_dir: Path, softsign_model: Path
                                             ) -> None:
    """The build's ``activation_bound`` kernel gives sup |phi| = 1 (decided symbolically by
    the derivation), and the reference model takes that bound: the rate function's samplers
    run (before: no bound, and check skipped the rate)."""
    from netderive.runtime.families.large_deviation import report as ld_report
    from netderive.runtime.session import build, resolve_model

    b = build(resolve_model(str(softsign_model), cross_checks=True))
    assert b.call("activation_bound", b.defaults) == 1.0
    assert any(note.startswith("sup |phi| = 1:") for note in b.manifest["notes"])
    model = ld_report.reference_model(b)
    assert model.kind == "generic" and model.bound == 1.0


@pytest.mark.slow
def test_check_samples_the_softsign_rate_function(kernel_cache_dir: Path, softsign_model: Path,
                                                  tmp_path: Path) -> None:
    """``check`` on a softsign model checks its rate function by sampling (20 s: most of it
    compiling the rate-function kernel) and agrees."""
    run = run_cli("check", str(softsign_model), "--draws", "500", "--seed", "3",
                  cache=kernel_cache_dir, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "not checked" not in run.stdout, run.stdout
    rates = [line for line in run.stdout.splitlines() if line.startswith("rate_function L=1 q=")]
    assert rates and all(" yes " in line for line in rates), run.stdout
    assert re.search(r"^\d+/\d+ agree: all agree$", run.stdout, re.M), run.stdout


def test_check_refuses_starts(kernel_cache_dir: Path, tmp_path: Path) -> None:
    """The large-deviation check runs no minimisation: ``--starts`` is a one-line error (it
    was silently ignored), for the command line and the Python interface alike."""
    import netderive

    run = run_cli("-q", "check", "ld_sign_dilution", "--starts", "4", cache=kernel_cache_dir,
                  cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == "", run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netderive: error: --starts 4:"), lines
    assert "large_deviation" in lines[0] and "no minimisation" in lines[0]
    with pytest.raises(netderive.ModelError, match="--starts 4: .* no minimisation"):
        netderive.load("ld_sign_dilution").check(starts=4)


def test_curves_by_name(kernel_cache_dir: Path) -> None:
    """``Build.curves``: the whole-curve kernel with its arguments taken by name; the row of
    layer L at the grid points equals the point kernel there; a kernel without curves and a
    missing argument are errors."""
    import numpy as np

    from netderive.runtime.session import build, resolve_model

    b = build(resolve_model("ld_sign_dilution"))
    values = {**b.defaults, "grid_size": 101}
    grid, rows = b.curves("rate_function", values)
    assert grid.shape == (101,) and rows.shape == (int(values["depth"]), 101)
    points = grid[[30, 50, 70]]
    np.testing.assert_allclose(b.grid("rate_function", {"q": points}, values),
                               rows[-1, [30, 50, 70]], rtol=1e-12, atol=1e-14)
    with pytest.raises(KeyError, match="not a curve kernel"):
        b.curves("typical_overlap", values)
    with pytest.raises(KeyError, match="no value for argument 'p'"):
        b.curves("rate_function", {k: v for k, v in values.items() if k != "p"})
