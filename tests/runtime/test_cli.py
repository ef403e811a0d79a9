"""The ``netderive`` command line, run as a user runs it: in subprocesses, from other folders.

Every run gets ``NETDERIVE_CACHE_DIR`` pointing to one session-wide temporary folder, so
the weight-decay model is derived once and numba compiles each kernel once per session.
"""

from __future__ import annotations

import csv
import fcntl
import itertools
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
BUNDLED = MODELS_DIR / "weight_decay.toml"
QUANTITIES = ["loss_at_minimum", "b_star", "critical_weight_decay"]  # deliberately unsorted
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: gamma_c of the bundled model at sigma^2 = 0 (D = 2, a = m = 1): (m^4 / (16 a))^(1/3)
GAMMA_C_NO_NOISE = (1.0 / 16.0) ** (1.0 / 3.0)
#: the second run of an unchanged build must take well under a second; the bound is 1.5 s
#: of wall time (process start-up included) so that a loaded CI machine does not flake.
UNCHANGED_BUILD_SECONDS = 1.5


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("netderive-cli-cache")


@pytest.fixture(scope="session")
def env(cache_dir: Path) -> dict[str, str]:
    ours = ("NETDERIVE_DEBUG", "NETDERIVE_PROGRESS")
    environment = {k: v for k, v in os.environ.items() if k not in ours}
    environment["NETDERIVE_CACHE_DIR"] = str(cache_dir)
    return environment


