"""Evaluate quantities of a build on a grid: argument parsing, broadcasting, CSV, plots."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TextIO

import numpy as np

from netderive.codegen.cache import public_mode

from .progress import progress
from .session import (
    Build,
    UsageError,
    check_value,
    format_value,
    kernel_threads,
    parse_number,
)

#: Below this many points the single-core grid kernel is used (parallel start-up costs more).
PARALLEL_THRESHOLD = 20_000
#: Grid points evaluated at a time (a progress bar on a terminal when there are several
#: chunks): the memory of a sweep is bounded whatever its size.
CHUNK = 50_000
#: Kernels that compute whole curves (or trajectories) get every point of a curve in one chunk,
#: unless a curve's points span more rows than this (then a curve may be computed twice).
MAX_CURVE_ROWS = 2_000_000
#: Points of one --grid axis, of a whole grid, and of a grid held in memory (the table that
#: eval prints, a plot): larger sweeps stream to ``--csv`` chunk by chunk.
MAX_AXIS_POINTS = 10_000_000
MAX_GRID_POINTS = 1_000_000_000
MAX_TABLE_POINTS = 1_000_000
#: Bytes per value of a grid held in memory (float64).
BYTES_PER_VALUE = 8


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
        raise UsageError(f"{option} {text!r}: expected NAME=VALUE; allowed: NAME=VALUE with "
                         "a parameter or model key (netderive info MODEL lists them)")
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
        if num > MAX_AXIS_POINTS:
            raise UsageError(f"{label}: {num} points is too many; allowed: NUM <= "
                             f"{MAX_AXIS_POINTS} (several --grid axes make larger sweeps)")
        return np.linspace(start, stop, num)
    values = text.split(",")
    if any(not v.strip() for v in values):
        raise UsageError(f"{label}: an empty value in the list; allowed: {allowed}")
    if len(values) > MAX_AXIS_POINTS:
        raise UsageError(f"{label}: {len(values)} values is too many; allowed: at most "
                         f"{MAX_AXIS_POINTS}")
    return np.array([parse_number(v.strip(), label) for v in values])


@dataclass
class Request:
    """What to evaluate: quantities, fixed values and grid axes (in the order given).

    ``structural`` names the grid axes that are model keys rather than kernel parameters
    (e.g. ``depth`` of a weight-decay model): every combination of their values is a model of
    its own, with a build and a request of its own (``variants`` of :func:`evaluate_chunks`).
    """

    quantities: list[str]
    fixed: dict[str, float]
    grid: dict[str, np.ndarray]
    structural: tuple[str, ...] = ()
    #: explicit points instead of a grid: parameter -> 1-D array, all of one length
    columns: dict[str, np.ndarray] = field(default_factory=dict)


#: (values of the structural axes) -> the build of that model and the request of its points
Variants = Mapping[tuple[float, ...], tuple[Build, Request]]


def make_request(build: Build, quantities: Sequence[str], fixed: Mapping[str, float],
                 grid: Mapping[str, np.ndarray],
                 columns: Mapping[str, np.ndarray] | None = None) -> Request:
    """Check names and domains, fill defaults; a UsageError names what is wrong.

    ``grid`` axes form a Cartesian product; ``columns`` (instead) are explicit points, one
    1-D array of equal length per parameter."""
    available = build.quantities
    for q in quantities:
        if q not in available:
            raise UsageError(f"quantity {q!r}: unknown for {build.spec.source}; allowed: "
                             + ", ".join(available))
    if not quantities:
        raise UsageError("no quantity given; allowed: " + ", ".join(available))
    params = build.params
    columns = {n: np.asarray(c, dtype=float).ravel() for n, c in (columns or {}).items()}
    if grid and columns:
        raise UsageError("a request has grid axes or explicit points; allowed: one of them")
    for name in list(fixed) + list(grid) + list(columns):
        if name not in params:
            raise UsageError(f"parameter {name!r}: unknown for {build.spec.source}; allowed: "
                             + ", ".join(params))
    both = set(fixed) & set(grid)
    if both:
        raise UsageError(f"parameter {sorted(both)[0]!r}: given with both --set and --grid; "
                         "allowed: one of them")
    values = {n: check_value(build, n, v, f"--set {n}") for n, v in fixed.items()}
    points = math.prod(len(axis) for axis in grid.values())
    if points > MAX_GRID_POINTS:
        raise UsageError(f"--grid: {points} points (the product of the axes); allowed: at most "
                         f"{MAX_GRID_POINTS} per sweep (split it into several sweeps)")
    for n, axis in (*grid.items(), *columns.items()):
        check_values(build, n, np.asarray(axis, dtype=float), f"--grid {n}")
    for q in quantities:
        for arg in build.item(q)["arguments"]:
            if arg in values or arg in grid or arg in columns:
                continue
            default = params[arg]["default"]
            if default is None:
                meaning = params[arg]["meaning"]
                raise UsageError(f"quantity {q!r} needs parameter {arg!r} ({meaning})"
                                 f"; allowed: --set {arg}=VALUE or --grid {arg}=START:STOP:NUM")
            values[arg] = float(default)
    request = Request(list(quantities), values, dict(grid), columns=columns)
    check_constraints(build, request, given=fixed)
    return request


def check_constraints(build: Build, request: Request, given: Mapping[str, float]) -> None:
    """Every constraint of the FormulaSet (an item that must be >= 0) at every grid point,
    chunk by chunk.

    The values not on the grid are those of the request, else the parameter defaults.
    """
    constraints = build.manifest.get("constraints", [])
    if not constraints:
        return
    params = build.params
    names = [c["item"] for c in constraints]
    needed = {a for n in names for a in build.item(n)["arguments"]}
    fixed = {a: float(request.fixed.get(a, params[a]["default"])) for a in needed
             if a not in request.grid and a not in request.columns}
    grid = {a: v for a, v in request.grid.items() if a in needed}
    columns = {a: v for a, v in request.columns.items() if a in needed}
    check = Request(names, fixed, grid, columns=columns)
    for points, margins in evaluate_chunks(build, check, parallel=False, label="checking"):
        for constraint in constraints:
            name = constraint["item"]
            margin = margins[name]
            bad = ~(margin >= -1e-12 * (1 + np.abs(margin)))
            if not bad.any():
                continue
            i = int(np.argmax(bad))
            args = build.item(name)["arguments"]
            at = ", ".join(f"{a} = {format_value(build, a, float(value))}" for a, value in (
                (a, points[a][i] if a in points else fixed[a]) for a in args))
            options = [f"--grid {a}" if a in points else f"--set {a}" for a in args
                       if a in points or a in given] or [build.spec.source]
            raise UsageError(f"{', '.join(options)}: {name} = {margin[i]:.6g} < 0 at {at}: "
                             f"{constraint['meaning']}; allowed: values with {name} >= 0")


def check_values(build: Build, name: str, values: np.ndarray, label: str) -> None:
    """Every entry of ``values`` finite and in parameter ``name``'s domain (vectorised)."""
    p = build.params[name]
    lower_ok = values >= p["lower"] if p["lower_closed"] else values > p["lower"]
    upper_ok = values <= p["upper"] if p["upper_closed"] else values < p["upper"]
    ok = np.isfinite(values) & lower_ok & upper_ok
    if p["integer"]:
        ok &= values == np.round(values)
    if not ok.all():
        check_value(build, name, float(values[int(np.argmin(ok))]), label)


