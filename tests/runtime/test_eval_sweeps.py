"""Large sweeps: chunked evaluation in grid order, CSV streamed with bounded memory, limits.

The in-process tests use the session cache of tests/conftest.py; the command-line tests run
``python -m runtime.cli`` in a temporary folder as a user would.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI

from netderive.runtime import evaluate as ev
from netderive.runtime.session import UsageError, build, resolve_model


@pytest.fixture(scope="module")
def weight_decay(kernel_cache_dir):
    return build(resolve_model("weight_decay", cross_checks=True))


def run(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETDERIVE_")}
    env["NETDERIVE_CACHE_DIR"] = str(cache)
    return subprocess.run([*CLI, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_chunks_keep_every_curve_whole() -> None:
    """A curve kernel (variable q) computes one curve per setting of its other grid arguments:
    every chunk holds whole curves, whatever the order of the axes."""
    grid = {"p": np.arange(3.0), "q": np.arange(7.0), "depth": np.arange(1.0, 5.0)}
    request = ev.Request(["rate"], {}, grid)
    curve = {"arguments": ["p", "q", "depth"], "curve_variable": "q"}
    plain = {"arguments": ["p", "q"]}
    for chunk in (5, 28, 40, 1000):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ev, "CHUNK", chunk)
            bounds = ev.chunk_bounds(request, [curve, plain])
        assert bounds[0][0] == 0 and bounds[-1][1] == 84
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        for lo, hi in bounds:
            points = ev.chunk_points(request, lo, hi)
            keys = set(zip(points["p"], points["depth"], strict=True))
            # every (p, depth) in this chunk has all 7 values of q in it
            for key in keys:
                members = (points["p"] == key[0]) & (points["depth"] == key[1])
                assert members.sum() == 7, (chunk, lo, hi, key)
    # without a curve kernel the chunks are CHUNK rows
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ev, "CHUNK", 10)
        assert ev.chunk_bounds(request, [plain])[:2] == [(0, 10), (10, 20)]


def test_streamed_csv_equals_the_in_memory_csv(weight_decay, monkeypatch) -> None:
    """Chunk by chunk (chunks of 7 rows) the CSV and the table are those of one pass."""
    grid = {"weight_decay": np.linspace(0.05, 0.6, 9), "noise_variance": np.array([0.0, 0.5,
                                                                                     1.0])}
    request = ev.make_request(weight_decay, ["b_star", "noise_factor"], {}, grid)
    points, results = ev.evaluate(weight_decay, request)
    whole = ev.csv_text(points, results)
    monkeypatch.setattr(ev, "CHUNK", 7)
    monkeypatch.setattr(ev, "TABLE_END_ROWS", 4)
    out = io.StringIO()
    preview, _, _ = ev.sweep(weight_decay, request, out)
    assert out.getvalue() == whole
    assert len(list(ev.evaluate_chunks(weight_decay, request))) == 4
    table = preview.table().splitlines()
    assert len(table) == 1 + 4 + 1 + 4 and "19 rows not shown" in table[5]
    first, last = table[1].split(), table[-1].split()
    assert float(first[2]) == pytest.approx(results["b_star"][0], rel=1e-9)
    assert float(last[2]) == pytest.approx(results["b_star"][-1], rel=1e-9, abs=1e-12)


def test_grid_beyond_the_limit_is_refused_before_any_work(weight_decay) -> None:
    grid = {"weight_decay": np.linspace(0.1, 1, 100_000),
            "noise_variance": np.linspace(0, 1, 100_000)}
    with pytest.raises(UsageError, match="at most 1000000000"):
        ev.make_request(weight_decay, ["b_star"], {}, grid)


def test_cli_refuses_a_huge_table_and_suggests_csv(weight_decay, kernel_cache_dir,
                                                   tmp_path) -> None:
    proc = run("eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1:1:100000",
               "--grid", "noise_variance=0:1:100000", cwd=tmp_path, cache=kernel_cache_dir)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--csv" in proc.stderr and "10000000000 points" in proc.stderr
    proc = run("eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1:1:2000",
               "--grid", "noise_variance=0:1:1000", cwd=tmp_path, cache=kernel_cache_dir)
    assert proc.returncode == 2 and "--csv" in proc.stderr


def test_loop_bounds_have_a_maximum(kernel_cache_dir, tmp_path) -> None:
    proc = run("eval", "expectation_tanh", "mean_output", "--set", "step=1000000000",
               cwd=tmp_path, cache=kernel_cache_dir)
    assert proc.returncode == 2, proc.stderr
    assert "step" in proc.stderr and "1e+06" in proc.stderr


#: Runs the command line twice in one process (a small sweep, then a large one, both to CSV)
#: and prints the peak resident memory (KiB) after each: the growth is the large sweep's own.
PEAK_MEMORY = """
import resource, sys
from netderive.runtime.cli import main
grid = ["-q", "eval", "weight_decay", "noise_factor", "--grid", "weight_decay=0.1:1:1000"]
peaks = []
for axis, out in (("noise_variance=0:1:100", "small.csv"), ("noise_variance=0:1:4000", "big.csv")):
    assert main([*grid, "--grid", axis, "--csv", out, "--parallel", "yes"]) == 0
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print("peaks", *peaks, file=sys.stderr)
"""


@pytest.mark.slow  # formats 1.2e7 values of CSV (~10 s)
def test_streamed_sweep_memory_is_bounded(weight_decay, kernel_cache_dir, tmp_path) -> None:
    """1e5 points then 4e6 points to --csv in one process: the larger sweep adds far less
    than its table and text would take (4e6 rows of ~50 characters, 3 columns)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETDERIVE_")}
    env["NETDERIVE_CACHE_DIR"] = str(kernel_cache_dir)
    proc = subprocess.run([sys.executable, "-c", PEAK_MEMORY], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    small, large = (int(v) / 1024 for v in proc.stderr.split("peaks")[-1].split())
    assert large - small < 100, (small, large)
    with (tmp_path / "big.csv").open() as f:
        assert sum(1 for _ in f) == 4_000_001


def test_csv_to_a_closed_pipe_stops_quietly(weight_decay, kernel_cache_dir, tmp_path) -> None:
    """``eval ... --csv - | head -1``: the reader goes away; no traceback, SIGPIPE's status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETDERIVE_")}
    env["NETDERIVE_CACHE_DIR"] = str(kernel_cache_dir)
    proc = subprocess.Popen([*CLI, "-q", "eval", "weight_decay",
                             "noise_factor", "--grid", "weight_decay=0.1:1:1000", "--grid",
                             "noise_variance=0:1:1000", "--csv", "-"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"weight_decay,")
    proc.stdout.close()
    assert proc.wait(timeout=300) == 141
    assert proc.stderr.read() == b""