@pytest.fixture(scope="session")
def cli(env: dict[str, str]) -> Callable[..., Run]:
    """Run ``python -m runtime.cli ARGS`` in folder ``cwd`` (never the project folder)."""

    def run(*args: str | Path, cwd: Path, timeout: float = 600) -> Run:
        argv = [str(a) for a in args]
        start = time.perf_counter()
        proc = subprocess.run([*CLI, *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
        return Run(argv, proc.returncode, proc.stdout, proc.stderr,
                   time.perf_counter() - start)

    return run


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the project to run the command line from."""
    return tmp_path_factory.mktemp("cli-work")


@pytest.fixture(scope="session")
def built(cli, work: Path) -> Run:
    """The first build of the bundled model in this session's cache."""
    run = cli("build", "weight_decay", cwd=work)
    assert run.returncode == 0, run.stderr
    return run


def ok(run: Run) -> Run:
    assert run.returncode == 0, f"{run.args}: exit {run.returncode}\n{run.stderr}"
    assert "Traceback" not in run.stderr, run.stderr
    return run


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def as_floats(rows: list[list[str]]) -> np.ndarray:
    return np.array([[float(x) for x in row] for row in rows])


def build_dirs(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.glob("*/*") if p.is_dir()]


def leftovers(cache_dir: Path) -> list[Path]:
    """Temporary or partial entries anywhere in the cache."""
    return [p for p in cache_dir.rglob("*")
            if re.match(r"^\..*(tmp|stale)-", p.name) or p.name.endswith(".tmp")]


# -- build ------------------------------------------------------------------------------------


def test_build_then_unchanged(cli, built: Run, work: Path, cache_dir: Path) -> None:
    assert built.stdout.startswith(("derived and generated", "unchanged"))
    second = ok(cli("build", "weight_decay", cwd=work))
    assert second.stdout.startswith("unchanged:"), second.stdout
    assert second.seconds < UNCHANGED_BUILD_SECONDS, (
        f"unchanged build took {second.seconds:.2f} s of wall time")
    reported = re.search(r"(\d+) ms\)", second.stdout)
    assert reported and int(reported.group(1)) < 500, second.stdout
    assert second.stderr == ""
    directory = Path(second.stdout.split("(")[1].split(",")[0])
    assert directory.parent.parent == cache_dir
    assert {p.name for p in directory.iterdir()} >= {"kernels.py", "formulas.tex",
                                                     "formulas.md", "manifest.json"}


def test_build_any_model_path(cli, tmp_path: Path) -> None:
    folder = tmp_path / "some where" / "deep"
    folder.mkdir(parents=True)
    model = folder / "my model.toml"
    model.write_text(BUNDLED.read_text().replace("depth = 2 ", "depth = 1 ")
                     .replace("widths = [4, 4]", "widths = [3]"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = ok(cli("build", model, cwd=elsewhere))
    assert first.stdout.startswith("derived and generated"), first.stdout
    assert "my model" in first.stdout
    # a relative path from another folder names the same content: unchanged
    second = ok(cli("build", Path("some where/deep/my model.toml"), cwd=tmp_path))
    assert second.stdout.startswith("unchanged:"), second.stdout
    assert second.seconds < UNCHANGED_BUILD_SECONDS


def test_interrupted_build_leaves_nothing_half_written(env, cache_dir: Path,
                                                       tmp_path: Path) -> None:
    model = tmp_path / "interrupted.toml"
    model.write_text(BUNDLED.read_text().replace("depth = 2 ", "depth = 4 ")
                     .replace("widths = [4, 4]", "widths = [2, 3, 4, 5]"))
    proc = subprocess.Popen([*CLI, "build", str(model)],
                            cwd=tmp_path, env={**env, "NETDERIVE_PROGRESS": "1"},
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().startswith("deriving ")  # the derivation has started
    time.sleep(0.5)  # inside the derivation (sympy imported, nothing written yet)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    # 130 from our handler; -SIGINT when the interrupt landed inside code that sympy runs
    # through exec(str): CPython then re-raises SIGINT at exit even though it was handled
    assert proc.returncode in (0, 130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    if proc.returncode != 0:
        assert stderr.strip().splitlines()[-1] == "netderive: interrupted"
    assert leftovers(cache_dir) == []
    for directory in build_dirs(cache_dir):
        if directory.name.startswith("interrupted-"):  # finished before the signal: complete
            assert {p.name for p in directory.iterdir()} >= {"kernels.py", "manifest.json",
                                                             "formulas.tex", "formulas.md"}


# -- models, latex --------------------------------------------------------------------------


def test_models_lists_bundled_models(cli, work: Path) -> None:
    run = ok(cli("models", cwd=work))
    lines = run.stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(p.stem for p in MODELS_DIR.glob("*.toml"))
    assert {"weight_decay", "weight_decay_anisotropic", "ld_sign_dilution",
            "ld_sign_binarization", "ld_relu_dilution", "ld_relu_binarization",
            "ld_tanh_dilution"} <= set(names)
    families = {line.split()[0]: line.split()[1] for line in lines}
    assert {families[n] for n in names if n.startswith("ld_")} == {"large_deviation"}
    assert {families[n] for n in names if n.startswith("weight_decay")} == {"weight_decay"}


def test_latex_document(cli, built: Run, work: Path) -> None:
    run = ok(cli("latex", "weight_decay", cwd=work))
    assert r"\begin{document}" in run.stdout
    assert r"\end{document}" in run.stdout
    assert "$$" not in run.stdout


def test_latex_markdown(cli, built: Run, work: Path) -> None:
    run = ok(cli("latex", "weight_decay", "--markdown", cwd=work))
    assert "$$" in run.stdout
    assert r"\begin{document}" not in run.stdout


def test_latex_to_file(cli, built: Run, tmp_path: Path) -> None:
    run = ok(cli("latex", "weight_decay", "-o", "formulas.tex", cwd=tmp_path))
    assert r"\begin{document}" in (tmp_path / "formulas.tex").read_text()
    assert run.stdout == "" and run.stderr.startswith("wrote")  # status lines go to stderr
    assert [p.name for p in tmp_path.iterdir()] == ["formulas.tex"]  # no temporary file left


# -- eval -------------------------------------------------------------------------------------

WD_AXIS = np.linspace(0.05, 0.6, 5)
NV_AXIS = [0.0, 0.25, 0.5]


@pytest.fixture(scope="session")
def grid_run(cli, built: Run, tmp_path_factory: pytest.TempPathFactory):
    """Two grid axes (weight_decay slowest), three quantities, CSV and PNG."""
    folder = tmp_path_factory.mktemp("eval-grid")
    run = ok(cli("eval", "weight_decay", *QUANTITIES, "--grid", "weight_decay=0.05:0.6:5",
                 "--grid", "noise_variance=0,0.25,0.5", "--csv", "out.csv", "--plot", "out.png",
                 cwd=folder))
    return run, folder / "out.csv", folder / "out.png"


@pytest.fixture(scope="session")
def default_run(cli, built: Run, tmp_path_factory: pytest.TempPathFactory):
    """No grid, model defaults (weight_decay = 0.2): one row."""
    folder = tmp_path_factory.mktemp("eval-default")
    ok(cli("eval", "weight_decay", *QUANTITIES, "--csv", "out.csv", cwd=folder))
    return read_csv(folder / "out.csv")


def test_eval_csv_header_and_column_order(grid_run) -> None:
    _, csv_path, _ = grid_run
    header, _ = read_csv(csv_path)
    assert header == ["weight_decay", "noise_variance", *QUANTITIES]


def test_eval_csv_rows_are_the_cartesian_product(grid_run) -> None:
    _, csv_path, _ = grid_run
    _, rows = read_csv(csv_path)
    assert len(rows) == len(WD_AXIS) * len(NV_AXIS)
    assert all(len(row) == 2 + len(QUANTITIES) for row in rows)
    points = [(float(r[0]), float(r[1])) for r in rows]
    expected = list(itertools.product([float(v) for v in WD_AXIS], NV_AXIS))
    assert points == expected  # bit-exact: the first axis varies slowest


def test_eval_csv_floats_are_full_precision(grid_run) -> None:
    _, csv_path, _ = grid_run
    _, rows = read_csv(csv_path)
    for row in rows:
        for cell in row:
            assert repr(float(cell)) == cell, cell  # repr, parses back bit-exactly
    # 0.05 + 2 * 0.1375 is not 0.325 in binary: the CSV keeps every bit
    assert rows[6][0] == repr(float(WD_AXIS[2]))


def test_eval_values_are_consistent(grid_run) -> None:
    run, csv_path, _ = grid_run
    header, rows = read_csv(csv_path)
    table = dict(zip(header, as_floats(rows).T, strict=True))
    wd, nv = table["weight_decay"], table["noise_variance"]
    b, loss, gamma_c = table["b_star"], table["loss_at_minimum"], table["critical_weight_decay"]
    assert np.all(np.isfinite(as_floats(rows)))
    # gamma_c does not depend on weight_decay, falls with the noise, is the closed form at 0
    for v in NV_AXIS:
        assert len(set(gamma_c[nv == v])) == 1
    assert np.allclose(gamma_c[nv == 0.0], GAMMA_C_NO_NOISE, rtol=1e-12, atol=0)
    assert gamma_c[nv == 0.5][0] < gamma_c[nv == 0.25][0] < gamma_c[nv == 0.0][0]
    # below gamma_c the minimum is nonzero and lower than L(0) = E[y^2] = 2; above it is 0
    below = wd < gamma_c
    assert below.any() and (~below).any()
    assert np.all(b[below] > 0) and np.all(loss[below] < 2.0)
    assert np.all(b[~below] == 0) and np.all(loss[~below] == 2.0)
    # the printed table shows the same numbers (rounded)
    printed = run.stdout.splitlines()
    assert printed[0].split() == header
    assert np.allclose(np.array([[float(x) for x in line.split()] for line in printed[1:]]),
                       as_floats(rows), rtol=1e-9, atol=1e-12)


def test_eval_plot_is_a_png(grid_run) -> None:
    run, _, png_path = grid_run
    data = png_path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000
    assert not [p for p in png_path.parent.iterdir() if p.name.startswith(".")]


def test_eval_grid_list_and_set(cli, built: Run, default_run, tmp_path: Path) -> None:
    ok(cli("eval", "weight_decay", *QUANTITIES, "--grid", "weight_decay=0.1,0.2,0.3",
           "--csv", "list.csv", cwd=tmp_path))
    header, rows = read_csv(tmp_path / "list.csv")
    assert header == ["weight_decay", *QUANTITIES]
    assert [row[0] for row in rows] == ["0.1", "0.2", "0.3"]
    ok(cli("eval", "weight_decay", *QUANTITIES, "--set", "weight_decay=0.1",
           "--csv", "set.csv", cwd=tmp_path))
    set_header, set_rows = read_csv(tmp_path / "set.csv")
    default_header, default_rows = default_run
    assert set_header == default_header == QUANTITIES
    assert len(set_rows) == len(default_rows) == 1
    # --set weight_decay=0.1 gives the list's 0.1 row, bit for bit; the default is 0.2
    assert set_rows[0] == rows[0][1:]
    assert default_rows[0] == rows[1][1:]
    loss = QUANTITIES.index("loss_at_minimum")
    b = QUANTITIES.index("b_star")
    assert float(set_rows[0][loss]) < float(default_rows[0][loss])
    assert float(set_rows[0][b]) > float(default_rows[0][b])


def test_eval_set_depth_rederives(cli, built: Run, default_run, cache_dir: Path,
                                  tmp_path: Path) -> None:
    before = {p.name for p in build_dirs(cache_dir)}
    quantities = ["b_star", "critical_weight_decay"]  # two: each kernel compiles anew
    ok(cli("eval", "weight_decay", *quantities, "--set", "depth=3", "--csv", "d3.csv",
           cwd=tmp_path))
    header, rows = read_csv(tmp_path / "d3.csv")
    assert header == quantities and len(rows) == 1
    depth3 = as_floats(rows)[0]
    depth2 = as_floats(default_run[1])[0][[QUANTITIES.index(q) for q in quantities]]
    assert np.all(np.isfinite(depth3))
    assert np.all(depth3 != depth2), (depth3, depth2)
    new = {p.name for p in build_dirs(cache_dir)} - before
    assert any(name.startswith("weight_decay-") for name in new), new


def test_structural_keys_on_the_command_line(cli, built: Run, tmp_path: Path) -> None:
    """Model keys with --set and --grid, the same way in every family: lists as 4,2,2 (or
    [4,2,2]); --grid depth (a derivation per value) gives the --set depth=... values; a depth
    change with unequal widths is a one-line error that says to give widths too."""
    quantities = ["b_star", "critical_weight_decay"]
    ok(cli("eval", "weight_decay", *quantities, "--set", "depth=3", "--csv", "d3.csv",
           cwd=tmp_path))
    ok(cli("eval", "weight_decay", *quantities, "--grid", "depth=2,3", "--csv", "grid.csv",
           cwd=tmp_path))
    header, rows = read_csv(tmp_path / "grid.csv")
    assert header == ["depth", *quantities] and [r[0] for r in rows] == ["2.0", "3.0"]
    assert rows[1][1:] == read_csv(tmp_path / "d3.csv")[1][0]
    # a list key: the same model as the model file with those widths
    for text in ("widths=4,4,4", "widths=[4, 4, 4]"):
        ok(cli("eval", "weight_decay", *quantities, "--set", "depth=3", "--set", text,
               "--csv", "w.csv", cwd=tmp_path))
        assert read_csv(tmp_path / "w.csv") == read_csv(tmp_path / "d3.csv")
    unequal = tmp_path / "unequal.toml"
    unequal.write_text(model_text({"[4, 4]": "[4, 2]"}))
    for option in ("--set", "--grid"):
        run = cli("eval", unequal, "b_star", option, "depth=3", cwd=tmp_path)
        assert_one_line_usage_error(run, ["widths", "depth"])
    run = cli("eval", unequal, "b_star", "--set", "depth=3", "--set", "widths=4,2", cwd=tmp_path)
    assert run.returncode == 2 and "widths" in run.stderr


def test_eval_model_copied_anywhere(cli, built: Run, default_run, tmp_path: Path) -> None:
    folder = tmp_path / "copies" / "x"
    folder.mkdir(parents=True)
    shutil.copy(BUNDLED, folder / "weight_decay.toml")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ok(cli("eval", Path("../copies/x/weight_decay.toml"), *QUANTITIES, "--csv", "copy.csv",
           cwd=run_dir))
    assert read_csv(run_dir / "copy.csv") == default_run


# -- check -----------------------------------------------------------------------------------


def test_check_all_agree(cli, built: Run, work: Path) -> None:
    run = ok(cli("check", "weight_decay", "--draws", "20000", "--starts", "8", cwd=work))
    assert "all agree" in run.stdout
    assert "NO " not in run.stdout
    # off a terminal, each phase is a status line on stderr (lines, not bars)
    phases = [line for line in run.stderr.splitlines() if line.startswith("check: ")]
    assert len(phases) >= 3 and "Monte Carlo" in run.stderr, run.stderr
    assert "\r" not in run.stderr and "check: " not in run.stdout


# -- progress bars ------------------------------------------------------------------------------

BIG_GRID = ["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.01:0.5:200000"]


def test_progress_is_quiet_when_piped(cli, built: Run, work: Path) -> None:
    run = ok(cli(*BIG_GRID, cwd=work))
    assert "\r" not in run.stderr
    assert "%|" not in run.stderr
    assert "rows not shown" in run.stdout


def test_progress_bar_on_a_terminal(env, built: Run, work: Path) -> None:
    """The positive control of the test above: stderr a terminal, the bar appears."""
    master, slave = pty.openpty()
    # a terminal of 24 x 100 characters (tqdm draws nothing on a terminal of width 0)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([*CLI, *BIG_GRID], cwd=work,
                            env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=600)
    reader.join(timeout=30)
    os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, terminal
    assert "%|" in terminal and "\r" in terminal, terminal
    assert b"rows not shown" in stdout


# -- bad input: one line, exit 2, names the file or argument and the key, says what is allowed


def model_text(replace: dict[str, str] | None = None, append: str = "") -> str:
    text = BUNDLED.read_text()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text + append


DATA = "input_covariance = [[1.0, 0.0], [0.0, 1.0]]"
EXY = "input_output_covariance = [1.0, 0.0]"

#: id -> (model file text, key the message must name). Run as ``build bad_<id>.toml``.
BAD_MODELS: dict[str, tuple[str | bytes, str]] = {
    "depth_string": (model_text({"depth = 2 ": 'depth = "two" '}), "depth"),
    "depth_zero": (model_text({"depth = 2 ": "depth = 0 ", "[4, 4]": "[]"}), "depth"),
    "depth_fraction": (model_text({"depth = 2 ": "depth = 2.5 "}), "depth"),
    "depth_missing": (model_text({"depth = 2 ": "# "}), "depth"),
    "widths_zero": (model_text({"[4, 4]": "[4, 0]"}), "widths"),
    "widths_not_list": (model_text({"[4, 4]": "4"}), "widths"),
    "widths_length": (model_text({"[4, 4]": "[4]"}), "widths"),
    "noise_negative": (model_text({"noise_variance = 0.5": "noise_variance = -0.5"}),
                       "noise_variance"),
    "noise_nan": (model_text({"noise_variance = 0.5": "noise_variance = nan"}),
                  "noise_variance"),
    "decay_negative": (model_text({"weight_decay = 0.2": "weight_decay = -0.2"}),
                       "weight_decay"),
    "decay_zero": (model_text({"weight_decay = 0.2": "weight_decay = 0"}), "weight_decay"),
    "decay_list_negative": (model_text({"weight_decay = 0.2": "weight_decay = [0.1, -1, 0.1]"}),
                            "weight_decay"),
    "decay_string": (model_text({"weight_decay = 0.2": 'weight_decay = "0.2"'}),
                     "weight_decay"),
    "decay_missing": (model_text({"weight_decay = 0.2": "# "}), "weight_decay"),
    "family_unknown": (model_text({'family = "weight_decay"': 'family = "relu_net"'}),
                       "family"),
    "family_missing": (model_text({'family = "weight_decay"': ""}), "family"),
    "family_list": (model_text({'family = "weight_decay"': 'family = ["weight_decay"]'}),
                    "family"),
    "unknown_key": (model_text({"depth = 2 ": "learning_rate = 0.1\ndepth = 2 "}),
                    "learning_rate"),
    "activation": (model_text({"depth = 2 ": 'activation = "relu"\ndepth = 2 '}),
                   "activation"),
    "activation_as_decay": (model_text({"weight_decay = 0.2": 'weight_decay = "tanh(x)"'}),
                            "weight_decay"),
    "key_with_newline": (model_text({"depth = 2 ": '"bad\\nkey" = 1\ndepth = 2 '}), "bad"),
    "data_missing": (BUNDLED.read_text().split("[data]")[0], "data"),
    "data_unknown_key": (model_text(append="mean = 1.0\n"), "data.mean"),
    "ey2_missing": (model_text({"output_variance = 2.0": ""}), "data.output_variance"),
    "ey2_wrong_type": (model_text({"output_variance = 2.0": 'output_variance = "2"'}),
                       "data.output_variance"),
    "ey2_inconsistent": (model_text({"output_variance = 2.0": "output_variance = 0.5"}),
                         "data.output_variance"),
    "cov_non_symmetric": (model_text({DATA: "input_covariance = [[1.0, 0.5], [0.0, 1.0]]"}),
                          "data.input_covariance"),
    "cov_indefinite": (model_text({DATA: "input_covariance = [[1.0, 2.0], [2.0, 1.0]]"}),
                       "data.input_covariance"),
    "cov_not_square": (model_text({DATA: "input_covariance = [[1.0, 0.0], [0.0]]"}),
                       "data.input_covariance"),
    "cov_nan": (model_text({DATA: "input_covariance = [[nan, 0.0], [0.0, 1.0]]"}),
                "data.input_covariance"),
    "cov_string": (model_text({DATA: 'input_covariance = "identity"'}),
                   "data.input_covariance"),
    "exy_length": (model_text({EXY: "input_output_covariance = [1.0]"}),
                   "data.input_output_covariance"),
    "moments_overflow": (model_text({EXY: "input_output_covariance = [1e200, 0.0]"}),
                         "data."),
    "key_misspelt": (model_text({"depth = 2 ": "depht = 2 "}), "did you mean 'depth'"),
    "data_key_at_top_level": (model_text({"depth = 2 ": "output_variance = 2.0\ndepth = 2 "}),
                              "under [data]"),
    "toml_syntax": (model_text(append="depth = = 3\n"), "file"),
    "not_utf8": (b"\xff\xfe\x00\x01", "file"),
}

#: id -> (arguments, must contain: the argument and the key)
BAD_ARGS: dict[str, tuple[list[str], list[str]]] = {
    "missing_file": (["build", "no_such_model.toml"], ["no_such_model.toml", "file"]),
    "missing_bundled": (["eval", "no_such_model", "b_star"], ["no_such_model", "model"]),
    "folder_as_model": (["build", "."], [".", "file"]),
    "eval_bad_model": (["eval", "bad_decay_negative.toml", "b_star"],
                       ["bad_decay_negative.toml", "weight_decay"]),
    "unknown_quantity": (["eval", "weight_decay", "b_star", "no_such_quantity"],
                         ["quantity", "no_such_quantity", "b_star"]),
    "empty_grid_num": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1:0.5:0"],
                       ["--grid", "weight_decay"]),
    "empty_grid_list": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=,"],
                        ["--grid", "weight_decay"]),
    "empty_grid_value": (["eval", "weight_decay", "b_star", "--grid", "weight_decay="],
                         ["--grid", "weight_decay"]),
    "grid_num_not_int": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1:1:x"],
                         ["--grid", "weight_decay"]),
    "grid_nan": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=nan:0.5:3"],
                 ["--grid", "weight_decay"]),
    "grid_list_nan": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1,nan"],
                      ["--grid", "weight_decay"]),
    "grid_negative_decay": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=-1:1:3"],
                            ["--grid", "weight_decay"]),
    "grid_unknown": (["eval", "weight_decay", "b_star", "--grid", "no_such_param=0:1:3"],
                     ["no_such_param", "weight_decay"]),
    "set_nan": (["eval", "weight_decay", "b_star", "--set", "weight_decay=nan"],
                ["--set", "weight_decay"]),
    "set_not_a_number": (["eval", "weight_decay", "b_star", "--set", "weight_decay=lots"],
                         ["--set", "weight_decay"]),
    "set_negative_decay": (["eval", "weight_decay", "b_star", "--set", "weight_decay=-0.1"],
                           ["--set", "weight_decay"]),
    "set_negative_noise": (["eval", "weight_decay", "b_star", "--set", "noise_variance=-1"],
                           ["--set", "noise_variance"]),
    "set_depth_zero": (["eval", "weight_decay", "b_star", "--set", "depth=0"],
                       ["--set", "depth"]),
    "set_depth_fraction": (["eval", "weight_decay", "b_star", "--set", "depth=2.5"],
                           ["--set", "depth"]),
    "set_unknown": (["eval", "weight_decay", "b_star", "--set", "no_such_param=1"],
                    ["--set", "no_such_param"]),
    "set_no_value": (["eval", "weight_decay", "b_star", "--set", "weight_decay"],
                     ["--set", "weight_decay"]),
    "set_inconsistent_output_variance": (
        ["eval", "weight_decay", "b_star", "--set", "output_variance=0.5"],
        ["--set", "output_variance"]),
    "set_and_grid": (["eval", "weight_decay", "b_star", "--set", "weight_decay=0.1",
                      "--grid", "weight_decay=0.1,0.2"], ["weight_decay", "--grid"]),
    "plot_without_grid": (["eval", "weight_decay", "b_star", "--plot", "x.png"],
                          ["--plot", "--grid"]),
    "csv_missing_folder": (["eval", "weight_decay", "b_star", "--csv", "no/such/out.csv"],
                           ["no/such/out.csv"]),
    "csv_is_a_folder": (["eval", "weight_decay", "b_star", "--csv", "out_folder"],
                        ["out_folder"]),
    "draws_too_few": (["check", "weight_decay", "--draws", "5"], ["--draws"]),
    "draws_wrong_type": (["check", "weight_decay", "--draws", "many"], ["--draws"]),
    "parallel_bad_choice": (["eval", "weight_decay", "b_star", "--parallel", "maybe"],
                            ["--parallel"]),
    "unknown_command": (["frobnicate"], ["frobnicate"]),
    "quantity_misspelt": (["eval", "weight_decay", "b_sta"], ["b_sta", "did you mean 'b_star'"]),
    "set_misspelt": (["eval", "weight_decay", "b_star", "--set", "weight_decy=0.1"],
                     ["--set", "did you mean 'weight_decay'"]),
    "grid_misspelt": (["eval", "weight_decay", "b_star", "--grid", "nois_variance=0:1:3"],
                      ["--grid", "did you mean 'noise_variance'"]),
    "integer_parameter_echo": (["eval", "ld_sign_dilution", "typical_overlap", "--set",
                                "grid_size=2"], ["--set grid_size", "grid_size = 2 is"]),
    "csv_twice": (["eval", "weight_decay", "b_star", "--csv", "a.csv", "--csv", "b.csv"],
                  ["--csv", "twice"]),
    "plot_twice": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1,0.2",
                    "--plot", "a.png", "--plot", "b.png"], ["--plot", "twice"]),
    "plot_format_unknown": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1,0.2",
                             "--plot", "x.jpg"], ["--plot x.jpg", ".png", ".pdf", ".svg"]),
    "plot_no_extension": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1,0.2",
                           "--plot", "x"], ["--plot x", ".png", ".pdf", ".svg"]),
    "grid_value_with_newline": (["eval", "weight_decay", "b_star", "--grid",
                                 "weight_decay=0.1,x\ny"], ["--grid", "weight_decay"]),
    # the demanding-user pass of issue 11
    "csv_over_the_model": (["eval", "good.toml", "b_star", "--grid", "weight_decay=0.1,0.2",
                            "--csv", "good.toml"], ["--csv good.toml", "input file"]),
    "latex_over_the_model": (["latex", "good.toml", "-o", "good.toml"],
                             ["--output good.toml", "input file"]),
    "set_twice": (["eval", "weight_decay", "b_star", "--set", "weight_decay=0.1", "--set",
                   "weight_decay=0.2"], ["--set weight_decay=0.2", "twice"]),
    "grid_empty_entry": (["eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1,,0.3"],
                         ["--grid weight_decay", "empty value"]),
    "model_misspelt": (["eval", "weight_decy", "b_star"], ["did you mean 'weight_decay'"]),
    "quantity_other_case": (["eval", "weight_decay", "B_STAR"], ["did you mean 'b_star'"]),
}


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "out_folder").mkdir()
    shutil.copy(BUNDLED, folder / "good.toml")  # a valid model that outputs must not replace
    return folder


