"""``netderive demo``: every bundled model derived, printed, compiled, evaluated, checked.

Writes ``<output>/report.md`` with the formulas (Markdown), ``<output>/<model>/formulas.tex``,
tables, the check against the independent references, and the figures of each family (found
in the registry, :mod:`netderive.runtime.families`).

First every model is derived and validated, with every further model its figures and its
check need (the figures' models come from their own settings), so that a bad model is
reported at once rather than after the long work.  A model that fails (then, or in its
section) gets a section saying why; the other sections are written, and the result counts the
failures (the command's exit status is then 1).  The report is assembled in a temporary
folder and moved into place at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from netderive.codegen.cache import public_mode
from netderive.derivations.model import ModelSpec

from .compile import CompileWatch
from .progress import format_seconds, status
from .session import Build, UsageError, build

if TYPE_CHECKING:
    from .families import Figure

#: A report folder holds this file; only such a folder (or an empty one) is replaced.
REPORT_MARKER = ".netderive-report"
#: Monte Carlo draws of the checks: (--quick, full).
DRAWS = (20_000, 200_000)


@dataclass
class DemoResult:
    """The report written, and the models that failed (stem -> one-line reason)."""

    report: Path
    failures: dict[str, str] = field(default_factory=dict)


@dataclass
class _Prepared:
    """A model after the first phase: its build and the builds its figures and check need,
    or why it failed."""

    path: Path
    label: str
    spec: ModelSpec | None = None
    build: Build | None = None
    figures: list[tuple[Figure, dict[str, Build]]] = field(default_factory=list)
    error: str = ""


def _reason(exc: BaseException) -> str:
    """One line: the message of a ModelError, else the exception's type and message."""
    from netderive.derivations.model import ModelError

    text = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _debugging() -> bool:
    return bool(os.environ.get("NETDERIVE_DEBUG"))


def _prepare(path: Path, label: str) -> _Prepared:
    """Derive and validate the model at ``path`` and every model its figures and its check
    need (builds are cached: nothing is derived twice)."""
    from netderive.derivations.model import load_model

    from .families import family_runtime

    prepared = _Prepared(path, label)
    try:
        status(f"{label}: validating")
        spec = load_model(path)
        family = family_runtime(spec.family)
        prepared.spec = spec
        prepared.build = _built(spec, label)
        for figure in family.figures:
            if figure.shows(spec):
                prepared.figures.append((figure, {key: _built(other, label) for key, other
                                                  in figure.models(spec).items()}))
        for other in family.check_models(spec).values():
            _built(other, label)
    except Exception as exc:  # noqa: BLE001 - reported in the model's section
        if _debugging():
            raise
        prepared.error = _reason(exc)
        status(f"{label}: FAILED: {prepared.error}")
    return prepared


def _built(spec: ModelSpec, label: str) -> Build:
    """The build of ``spec``, saying so when it is derived."""
    b = build(spec.with_cross_checks(), on_derive=lambda s: status(f"{label}: deriving "
                                                                   f"{s.source} ..."))
    if b.rebuilt:
        status(f"{label}: derived {spec.source} in {format_seconds(b.seconds)}")
    return b


def _model_section(prepared: _Prepared, tmp: Path, quick: bool, lines: list[str]) -> None:
    """Append the report section of one prepared model to ``lines``: formulas, values at the
    defaults, figures, check (what is done stays when a later part fails)."""
    from .check import run_check
    from .families import FigureInput, family_runtime

    b, spec, stem, label = prepared.build, prepared.spec, prepared.path.stem, prepared.label
    family = family_runtime(spec.family)
    folder = tmp / stem
    folder.mkdir(exist_ok=True)
    shutil.copy(b.latex_path, folder / "formulas.tex")
    shutil.copy(b.markdown_path, folder / "formulas.md")
    lines += [f"Formulas: [{stem}/formulas.md]({stem}/formulas.md), "
              f"LaTeX: [{stem}/formulas.tex]({stem}/formulas.tex).", ""]
    status(f"{label}: evaluating")
    values = b.defaults
    rows = ["| quantity | value at the model's defaults |", "|---|---|"]
    for q in b.quantities:
        args = b.item(q)["arguments"]
        if all(a in values for a in args):
            rows.append(f"| `{q}` | {b.call(q, values):.10g} |")
    lines += rows + [""]
    for figure, builds in prepared.figures:
        for section in figure.draw(FigureInput(b, builds, folder, quick)):
            lines += [f"### {section.title}", "",
                      section.body.replace("](", f"]({stem}/"), ""]
    status(f"{label}: checking against the references")
    starts = None if family.starts is None else (
        family.starts.quick if quick else family.starts.default)
    report = run_check(b, {}, draws=DRAWS[0] if quick else DRAWS[1], starts=starts)
    lines += ["### Check against independent references", "", "```",
              report.table(), "```", ""]


def _section(prepared: _Prepared, tmp: Path, quick: bool) -> tuple[list[str], str]:
    """The lines of a model's section and why it failed ("" if it did not)."""
    stem = prepared.path.stem
    spec = prepared.spec
    lines = [f"## {stem} ({spec.family})" if spec is not None else f"## {stem}", ""]
    if spec is not None:
        lines += [spec.get("description", ""), ""]
    error = prepared.error
    if not error:
        try:
            with CompileWatch(label=prepared.label):
                _model_section(prepared, tmp, quick, lines)
        except Exception as exc:  # noqa: BLE001 - reported in the section, others go on
            if _debugging():
                raise
            error = _reason(exc)
            status(f"{prepared.label}: FAILED: {error}")
    if error:
        lines += ["### Failed", "", f"This model's section stopped with: `{error}`", ""]
    return lines, error


def run_demo(output: Path, quick: bool = False, paths: list[Path] | None = None) -> DemoResult:
    """Build the report for every bundled model (or the model files ``paths``) into
    ``output`` (replaced atomically); a model that fails is reported in its section and in
    the result's ``failures``."""
    from netderive.models import bundled_model_paths

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
    failures: dict[str, str] = {}
    try:
        paths = bundled_model_paths() if paths is None else [Path(p) for p in paths]
        labels = [f"[{n}/{len(paths)}] {p.stem}" for n, p in enumerate(paths, start=1)]
        prepared = [_prepare(path, label) for path, label in zip(paths, labels, strict=True)]
        invalid = [p.path.stem for p in prepared if p.error]
        status(f"demo: {len(paths) - len(invalid)} of {len(paths)} models derived and "
               f"validated in {format_seconds(time.perf_counter() - start)}"
               + (f"; failed: {', '.join(invalid)}" if invalid else ""))
        lines = ["# netderive report", "",
                 f"Every bundled model, derived, printed, compiled, evaluated and checked "
                 f"({time.strftime('%Y-%m-%d %H:%M')}).", ""]
        for model in prepared:
            model_start = time.perf_counter()
            section, error = _section(model, tmp, quick)
            lines += section
            if error:
                failures[model.path.stem] = error
            status(f"{model.label}: {'FAILED' if error else 'done'} in "
                   f"{format_seconds(time.perf_counter() - model_start)} "
                   f"(total {format_seconds(time.perf_counter() - start)})")
        if failures:
            lines += [f"{len(failures)} of {len(paths)} models failed: "
                      + ", ".join(failures) + ".", ""]
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
    return DemoResult(output / "report.md", failures)
