"""Evaluate quantities of a build on a grid: argument parsing, broadcasting, CSV, plots."""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from codegen.cache import public_mode

from .progress import progress
from .session import Build, UsageError, check_value, parse_number

#: Below this many points the single-core grid kernel is used (parallel start-up costs more).
PARALLEL_THRESHOLD = 20_000
#: Sweeps larger than this are evaluated in chunks, with a progress bar on a terminal.
CHUNK = 50_000


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
        raise UsageError(f"{option} {text!r}: expected NAME=VALUE; allowed: e.g. "
                         f"{option} weight_decay=0.1")
    return name, value.strip()


def parse_grid_values(name: str, text: str) -> np.ndarray:
    """``START:STOP:NUM`` (NUM >= 1 points, linspace) or an explicit list ``v1,v2,...``."""
    label = f"--grid {name}={text}"
    allowed = "START:STOP:NUM with NUM >= 1, or a list v1,v2,..."
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise UsageError(f"{label}: expected START:STOP:NUM; allowed: {allowed}")
        start, stop = (parse_number(p, label) for p in parts[:2])
        try:
            num = int(parts[2])
        except ValueError:
            raise UsageError(f"{label}: NUM {parts[2]!r} is not an integer; "
                             f"allowed: {allowed}") from None
        if num < 1:
            raise UsageError(f"{label}: empty grid (NUM = {num}); allowed: {allowed}")
        if num > 50_000_000:
            raise UsageError(f"{label}: {num} points is too many; allowed: NUM <= 50000000")
        return np.linspace(start, stop, num)
    values = [v for v in text.split(",") if v.strip()]
    if not values:
        raise UsageError(f"{label}: empty grid; allowed: {allowed}")
    return np.array([parse_number(v.strip(), label) for v in values])


@dataclass
class Request:
    """What to evaluate: quantities, fixed values and grid axes (in the order given)."""

    quantities: list[str]
    fixed: dict[str, float]
    grid: dict[str, np.ndarray]


def make_request(build: Build, quantities: Sequence[str], fixed: Mapping[str, float],
                 grid: Mapping[str, np.ndarray]) -> Request:
    """Check names and domains, fill defaults; a UsageError names what is wrong."""
    available = build.quantities
    for q in quantities:
        if q not in available:
            raise UsageError(f"quantity {q!r}: unknown for {build.spec.source}; allowed: "
                             + ", ".join(available))
    if not quantities:
        raise UsageError("no quantity given; allowed: " + ", ".join(available))
    params = build.params
    for name in list(fixed) + list(grid):
        if name not in params:
            raise UsageError(f"parameter {name!r}: unknown for {build.spec.source}; allowed: "
                             + ", ".join(params))
    both = set(fixed) & set(grid)
    if both:
        raise UsageError(f"parameter {sorted(both)[0]!r}: given with both --set and --grid; "
                         "allowed: one of them")
    values = {n: check_value(build, n, v, f"--set {n}") for n, v in fixed.items()}
    for n, axis in grid.items():
        for v in axis:
            check_value(build, n, float(v), f"--grid {n}")
    for q in quantities:
        for arg in build.item(q)["arguments"]:
            if arg in values or arg in grid:
                continue
            default = params[arg]["default"]
            if default is None:
                meaning = params[arg]["meaning"]
                raise UsageError(f"quantity {q!r} needs parameter {arg!r} ({meaning})"
                                 f"; allowed: --set {arg}=VALUE or --grid {arg}=START:STOP:NUM")
            values[arg] = float(default)
    request = Request(list(quantities), values, dict(grid))
    check_constraints(build, request, given=fixed)
    return request


def check_constraints(build: Build, request: Request, given: Mapping[str, float]) -> None:
    """Every constraint of the FormulaSet (an item that must be >= 0) at every grid point.

    The values not on the grid are those of the request, else the parameter defaults.
    """
    constraints = build.manifest.get("constraints", [])
    if not constraints:
        return
    params = build.params
    points = grid_points(request)
    n = next(iter(points.values())).size if points else 1
    kernels = build.kernels()
    for constraint in constraints:
        name = constraint["item"]
        args = build.item(name)["arguments"]
        arrays = [points[a] if a in points else np.full(
            n, float(request.fixed.get(a, params[a]["default"]))) for a in args]
        margin = getattr(kernels, name + "_grid_serial")(*arrays) if args else np.full(
            n, getattr(kernels, name)())
        bad = ~(margin >= -1e-12 * (1 + np.abs(margin)))
        if bad.any():
            i = int(np.argmax(bad))
            at = ", ".join(f"{a} = {float(arr[i])!r}" for a, arr in zip(args, arrays, strict=True))
            options = [f"--grid {a}" if a in points else f"--set {a}" for a in args
                       if a in points or a in given] or [build.spec.source]
            raise UsageError(f"{', '.join(options)}: violates {constraint['meaning']} at "
                             f"{at} ({name} = {margin[i]:.6g}); allowed: values with "
                             f"{name} >= 0")