#: The cases run by default: at least one per kind of bad input of the contract.  The rest
#: (more variants of the same kinds) are marked slow: every case is a process start.
CORE_CASES = {
    "model:depth_string", "model:depth_missing", "model:depth_zero", "model:widths_zero",
    "model:noise_negative", "model:noise_nan", "model:decay_negative", "model:family_unknown",
    "model:family_list", "model:unknown_key", "model:activation", "model:key_with_newline",
    "model:data_missing", "model:cov_non_symmetric", "model:cov_indefinite",
    "model:moments_overflow", "model:toml_syntax",
    "args:missing_file", "args:missing_bundled", "args:unknown_quantity",
    "args:empty_grid_num", "args:grid_nan", "args:set_nan", "args:set_negative_decay",
    "args:set_depth_zero", "args:set_unknown", "args:set_inconsistent_output_variance",
    "args:csv_is_a_folder", "args:draws_wrong_type", "args:plot_without_grid",
    "args:grid_value_with_newline",
    # issue 11: suggestions, where a key belongs, integers, repeated options, plot formats
    "model:key_misspelt", "model:data_key_at_top_level", "args:quantity_misspelt",
    "args:set_misspelt", "args:grid_misspelt", "args:integer_parameter_echo", "args:csv_twice",
    "args:plot_twice", "args:plot_format_unknown", "args:plot_no_extension",
    "args:unknown_command",
    "args:csv_over_the_model", "args:latex_over_the_model", "args:set_twice",
    "args:grid_empty_entry", "args:model_misspelt", "args:quantity_other_case",
}
ALL_CASES = [f"model:{n}" for n in BAD_MODELS] + [f"args:{n}" for n in BAD_ARGS]
assert CORE_CASES <= set(ALL_CASES)