def grid_size(request: Request) -> int:
    """Number of grid points (1 without a grid)."""
    if request.columns:
        return len(next(iter(request.columns.values())))
    return math.prod(len(axis) for axis in request.grid.values())


def grid_points(request: Request) -> dict[str, np.ndarray]:
    """Flattened Cartesian product of the grid axes (first axis varies slowest)."""
    if not request.grid and not request.columns:
        return {}
    return chunk_points(request, 0, grid_size(request))


def chunk_points(request: Request, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Rows ``lo..hi-1`` of :func:`grid_points`, without building the whole product."""
    if request.columns:
        return {n: np.ascontiguousarray(c[lo:hi]) for n, c in request.columns.items()}
    if not request.grid:
        return {}
    shape = tuple(len(axis) for axis in request.grid.values())
    indices = np.unravel_index(np.arange(lo, hi), shape)
    return {n: np.ascontiguousarray(np.asarray(axis, dtype=float)[i])
            for (n, axis), i in zip(request.grid.items(), indices, strict=True)}


def chunk_bounds(request: Request, items: Sequence[Mapping]) -> list[tuple[int, int]]:
    """Row ranges of the chunks of a sweep, in grid order.

    A kernel that computes whole curves in one variable (``curve_variable`` of the manifest)
    computes one curve per setting of its other grid arguments.  The points of one curve vary
    in every axis that is not such an argument; in grid order (first axis slowest) they lie in
    one block of ``prod(lengths[j:])`` rows, ``j`` the first of those axes, so chunks are whole
    blocks (unless a block exceeds :data:`MAX_CURVE_ROWS`).
    """
    n = grid_size(request)
    if request.columns:  # explicit points: curves grouped within each chunk
        return [(lo, min(lo + CHUNK, n)) for lo in range(0, n, CHUNK)]
    names, lengths = list(request.grid), [len(a) for a in request.grid.values()]
    block = 1
    for item in items:
        variable = item.get("curve_variable")
        if variable not in request.grid:
            continue
        keys = {a for a in item["arguments"] if a in request.grid and a != variable}
        first = min(k for k, name in enumerate(names) if name not in keys)
        block = max(block, math.prod(lengths[first:]))
    rows = CHUNK if block > MAX_CURVE_ROWS else max(1, CHUNK // block) * block
    return [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]


def evaluate_chunks(build: Build, request: Request, parallel: bool | None = None,
                    label: str = "evaluating", variants: Variants | None = None
                    ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Grid columns and quantity columns of consecutive chunks of the sweep, in grid order
    (memory bounded by the chunk size).  The points of a structural combination (see
    :class:`Request`) are evaluated by the kernels of its own build (``variants``)."""
    n = grid_size(request)
    if parallel is None:
        parallel = n >= PARALLEL_THRESHOLD and kernel_threads() != 1
    suffix = "_grid" if parallel else "_grid_serial"
    bounds = chunk_bounds(request, [build.item(q) for q in request.quantities])
    for lo, hi in progress(bounds, total=len(bounds), desc=label) if len(bounds) > 1 else bounds:
        points = chunk_points(request, lo, hi)
        if not request.structural:
            yield points, _evaluate_points(build, request, points, hi - lo, suffix)
            continue
        results = {q: np.empty(hi - lo) for q in request.quantities}
        keys = np.stack([points[a] for a in request.structural], axis=1)
        combos, members = np.unique(keys, axis=0, return_inverse=True)
        for k, combo in enumerate(combos):
            rows = np.flatnonzero(members.ravel() == k)
            variant, sub = variants[tuple(combo.tolist())]
            part = _evaluate_points(variant, sub, {a: points[a][rows] for a in sub.grid},
                                    rows.size, suffix)
            for q, column in part.items():
                results[q][rows] = column
        yield points, results


def _evaluate_points(build: Build, request: Request, points: Mapping[str, np.ndarray], n: int,
                     suffix: str) -> dict[str, np.ndarray]:
    """Every quantity of ``request`` at the ``n`` points (grid kernels with ``suffix``)."""
    kernels = build.kernels()
    results: dict[str, np.ndarray] = {}
    # quantities computed by one shared grid function (the items of one array program): one
    # call for all of them, so that their program runs once
    shared_grids = getattr(kernels, "SHARED_GRIDS", {})  # absent in builds made before it
    shared: dict[str, list[str]] = {}
    for q in request.quantities:
        if q in shared_grids:
            shared.setdefault(shared_grids[q], []).append(q)
    for grid, names in shared.items():
        args = dict.fromkeys(a for q in names for a in build.item(q)["arguments"])
        columns = {a: points[a] if a in points else np.full(n, request.fixed[a]) for a in args}
        results.update(getattr(kernels, grid)(tuple(names), columns, n))
    for q in request.quantities:
        if q in results:
            continue
        item = build.item(q)
        args = item["arguments"]
        if not args:
            results[q] = np.full(n, getattr(kernels, q)())
            continue
        order = _curve_order(item, points, n)
        arrays = [points[a][order] if a in points else np.full(n, request.fixed[a])
                  for a in args]
        results[q] = np.empty(n)
        results[q][order] = getattr(kernels, q + suffix)(*arrays)
    return {q: results[q] for q in request.quantities}  # in the order asked for


def _curve_order(item: Mapping, points: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Evaluation order of the grid points for one quantity.

    Quantities computed as whole curves in one variable (``curve_variable`` in the
    manifest: dynamic programming over a grid, or the steps of an array program) get the
    points that share every other argument next to each other, so that each curve is
    computed once.
    """
    variable = item.get("curve_variable")
    others = [points[a] for a in item["arguments"] if a in points and a != variable]
    if variable is None or not others:
        return np.arange(n)
    return np.lexsort(others[::-1])  # stable: the first other argument varies slowest


def evaluate(build: Build, request: Request, parallel: bool | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Grid columns and quantity columns, each a 1-D array with one entry per grid point."""
    n = grid_size(request)
    points = {name: np.empty(n) for name in (request.columns or request.grid)}
    results = {q: np.empty(n) for q in request.quantities}
    row = 0
    for chunk_grid, chunk_results in evaluate_chunks(build, request, parallel):
        size = next(iter(chunk_results.values())).size
        for target, source in ((points, chunk_grid), (results, chunk_results)):
            for name, column in source.items():
                target[name][row:row + size] = column
        row += size
    return points, results


#: Rows of the printed table shown at each end of a long sweep.
TABLE_END_ROWS = 30


def sweep(build: Build, request: Request, csv: TextIO | None = None,
          parallel: bool | None = None, keep: bool = False, variants: Variants | None = None
          ) -> tuple[TablePreview, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Evaluate the sweep chunk by chunk: CSV rows written to ``csv`` as they come, the table's
    head and tail kept, and (``keep``) every column; memory bounded by the chunk unless kept."""
    preview = TablePreview(TABLE_END_ROWS)
    kept: list[tuple[dict, dict]] = []
    for points, results in evaluate_chunks(build, request, parallel, variants=variants):
        if csv is not None:
            if not preview.rows:
                csv.write(csv_header(points, results))
            csv.write(csv_rows(points, results))
        preview.add(points, results)
        if keep:
            kept.append((points, results))
    columns = [{n: np.concatenate([part[k][n] for part in kept]) for n in kept[0][k]}
               if kept else {} for k in (0, 1)]
    return preview, columns[0], columns[1]


def table_bytes(points: int, columns: int) -> int:
    """Memory of a sweep held as a table: one float64 per point and column."""
    return points * columns * BYTES_PER_VALUE


def format_bytes(size: float) -> str:
    """``size`` bytes as text with a binary unit (``74.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.3g} {unit}" if size < 1000 else f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.4g} TiB"


def format_table(points: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray],
                 max_rows: int = 60, total: int | None = None,
                 grid_text: Mapping[str, str] | None = None, rest: str = "use --csv") -> str:
    """A fixed-width text table (head and tail when long).

    ``total``: the number of rows of the sweep when the columns hold only its first and last
    rows (a streamed sweep); ``rest`` says where the rows not shown are.  ``grid_text`` maps a
    grid column to its ``--grid`` text: a ``START:STOP:NUM`` column prints the value each point
    stands for
    (:func:`grid_formatter`), not float noise such as ``-5.551115123e-17`` for 0; the CSV
    keeps the floats evaluated, in full precision."""
    names = list(points) + list(results)
    cols = [points[n] for n in points] + [results[n] for n in results]
    formatters = [grid_formatter((grid_text or {}).get(n, "")) or _fmt for n in points]
    formatters += [_fmt] * len(results)
    n = cols[0].size if cols else 0
    rows_idx = list(range(n))
    if total is not None and total > n:  # the columns are head and tail already
        rows_idx = list(range(n // 2)) + [-1] + list(range(n // 2, n))
        n = total
    elif n > max_rows:
        rows_idx = list(range(max_rows // 2)) + [-1] + list(range(n - max_rows // 2, n))
    width = max(14, *(len(x) for x in names))
    out = ["  ".join(f"{x:>{width}}" for x in names)]
    for i in rows_idx:
        if i == -1:
            out.append(f"... ({n - 2 * (max_rows // 2)} rows not shown; {rest})")
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


def csv_header(points: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray]) -> str:
    """The CSV's first line: grid columns, then quantities."""
    return ",".join([*points, *results]) + "\n"


def csv_rows(points: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray]) -> str:
    """The CSV lines of a chunk: floats as ``repr`` (shortest text that reads back exactly)."""
    columns = [list(map(repr, np.asarray(c, dtype=float).tolist()))
               for c in (*points.values(), *results.values())]
    return "".join(",".join(row) + "\n" for row in zip(*columns, strict=True))


def csv_text(points: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray]) -> str:
    """The CSV of :func:`write_csv` as text."""
    return csv_header(points, results) + csv_rows(points, results)


class TablePreview:
    """The first and last ``keep`` rows of a sweep streamed chunk by chunk (for the table)."""

    def __init__(self, keep: int) -> None:
        self.keep, self.rows = keep, 0
        self.grid: list[str] = []
        self.head: dict[str, np.ndarray] = {}
        self.tail: dict[str, np.ndarray] = {}

    def add(self, points: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray]) -> None:
        columns = {**points, **results}
        if not self.rows:
            self.grid = list(points)
            self.head = {n: c[:self.keep] for n, c in columns.items()}
            self.tail = {n: c[-self.keep:] for n, c in columns.items()}
        else:
            room = self.keep - next(iter(self.head.values())).size
            self.head = {n: np.concatenate([h, columns[n][:room]]) for n, h in self.head.items()}
            self.tail = {n: np.concatenate([t, columns[n]])[-self.keep:]
                         for n, t in self.tail.items()}
        self.rows += next(iter(columns.values())).size

    def table(self, grid_text: Mapping[str, str] | None = None, rest: str = "use --csv"
              ) -> str:
        """:func:`format_table` of the sweep: every row, or head and tail of a long one."""
        shown = next(iter(self.head.values())).size
        late = min(self.rows - shown, self.keep)
        columns = {n: np.concatenate([h, self.tail[n][self.tail[n].size - late:]])
                   for n, h in self.head.items()}
        points = {n: columns[n] for n in self.grid}
        results = {n: c for n, c in columns.items() if n not in points}
        return format_table(points, results, max_rows=2 * self.keep, total=self.rows,
                            grid_text=grid_text, rest=rest)


def check_output_path(path: Path, option: str = "", inputs: Sequence[str | Path] = ()) -> Path:
    """``path`` if a file can be put there (its folder exists, it is not a folder, it is not
    one of the ``inputs``, e.g. the model file being evaluated)."""
    path = Path(path)
    label = f"{option} {path}".strip()
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise UsageError(f"{label}: is the input file {source}; allowed: another file name "
                             "(netderive never writes over its input)")
    if not path.parent.is_dir():
        raise UsageError(f"{label}: folder {path.parent} does not exist; allowed: a path in an "
                         "existing folder")
    if path.is_dir():
        raise UsageError(f"{label}: is a folder; allowed: a file path in an existing folder")
    return path


@contextmanager
def atomic_output(path: Path, option: str = "", suffix: str = "",
                  inputs: Sequence[str | Path] = ()) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed onto ``path`` when the block ends
    without error, removed otherwise.  OS errors become one-line UsageErrors."""
    path = check_output_path(path, option, inputs)
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


def atomic_write_text(path: Path, text: str, option: str = "",
                      inputs: Sequence[str | Path] = ()) -> None:
    """Write ``text`` through a temporary file in the same folder, renamed into place."""
    with atomic_output(path, option, inputs=inputs) as tmp:
        tmp.write_text(text)


#: A plot against two grid axes draws at most this many lines (values of the second axis,
#: evenly spaced, the first and the last among them; the legend says how many of how many).
PLOT_LINES = 10
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
    second axis when there is one, at most :data:`PLOT_LINES`). Written atomically in the
    format of the extension (:data:`PLOT_FORMATS`; SVG keeps its text as text)."""
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
            shown = sorted(set(np.linspace(0, len(second) - 1, min(len(second), PLOT_LINES))
                               .round().astype(int)))  # the first and the last among them
            for j in shown:
                ax.plot(x, grid_vals[:, j], label=f"{axes_names[1]} = {second[j]:.4g}")
            if len(shown) == len(second):
                ax.legend(fontsize=7)
            else:
                ax.legend(fontsize=7, title_fontsize=7,
                          title=f"{len(shown)} of {len(second)} values of {axes_names[1]}")
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