def grid_points(request: Request) -> dict[str, np.ndarray]:
    """Flattened Cartesian product of the grid axes (first axis varies slowest)."""
    if not request.grid:
        return {}
    mesh = np.meshgrid(*request.grid.values(), indexing="ij")
    return {n: np.ascontiguousarray(m.ravel(), dtype=float)
            for n, m in zip(request.grid, mesh, strict=True)}


def evaluate(build: Build, request: Request, parallel: bool | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Grid columns and quantity columns, each a 1-D array with one entry per grid point."""
    kernels = build.kernels()
    points = grid_points(request)
    n = next(iter(points.values())).size if points else 1
    if parallel is None:
        parallel = n >= PARALLEL_THRESHOLD
    results: dict[str, np.ndarray] = {}
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    work = [(q, lo, hi) for q in request.quantities for lo, hi in chunks]
    for q in request.quantities:
        results[q] = np.empty(n)
    orders = {q: _curve_order(build.item(q), points, n) for q in request.quantities}
    for q, lo, hi in progress(work, total=len(work), desc="evaluating") if n > CHUNK else work:
        args = build.item(q)["arguments"]
        suffix = "_grid" if parallel else "_grid_serial"
        order = orders[q][lo:hi]
        arrays = []
        for a in args:
            if a in points:
                arrays.append(points[a][order])
            else:
                arrays.append(np.full(hi - lo, request.fixed[a]))
        if arrays:
            results[q][order] = getattr(kernels, q + suffix)(*arrays)
        else:
            results[q][lo:hi] = getattr(kernels, q)()
    return points, results


def _curve_order(item: Mapping, points: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Evaluation order of the grid points for one quantity.

    Quantities computed as whole curves in one variable (``curve_variable`` in the
    manifest: dynamic programming over a grid) get the points that share every other
    argument next to each other, so that each curve is computed once.
    """
    variable = item.get("curve_variable")
    others = [points[a] for a in item["arguments"] if a in points and a != variable]
    if variable is None or not others:
        return np.arange(n)
    return np.lexsort(others[::-1])  # stable: the first other argument varies slowest


def format_table(points: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray],
                 max_rows: int = 60, grid_text: Mapping[str, str] | None = None) -> str:
    """A fixed-width text table (head and tail when long).

    ``grid_text`` maps a grid column to its ``--grid`` text: a ``START:STOP:NUM`` column
    prints the value each point stands for (:func:`grid_formatter`), not float noise such as
    ``-5.551115123e-17`` for 0; the CSV keeps the floats evaluated, in full precision."""
    names = list(points) + list(results)
    cols = [points[n] for n in points] + [results[n] for n in results]
    formatters = [grid_formatter((grid_text or {}).get(n, "")) or _fmt for n in points]
    formatters += [_fmt] * len(results)
    n = cols[0].size if cols else 0
    rows_idx = list(range(n))
    if n > max_rows:
        rows_idx = list(range(max_rows // 2)) + [-1] + list(range(n - max_rows // 2, n))
    width = max(14, *(len(x) for x in names))
    out = ["  ".join(f"{x:>{width}}" for x in names)]
    for i in rows_idx:
        if i == -1:
            out.append(f"... ({n - 2 * (max_rows // 2)} rows not shown; use --csv)")
            continue
        out.append("  ".join(f"{f(float(c[i])):>{width}}"
                             for f, c in zip(formatters, cols, strict=True)))
    return "\n".join(out)


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.10g}"


#: A grid value is shown as the START + k STEP it stands for when it lies this close to it,
#: relative to the spacing STEP (linspace is exact to a few units in the last place).
GRID_SNAP = 1e-9
#: Exact grid values with at most this many decimal places are printed exactly.
GRID_PLACES = 12
#: ... and at most this many characters (else as any other number, 10 significant digits).
GRID_CHARS = 14


def grid_formatter(text: str) -> Callable[[float], str] | None:
    """For a ``--grid`` axis ``START:STOP:NUM``: a formatter printing each point as the number
    it stands for, START + k (STOP - START)/(NUM - 1) computed exactly from the decimal text
    (exactly when that is a short decimal, else to 10 significant digits). None for other
    axes (a list of values: each float is the value typed)."""
    parts = text.split(":")
    if len(parts) != 3:
        return None
    try:
        start, stop, num = Fraction(parts[0].strip()), Fraction(parts[1].strip()), int(parts[2])
    except (ValueError, ZeroDivisionError):
        return None
    if num < 1:
        return None
    step = (stop - start) / (num - 1) if num > 1 else Fraction(0)

    def fmt(value: float) -> str:
        k = round((value - float(start)) / float(step)) if step else 0
        exact = start + k * step
        if not (0 <= k < num) or abs(float(exact) - value) > GRID_SNAP * abs(float(step)):
            return _fmt(value)
        return _decimal(exact)

    return fmt


def _decimal(value: Fraction) -> str:
    """``value`` as an exact decimal when it has one that is short, else like :func:`_fmt`."""
    denominator, places = value.denominator, 0
    for factor in (2, 5):
        while denominator % factor == 0:
            denominator //= factor
    if denominator == 1:
        while (value * 10**places).denominator != 1:
            places += 1
        if places <= GRID_PLACES:
            digits = f"{value.numerator * 10**places // value.denominator}"
            sign, digits = ("-", digits[1:]) if digits.startswith("-") else ("", digits)
            digits = digits.rjust(places + 1, "0")
            text = sign + (digits[:-places] + "." + digits[-places:] if places else digits)
            if len(text) <= GRID_CHARS:
                return text
    return _fmt(float(value))


def write_csv(path: Path, points: Mapping[str, np.ndarray],
              results: Mapping[str, np.ndarray]) -> None:
    """CSV: grid columns, then quantities; floats as ``repr`` (full precision). Atomic."""
    atomic_write_text(path, csv_text(points, results), "--csv")


def csv_text(points: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray]) -> str:
    """The CSV of :func:`write_csv` as text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(points) + list(results))
    cols = [points[n] for n in points] + [results[n] for n in results]
    n = cols[0].size
    for i in range(n):
        writer.writerow([repr(float(c[i])) for c in cols])
    return buf.getvalue()


def check_output_path(path: Path, option: str = "") -> Path:
    """``path`` if a file can be put there (its folder exists, it is not a folder)."""
    path = Path(path)
    label = f"{option} {path}".strip()
    if not path.parent.is_dir():
        raise UsageError(f"{label}: folder {path.parent} does not exist; allowed: a path in an "
                         "existing folder")
    if path.is_dir():
        raise UsageError(f"{label}: is a folder; allowed: a file path in an existing folder")
    return path


@contextmanager
def atomic_output(path: Path, option: str = "", suffix: str = "") -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed onto ``path`` when the block ends
    without error, removed otherwise.  OS errors become one-line UsageErrors."""
    path = check_output_path(path, option)
    label = f"{option} {path}".strip()
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
    except OSError as exc:
        raise UsageError(f"{label}: cannot write in {path.parent} ({exc.strerror}); allowed: "
                         "a path in a writable folder") from None
    tmp = Path(name)
    try:
        public_mode(tmp)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{label}: cannot write ({exc.strerror}); allowed: a writable file "
                         "path") from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str, option: str = "") -> None:
    """Write ``text`` through a temporary file in the same folder, renamed into place."""
    with atomic_output(path, option) as tmp:
        tmp.write_text(text)