def _run_bad_cases(cli, folder: Path, keys: list[str]) -> dict[str, Run]:
    """Run the given bad-input cases concurrently (each is a short process)."""
    for name, (content, _) in BAD_MODELS.items():
        path = folder / f"bad_{name}.toml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    jobs = {key: (["build", f"bad_{key[6:]}.toml"] if key.startswith("model:")
                  else BAD_ARGS[key[5:]][0]) for key in keys}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(cli, *args, cwd=folder) for key, args in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


@pytest.fixture(scope="module")
def bad_results(cli, built: Run, bad_folder: Path) -> dict[str, Run]:
    return _run_bad_cases(cli, bad_folder, [k for k in ALL_CASES if k in CORE_CASES])


@pytest.fixture(scope="module")
def more_bad_results(cli, built: Run, bad_folder: Path) -> dict[str, Run]:
    return _run_bad_cases(cli, bad_folder, [k for k in ALL_CASES if k not in CORE_CASES])


def bad_case_params(kind: str, names) -> list:
    return [pytest.param(n, marks=() if f"{kind}:{n}" in CORE_CASES else pytest.mark.slow)
            for n in names]


def bad_result(request: pytest.FixtureRequest, key: str) -> Run:
    fixture = "bad_results" if key in CORE_CASES else "more_bad_results"
    return request.getfixturevalue(fixture)[key]


#: Status lines that may precede an error on stderr (a derivation or compilation on the way).
STATUS_LINE = re.compile(r"^(deriving .* \.\.\.|derived .* in .*|compiling .* \(first use\).*"
                         r"|compiled .* \(first use\) in .*)$")


def assert_one_line_usage_error(run: Run, must_contain: list[str]) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2, f"exit {run.returncode}: {run.stderr!r}"
    lines = [line for line in run.stderr.splitlines() if not STATUS_LINE.match(line)]
    assert len(lines) == 1, f"not one line: {run.stderr!r}"
    message = lines[0]
    assert "allowed" in message, message
    for part in must_contain:
        assert part in message, f"{part!r} not in {message!r}"


def test_outputs_never_replace_the_model_file(bad_results, bad_folder: Path) -> None:
    assert (bad_folder / "good.toml").read_text() == BUNDLED.read_text()


@pytest.mark.parametrize("name", bad_case_params("model", BAD_MODELS))
def test_bad_model_file(request: pytest.FixtureRequest, name: str) -> None:
    _, key = BAD_MODELS[name]
    assert_one_line_usage_error(bad_result(request, f"model:{name}"), [f"bad_{name}.toml", key])


@pytest.mark.parametrize("name", bad_case_params("args", BAD_ARGS))
def test_bad_arguments(request: pytest.FixtureRequest, name: str) -> None:
    _, must_contain = BAD_ARGS[name]
    assert_one_line_usage_error(bad_result(request, f"args:{name}"), must_contain)