#: File formats ``--plot`` writes, named by the file's extension.
PLOT_FORMATS = ("png", "pdf", "svg")
#: Plot titles are wrapped at this many characters.
TITLE_WIDTH = 90


def plot_format(path: Path, option: str = "--plot") -> str:
    """The format named by ``path``'s extension (png, pdf, svg), else a UsageError."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        problem = f"unsupported format {fmt!r}" if fmt else "no file extension"
        raise UsageError(f"{option} {path}: {problem}; allowed: a file name ending in "
                         + ", ".join(f".{f}" for f in PLOT_FORMATS))
    return fmt


def plot(path: Path, request: Request, points: Mapping[str, np.ndarray],
         results: Mapping[str, np.ndarray], title: str) -> None:
    """Line plot of every quantity against the first grid axis (one line per value of a
    second axis when there is one). Written atomically in the format of the extension
    (:data:`PLOT_FORMATS`; SVG keeps its text as text)."""
    fmt = plot_format(path)
    if not request.grid:
        raise UsageError("--plot: needs at least one --grid axis; allowed: --grid NAME=A:B:N")
    if len(request.grid) > 2:
        raise UsageError("--plot: at most two --grid axes can be drawn; allowed: one or two")
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_names = list(request.grid)
    x_name = axes_names[0]
    shape = tuple(len(v) for v in request.grid.values())
    fig, axes = plt.subplots(len(results), 1, figsize=(7, 3.2 * len(results)), squeeze=False)
    for ax, (q, vals) in zip(axes[:, 0], results.items(), strict=True):
        x = request.grid[x_name]
        grid_vals = vals.reshape(shape)
        if len(axes_names) == 1:
            ax.plot(x, grid_vals, ".-" if len(x) < 40 else "-")
        else:
            second = request.grid[axes_names[1]]
            step = max(1, len(second) // 8)
            for j in range(0, len(second), step):
                ax.plot(x, grid_vals[:, j], label=f"{axes_names[1]} = {second[j]:.4g}")
            ax.legend(fontsize=7)
        ax.set_xlabel(x_name)
        ax.set_ylabel(q)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title("\n".join(textwrap.wrap(title, TITLE_WIDTH)), fontsize=9)
    fig.tight_layout()
    try:
        with matplotlib.rc_context({"svg.fonttype": "none"}), \
                atomic_output(path, "--plot", suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    finally:
        plt.close(fig)