def test_bad_input_leaves_nothing_in_the_cache(bad_results: dict[str, Run],
                                               cache_dir: Path) -> None:
    assert leftovers(cache_dir) == []
    failed = [p for p in build_dirs(cache_dir) if p.name.startswith("bad_")]
    assert failed == []
    for directory in build_dirs(cache_dir):  # every build present is complete
        assert (directory / "manifest.json").is_file() and (directory / "kernels.py").is_file()


def test_bad_output_paths_leave_no_files(bad_results: dict[str, Run], bad_folder: Path) -> None:
    names = {p.name for p in bad_folder.iterdir()}
    assert not {"x.png", "x.jpg", "x", "a.png", "b.png", "a.csv", "b.csv"} & names, names
    assert not [n for n in names if n.startswith(".")], names  # no temporary files
    assert list((bad_folder / "out_folder").iterdir()) == []


# -- output safety, stdout CSV, unusable paths ----------------------------------------------
def test_demo_refuses_to_replace_a_folder_that_is_not_a_report(cli, tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("precious")
    run = cli("demo", "--output", precious, cwd=tmp_path)
    assert run.returncode == 2 and "--output" in run.stderr and "allowed" in run.stderr
    assert (precious / "thesis.tex").read_text() == "precious"
    a_file = tmp_path / "out.csv"
    a_file.write_text("data")
    assert cli("demo", "--output", a_file, cwd=tmp_path).returncode == 2
    assert a_file.read_text() == "data"


def test_csv_to_stdout_is_the_csv_only(cli, built: Run, work: Path) -> None:
    run = cli("eval", "weight_decay", "b_star", "--grid", "weight_decay=0.1,0.2", "--csv", "-",
              cwd=work)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "weight_decay,b_star" and len(lines) == 3
    assert float(lines[1].split(",")[0]) == 0.1


def test_unusable_cache_dir_is_a_one_line_error(env, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = subprocess.run([*CLI, "build", "weight_decay"],
                          cwd=tmp_path, env={**env, "NETDERIVE_CACHE_DIR": str(blocker / "c")},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "NETDERIVE_CACHE_DIR" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_huge_values_are_refused_not_nan(cli, built: Run, work: Path) -> None:
    run = cli("eval", "weight_decay", "b_star", "--set", "weight_decay=1e308", cwd=work)
    assert run.returncode == 2 and "allowed" in run.stderr


def test_eval_set_text_key_rederives(cli, tmp_path: Path) -> None:
    """--set on a text model key (perturbation) derives the other model: sign units with
    binarization, L = 3, typical overlap 0.588095, 0.310938, 0.159608 (notes section 6)."""
    run = ok(cli("eval", "ld_sign_dilution", "typical_overlap", "--set",
                 "perturbation=binarization", "--csv", "-", cwd=tmp_path))
    header, *rows = run.stdout.strip().splitlines()
    assert header == "typical_overlap"
    assert float(rows[0]) == pytest.approx(0.159608, abs=5e-7)
    bad = cli("eval", "ld_sign_dilution", "typical_overlap", "--set", "perturbation=pruning",
              cwd=tmp_path)
    assert bad.returncode == 2 and "perturbation" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # three processes that derive and compile (~60 s on a busy machine)
def test_expectation_eval_list_grid_order_override_and_stability(cli, work: Path,
                                                                 tmp_path: Path) -> None:
    """Case A of the Borovykh notes through the command line: ``--grid step=1,10,50,200``,
    ``--set order=1`` (a re-derivation) and the A2 settings give the notes' order-1 columns
    (section 7.3); an unstable learning rate is refused with the stability condition."""
    model = MODELS_DIR / "expectation_tanh.toml"
    ok(cli("eval", model, "mean_output", "output_variance", "--grid", "step=1,10,50,200",
           "--set", "order=1", "--set", "learning_rate=0.1", "--set", "noise_std=0.25",
           "--set", "test_point=1", "--csv", "a2.csv", cwd=tmp_path))
    header, rows = read_csv(tmp_path / "a2.csv")
    assert header == ["step", "mean_output", "output_variance"]
    got = as_floats(rows)
    notes = np.array([[1, -1.1871697, 2.052347e-03], [10, -1.1800165, 7.044431e-03],
                      [50, -1.2229937, 2.488429e-02], [200, -1.2311312, 9.067557e-02]])
    assert np.allclose(got[:, :2], notes[:, :2], rtol=0, atol=1e-6)
    assert np.allclose(got[:, 2], notes[:, 2], rtol=1e-6, atol=0)
    run = cli("eval", model, "mean_output", "--set", "order=1", "--set", "learning_rate=0.4",
              cwd=work)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "stability" in run.stderr and "learning_rate" in run.stderr, run.stderr


# -- issue 11: what a long command is doing, discoverability, plots, small things ------------

COMPILING = re.compile(r"compiling \d+ kernels? \(first use\)")
COMPILED = re.compile(r"compiled \(first use\) in [0-9.]+ s")


def test_first_use_says_compiling_once_and_quiet_says_nothing(cli, built: Run,
                                                              work: Path) -> None:
    """Off a terminal a first use that compiles says so on stderr, with the time it took,
    and stdout stays the CSV; the next run loads the kernels and says nothing; -q silences.
    (Kernels no other test of this file evaluates, so that they compile here.)"""
    grid = ["--grid", "weight_decay=0.1,0.2", "--csv", "-"]
    quiet = cli("-q", "eval", "weight_decay", "barrier_b", *grid, cwd=work)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    first = ok(cli("eval", "weight_decay", "spinodal_weight_decay", *grid, cwd=work))
    assert COMPILING.search(first.stderr) and COMPILED.search(first.stderr), first.stderr
    # one kernel: the constraint check compiled in the quiet run, spinodal_weight_decay's
    # scalar kernel compiles inside its grid kernel (predicted count = counted compilations)
    assert "compiling 1 kernel (" in first.stderr and "compiled (first use) in" in first.stderr
    assert first.stdout.splitlines()[0] == "weight_decay,spinodal_weight_decay"
    assert len(first.stdout.splitlines()) == 3  # the CSV only
    again = ok(cli("eval", "weight_decay", "spinodal_weight_decay", *grid, cwd=work))
    assert "compil" not in again.stderr, again.stderr
    assert again.stdout == first.stdout


@pytest.mark.slow  # derives the D = 1 and D = 3 models of the figure and runs the check
def test_demo_reports_each_model_with_its_time(tmp_path: Path, kernel_cache_dir: Path,
                                               capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from netderive import models
    from netderive.runtime import demo

    monkeypatch.delenv("NETDERIVE_PROGRESS", raising=False)  # stderr is captured: lines
    result = demo.run_demo(tmp_path / "report", quick=True,
                           paths=[models.bundled_model("weight_decay")])
    assert result.failures == {}
    err = capsys.readouterr().err
    assert re.search(r"^\[1/1\] weight_decay: done in [0-9.]+ s", err, re.M), err


def test_version(cli, work: Path) -> None:
    from importlib.metadata import version

    run = ok(cli("--version", cwd=work))
    assert run.stdout.split() == ["netderive", version("netderive")]


def test_info_shows_quantities_parameters_and_model_keys(cli, built: Run, work: Path) -> None:
    run = ok(cli("info", "weight_decay", "--set", "noise_variance=0.25", cwd=work))
    out = built.stdout.strip()
    directory = Path(out.split(" -> ")[-1] if " -> " in out else out.split("(")[1].split(",")[0])
    manifest = json.loads((directory / "manifest.json").read_text())
    for item in manifest["items"]:
        if not item["internal"]:  # every quantity, with its meaning
            assert re.search(rf"^  {item['name']}( |$)", run.stdout, re.M), item["name"]
            assert item["meaning"].split()[0] in run.stdout
    section = run.stdout.split("\nparameters")[1].split("\n\n")[0]
    lines = {line.split()[0]: line for line in section.splitlines()
             if re.match(r"^  \S", line)}
    for p in manifest["params"]:  # every parameter with its domain
        assert p["domain"] in lines[p["name"]], lines[p["name"]]
    assert "0.25" in lines["noise_variance"] and "default 0.2" in lines["weight_decay"]
    assert re.search(r"^  depth = 2 ", run.stdout, re.M)  # a model key with its value
    assert "[data] input_covariance = 2 x 2 matrix" in run.stdout  # a table, summarised


@pytest.mark.parametrize("fmt, magic", [("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_plot_writes_the_format_of_its_extension(cli, built: Run, tmp_path: Path, fmt: str,
                                                 magic: bytes) -> None:
    ok(cli("eval", "weight_decay", "b_star", "--grid", "weight_decay=0.05:0.6:12", "--set",
           "noise_variance=0.25", "--plot", f"out.{fmt}", cwd=tmp_path))
    data = (tmp_path / f"out.{fmt}").read_bytes()
    assert data.startswith(magic), data[:20]
    if fmt == "svg":  # the title names the model and the --set values
        assert b"weight_decay" in data and b"noise_variance = 0.25" in data
    assert [p.name for p in tmp_path.iterdir()] == [f"out.{fmt}"]


def test_table_shows_grid_values_the_csv_keeps_the_floats(cli, tmp_path: Path) -> None:
    """linspace(-0.5, 0.9, 15)[5] is -5.55e-17: the table shows the 0 it stands for."""
    run = ok(cli("eval", "ld_sign_dilution", "typical_overlap", "--grid",
                 "input_overlap=-0.5:0.9:15", "--csv", "out.csv", cwd=tmp_path))
    table = [line.split() for line in run.stdout.splitlines()[1:]]
    assert [row[0] for row in table] == ["-0.5", "-0.4", "-0.3", "-0.2", "-0.1", "0", "0.1",
                                         "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    _, rows = read_csv(tmp_path / "out.csv")
    assert [row[0] for row in rows] == [repr(float(v)) for v in np.linspace(-0.5, 0.9, 15)]
    assert float(rows[5][0]) != 0.0  # the evaluated float, in full precision


def test_argparse_errors_name_the_program_once(bad_results: dict[str, Run]) -> None:
    for key in ("args:unknown_command", "args:draws_wrong_type"):
        message = bad_results[key].stderr
        assert message.startswith("netderive: error: "), message
        assert "error: netderive" not in message, message


def test_check_help_states_the_exit_status(cli, work: Path) -> None:
    run = ok(cli("check", "--help", cwd=work))
    assert re.search(r"^\s*1\s.*disagree", run.stdout, re.M), run.stdout


def _cache_cli(env: dict[str, str], root: Path, *args: str) -> Run:
    proc = subprocess.run([*CLI, "cache", *args], cwd=root.parent,
                          env={**env, "NETDERIVE_CACHE_DIR": str(root)}, capture_output=True,
                          text=True, timeout=60)
    return ok(Run(["cache", *args], proc.returncode, proc.stdout, proc.stderr, 0.0))


def test_cache_lists_and_cleans_other_versions(env, tmp_path: Path) -> None:
    from importlib.metadata import version

    root = tmp_path / "cache"
    current = root / f"sympy-{version('sympy')}-numba-{version('numba')}"
    old = root / "sympy-1.0-numba-0.1"
    folders = {"current": current / "weight_decay-0123456789ab",
               "old": old / "ld_sign_dilution-aaaaaaaaaaaa",
               "stale": current / ".weight_decay-bbbbbbbbbbbb.tmp-x1",
               "running": current / ".weight_decay-cccccccccccc.tmp-x2",
               "not ours": root / "my-notes"}
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "kernels.py").write_bytes(b"x" * 2000)
    two_days_ago = time.time() - 2 * 86400
    for path in (folders["stale"] / "kernels.py", folders["stale"]):
        os.utime(path, (two_days_ago, two_days_ago))

    listing = _cache_cli(env, root).stdout
    lines = {name: next(line for line in listing.splitlines() if key in line)
             for name, key in (("current", "0123456789ab"), ("old", "aaaaaaaaaaaa"),
                               ("stale", "bbbbbbbbbbbb"), ("running", "cccccccccccc"))}
    assert "weight_decay" in lines["current"] and lines["current"].endswith("current")
    assert "ld_sign_dilution" in lines["old"] and "sympy-1.0-numba-0.1" in lines["old"]
    assert "other version" in lines["old"] and "1.95 KiB" in lines["old"]
    assert "stale" in lines["stale"] and "stale" not in lines["running"]
    assert "my-notes" not in listing

    _cache_cli(env, root, "--clean")
    assert not old.exists() and not folders["stale"].exists()
    assert all(folders[k].exists() for k in ("current", "running", "not ours"))
    _cache_cli(env, root, "--clean", "--all")
    assert not folders["current"].exists()
    assert folders["running"].exists() and folders["not ours"].exists()  # never touched
