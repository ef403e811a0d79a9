"""The ``netderive`` command line: build | latex | eval | check | demo | models | info | cache.

Every error from bad input is one line on stderr and exit status 2; no traceback
(set NETDERIVE_DEBUG=1 to see one). Results go to stdout; status lines and progress bars to
stderr (``-q`` silences them; see :mod:`runtime.progress`).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from pathlib import Path

from netderive.derivations.model import ModelError, did_you_mean

from .session import UsageError

EXAMPLES = """examples:
  netderive demo                                   # every bundled model -> ./netderive-report/
  netderive models                                 # the bundled models (names for MODEL)
  netderive info MODEL                             # its quantities, parameters, model keys
  netderive build MODEL                            # derive + LaTeX + kernels (cached)
  netderive latex MODEL                            # the derived formulas as LaTeX
  netderive eval MODEL QUANTITY --grid NAME=START:STOP:NUM --csv out.csv --plot out.png
  netderive check MODEL                            # kernels vs independent references
"""


PROG = "netderive"
CHECK_EPILOG = """exit status:
  0  every comparison agrees
  1  a disagreement (a row marked NO; the table says which)
  2  bad input (one line on stderr), as for every command
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        allowed = "" if "; allowed:" in message else f"; allowed: see {self.prog} --help"
        raise UsageError(f"{where}{message}{allowed}")


class _Once(argparse.Action):
    """An option that may be given at most once (a second --csv is an error, not a winner)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        seen = f"_given_{self.dest}"
        if getattr(namespace, seen, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, seen)}, {values})"
                         f"; allowed: one {'/'.join(self.option_strings)}")
        setattr(namespace, seen, values)
        setattr(namespace, self.dest, values)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("netderive")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Derive, print and compile formulas of deep "
                "network theory.", epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    quiet_help = "no status lines or progress bars on stderr"
    p.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    # -q also after the command (netderive eval ... -q); SUPPRESS keeps the one given before
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help=quiet_help)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    model_help = "a model file (.toml) or the name of a bundled model"

    def command(name: str, **kwargs: object) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    b = command("build", help="derive and generate kernels (no-op when unchanged)")
    b.add_argument("model", help=model_help)
    b.add_argument("--compile", action="store_true",
                   help="also compile every kernel now (numba cache), not on first use")

    lt = command("latex", help="print the derived formulas as LaTeX (or Markdown)")
    lt.add_argument("model", help=model_help)
    lt.add_argument("--markdown", action="store_true", help="Markdown with $$ blocks")
    lt.add_argument("-o", "--output", type=Path, action=_Once,
                    help="write to this file instead of stdout")

    e = command("eval", help="evaluate quantities on a grid")
    e.add_argument("model", help=model_help)
    e.add_argument("quantities", nargs="+", metavar="QUANTITY")
    e.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter (or a model key such as depth: re-derives)")
    e.add_argument("--grid", action="append", default=[], metavar="NAME=START:STOP:NUM",
                   help="grid axis: START:STOP:NUM (linspace) or v1,v2,...")
    e.add_argument("--csv", type=Path, action=_Once,
                   help="write the table as CSV (full precision); '-' for stdout")
    e.add_argument("--plot", type=Path, action=_Once,
                   help="plot against the first grid axis, in the format its extension names "
                   "(.png, .pdf, .svg)")
    e.add_argument("--parallel", choices=("auto", "yes", "no"), default="auto",
                   help="grid kernel on both cores (prange) or one (default: by grid size)")

    c = command("check", help="compare kernels with independent Monte Carlo / "
                "brute-force minimisation", epilog=CHECK_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("model", help=model_help)
    c.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    c.add_argument("--draws", type=int, default=200_000, help="Monte Carlo draws")
    c.add_argument("--starts", type=int, default=None,
                   help="multi-start minimisation starts (families whose check minimises; "
                   "default: the family's)")
    c.add_argument("--seed", type=int, default=0)

    d = command("demo", help="the main job: every bundled model derived, printed, "
                "compiled, evaluated and checked; a report with LaTeX, tables, plots")
    d.add_argument("--output", type=Path, default=Path("netderive-report"), action=_Once,
                   help="report folder (default ./netderive-report)")
    d.add_argument("--quick", action="store_true", help="fewer Monte Carlo draws and starts")

    command("models", help="list the bundled models")

    i = command("info", help="a model's quantities, parameters and model keys")
    i.add_argument("model", help=model_help)
    i.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="show the model with a parameter or model key changed")

    k = command("cache", help="list the cached builds (sizes, versions); --clean removes "
                "those of other sympy/numba versions")
    k.add_argument("--clean", action="store_true",
                   help="remove builds of other sympy/numba versions and stale temporary "
                   "folders (never the current versions' builds)")
    k.add_argument("--all", action="store_true",
                   help="with --clean: remove every build, the current ones too")
    return p


def _split_sets(build_, assignments: list[str], option: str = "--set"):
    """Parameter values and model-key overrides from ``--set NAME=VALUE``."""
    from .evaluate import parse_assignment
    from .session import parse_number

    params, structural = {}, {}
    schema_keys = _schema_keys(build_.spec.family)
    inputs = build_.inputs
    for text in assignments:
        name, value = parse_assignment(text, option)
        label = f"{option} {text}"
        if name in params or name in structural:
            raise UsageError(f"{label}: {name} given twice; allowed: one {option} per name")
        if name in build_.params and name not in inputs:
            raise UsageError(f"{label}: {name} is an internal variable of the derivation, no "
                             f"quantity takes it; allowed: {', '.join(inputs)}")
        if name in build_.params:
            params[name] = parse_number(value, label)
        elif name in schema_keys:
            structural[name] = parse_key_value(build_.spec.get(name), value, label)
        else:
            known = list(dict.fromkeys([*inputs, *sorted(schema_keys)]))
            raise UsageError(f"{label}: unknown parameter {name!r}{did_you_mean(name, known)}; "
                             "allowed: " + ", ".join(known))
    return params, structural


def parse_key_value(current, text: str, label: str):
    """The value of a top-level model key given on the command line, of the kind of its
    current value: text as it is, a list as ``4,2,2`` (or ``[4,2,2]``), else a number
    (a whole number as an int).  The model's schema validates it."""
    from .session import parse_number

    def number(piece: str):
        value = parse_number(piece.strip(), label)
        return int(value) if value.is_integer() else value

    if isinstance(current, str):
        return text
    if isinstance(current, tuple):
        if any(isinstance(v, tuple) for v in current):
            raise UsageError(f"{label}: a list of lists; allowed: edit it in the model file")
        pieces = [p for p in text.strip().removeprefix("[").removesuffix("]").split(",")
                  if p.strip()]
        if not pieces:
            raise UsageError(f"{label}: an empty list; allowed: numbers separated by commas, "
                             "e.g. 4,2,2")
        return [number(p) for p in pieces]
    return number(text)


def _schema_keys(family: str) -> set[str]:
    from netderive.derivations.families import schema_of

    return {k for k in schema_of(family).keys if k != "description"}


def _resolve_build(model: str, sets: list[str]):
    from .session import apply_structural, resolve_model

    b = _build(resolve_model(model))
    params, structural = _split_sets(b, sets)
    if structural:
        b = _build(apply_structural(b.spec, structural, "--set"))
        params = {k: v for k, v in params.items() if k not in structural}
    return b, params


def _build(spec):
    """The model's build; derivations are announced on stderr, with the time they took."""
    from .progress import format_seconds, status
    from .session import build

    b = build(spec, on_derive=_say_deriving)
    if b.rebuilt:
        status(f"derived {b.spec.source} in {format_seconds(b.seconds)}")
    return b


def _structural_variants(b, structural: list[str], grid: dict, quantities: list[str],
                         fixed: dict):
    """The build and request of every combination of the model-key axes of ``--grid``."""
    import itertools

    from .evaluate import make_request
    from .session import apply_structural

    params = {a: v for a, v in grid.items() if a not in structural}
    variants = {}
    for combo in itertools.product(*(grid[a] for a in structural)):
        overrides = {a: int(v) if float(v).is_integer() else float(v)
                     for a, v in zip(structural, combo, strict=True)}
        label = "--grid " + ", ".join(f"{a}={v}" for a, v in overrides.items())
        variant = _build(apply_structural(b.spec, overrides, label))
        variants[tuple(float(v) for v in combo)] = (
            variant, make_request(variant, quantities, fixed, params))
    return variants


def _say_deriving(spec) -> None:
    from .progress import status

    status(f"deriving {spec.source} ...")


def cmd_build(args: argparse.Namespace) -> int:
    from .session import build, resolve_model

    b = build(resolve_model(args.model), on_derive=_say_deriving)
    if b.rebuilt:
        print(f"derived and generated {b.spec.source} in {b.seconds:.2f} s -> {b.directory}")
    else:
        print(f"unchanged: {b.spec.source} ({b.directory}, {b.seconds * 1000:.0f} ms)")
    if args.compile:
        from .compile import CompileWatch, compile_all

        with CompileWatch() as watch:
            seconds = compile_all(b)
        if watch.count:
            print(f"compiled {watch.count} kernels in {seconds:.1f} s")
        else:
            print(f"every kernel was compiled already (numba's cache; {seconds:.1f} s to load)")
    return 0


def _model_files(model: str) -> list[Path]:
    """The model file a command reads (outputs are never written over it)."""
    path = Path(model)
    if path.exists():
        return [path]
    from netderive.models import bundled_model

    try:
        return [bundled_model(model)]
    except FileNotFoundError:
        return []


def cmd_latex(args: argparse.Namespace) -> int:
    from .evaluate import atomic_write_text, check_output_path
    from .progress import status
    from .session import build, resolve_model

    if args.output:
        check_output_path(args.output, "--output", _model_files(args.model))
    b = build(resolve_model(args.model))
    text = (b.markdown_path if args.markdown else b.latex_path).read_text()
    if args.output:
        atomic_write_text(args.output, text, "--output", _model_files(args.model))
        status(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _check_names(b, quantities: list[str], grid_names: list[str]) -> None:
    """Unknown quantities and grid names as one-line errors that suggest the closest name."""
    for q in quantities:
        if q not in b.quantities:
            raise UsageError(f"quantity {q!r}: unknown for {b.spec.source}"
                             f"{did_you_mean(q, b.quantities)}; allowed: "
                             + ", ".join(b.quantities))
    keys = _schema_keys(b.spec.family)
    for name in grid_names:
        if name not in b.params and name not in keys:
            raise UsageError(f"--grid {name}: unknown parameter {name!r} for {b.spec.source}"
                             f"{did_you_mean(name, [*b.params, *sorted(keys)])}; allowed: "
                             + ", ".join(b.params))


def _planned_kernels(b, quantities: list[str], parallel: bool):
    """A function counting the kernels that evaluating ``quantities`` compiles (first use):
    the constraint checks' and the quantities' grid kernels."""

    def count() -> int:
        from .compile import pending_kernels

        names = []
        for constraint in b.manifest.get("constraints", []):
            item = constraint["item"]
            names.append(item + "_grid_serial" if b.item(item)["arguments"] else item)
        suffix = "_grid" if parallel else "_grid_serial"
        names += [q + suffix if b.item(q)["arguments"] else q for q in quantities]
        return len(pending_kernels(b.kernels(), names))

    return count


def _title(b, sets: list[str]) -> str:
    """The plot title: the model and the values given with --set."""
    from .evaluate import parse_assignment
    from .session import format_value

    given = [parse_assignment(text, "--set") for text in sets]
    shown = ", ".join(f"{n} = {format_value(b, n, float(v)) if n in b.params else v}"
                      for n, v in given)
    return f"model {b.spec.stem}" + (f"; {shown}" if shown else "")


def cmd_eval(args: argparse.Namespace) -> int:
    from .compile import CompileWatch
    from .evaluate import (
        MAX_TABLE_POINTS,
        PARALLEL_THRESHOLD,
        Request,
        atomic_output,
        check_output_path,
        format_bytes,
        make_request,
        parse_assignment,
        parse_grid_values,
        plot,
        plot_format,
        sweep,
        table_bytes,
    )
    from .progress import status

    to_stdout = args.csv is not None and str(args.csv) == "-"
    inputs = _model_files(args.model)
    if args.csv and not to_stdout:
        check_output_path(args.csv, "--csv", inputs)
    if args.plot:
        plot_format(args.plot)
        check_output_path(args.plot, "--plot", inputs)
    b, fixed = _resolve_build(args.model, args.set)
    grid, grid_text, structural = {}, {}, []
    for text in args.grid:
        name, value = parse_assignment(text, "--grid")
        if name in grid_text:
            raise UsageError(f"--grid {text}: {name} given twice; allowed: one axis per name")
        grid_text[name] = value
    _check_names(b, args.quantities, list(grid_text))
    keys = _schema_keys(b.spec.family)
    for name, value in grid_text.items():
        if name not in b.params and name in keys:
            if isinstance(b.spec.get(name), str | tuple):
                raise UsageError(f"--grid {name}={value}: {name} is a text or list key of the "
                                 f"model; allowed: one value with --set {name}=VALUE")
            structural.append(name)
        grid[name] = parse_grid_values(name, value)
    if args.plot:
        if not 1 <= len(grid) <= 2:
            raise UsageError(f"--plot {args.plot}: {len(grid)} --grid axes; allowed: one or "
                             "two --grid axes, e.g. --grid NAME=A:B:N")
    points = math.prod(len(axis) for axis in grid.values())
    if (args.plot or not args.csv) and points > MAX_TABLE_POINTS:
        size = format_bytes(table_bytes(points, len(grid) + len(args.quantities)))
        raise UsageError(f"--grid: {points} points (about {size} as a table); allowed: at "
                         f"most {MAX_TABLE_POINTS} points for a printed table or a plot; write "
                         "a larger sweep to a file with --csv FILE (streamed in chunks, "
                         "without --plot)")
    parallel = {"auto": points >= PARALLEL_THRESHOLD, "yes": True, "no": False}[args.parallel]
    with CompileWatch(planned=_planned_kernels(b, args.quantities, parallel)):
        if structural:
            variants = _structural_variants(b, structural, grid, args.quantities, fixed)
            request = Request(list(args.quantities), {}, grid, tuple(structural))
        else:
            variants = None
            request = make_request(b, args.quantities, fixed, grid)
        run = functools.partial(sweep, b, request, parallel=parallel, keep=bool(args.plot),
                                variants=variants)
        if to_stdout:  # stdout carries the CSV only
            preview, columns, results = run(sys.stdout)
        elif args.csv:
            with atomic_output(args.csv, "--csv", inputs=inputs) as tmp, tmp.open("w") as out:
                preview, columns, results = run(out)
        else:
            preview, columns, results = run(None)
    if not to_stdout:
        print(preview.table(grid_text, f"every row is in {args.csv}" if args.csv else
                            "write them all with --csv FILE"))
    if args.csv and not to_stdout:
        status(f"wrote {args.csv} ({preview.rows} rows)")
    if args.plot:
        plot(args.plot, request, columns, results, title=_title(b, args.set))
        status(f"wrote {args.plot}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_check
    from .compile import CompileWatch

    if args.draws < 100:
        raise UsageError(f"--draws {args.draws}: too few; allowed: an integer >= 100")
    if args.starts is not None and args.starts < 1:
        raise UsageError(f"--starts {args.starts}: allowed: an integer >= 1")
    b, fixed = _resolve_build(args.model, args.set)
    with CompileWatch():
        report = run_check(b, fixed, draws=args.draws, starts=args.starts, seed=args.seed)
    print(report.table())
    return 0 if report.all_agree else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(args.output, quick=args.quick)
    print(f"report: {result.report}")
    if result.failures:
        print(f"netderive: demo: {len(result.failures)} model(s) failed: "
              f"{', '.join(result.failures)} (see their sections of the report)",
              file=sys.stderr)
        return 1
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from netderive.derivations.model import load_model
    from netderive.models import bundled_model_paths

    for path in bundled_model_paths():
        spec = load_model(path)
        print(f"{path.stem:32s} {spec.family:16s} {spec.get('description', '')}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .info import describe

    b, fixed = _resolve_build(args.model, args.set)
    print(describe(b, fixed))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from netderive.codegen.cache import cache_entries, cache_root, remove_entries, version_dir

    from .evaluate import format_bytes

    if args.all and not args.clean:
        raise UsageError("--all: only with --clean; allowed: netderive cache --clean --all")
    entries = cache_entries()
    root = cache_root()
    if args.clean:
        chosen = [e for e in entries if e.removable or args.all]
        removed = remove_entries(chosen)
        for e in removed:
            print(f"removed {e.path} ({format_bytes(e.size)}, {e.status})")
        kept = len(entries) - len(removed)
        freed = format_bytes(sum(e.size for e in removed))
        print(f"removed {len(removed)} folder{'' if len(removed) == 1 else 's'} ({freed}) "
              f"from {root}; kept {kept}")
        return 0
    print(f"cache root: {root} (current versions: {version_dir().name})")
    if not entries:
        print("no builds")
        return 0
    width = max(len(e.model) for e in entries)
    version_width = max(len(e.version) for e in entries)
    print(f"{'version':{version_width}s}  {'model':{width}s}  {'key':12s}  {'size':>9s}  status")
    for e in entries:
        print(f"{e.version:{version_width}s}  {e.model:{width}s}  {e.key:12s}  "
              f"{format_bytes(e.size):>9s}  {e.status}")
    removable = [e for e in entries if e.removable]
    print(f"{len(entries)} folders, {format_bytes(sum(e.size for e in entries))}; netderive cache "
          f"--clean removes {len(removable)} ({format_bytes(sum(e.size for e in removable))})")
    return 0


#: Exit status when stdout is closed early: what a shell reports for death by SIGPIPE.
BROKEN_PIPE_STATUS = 141

COMMANDS = {"build": cmd_build, "latex": cmd_latex, "eval": cmd_eval, "check": cmd_check,
            "demo": cmd_demo, "models": cmd_models, "info": cmd_info, "cache": cmd_cache}


def main(argv: list[str] | None = None) -> int:
    debug = bool(os.environ.get("NETDERIVE_DEBUG"))
    try:
        args = _parser().parse_args(argv)
        from .progress import set_quiet

        set_quiet(args.quiet)
        return COMMANDS[args.command](args)
    except (ModelError, UsageError) as exc:
        if debug:
            raise
        message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        print(f"netderive: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (e.g. `netderive eval ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    except OSError as exc:  # a path the user gave (or NETDERIVE_CACHE_DIR) is unusable
        if debug:
            raise
        where = exc.filename or "a path"
        print(f"netderive: error: {where}: {exc.strerror or exc}; allowed: a readable, "
              "writable location (check the paths given and NETDERIVE_CACHE_DIR)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netderive: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, traceback on request
        if debug:
            raise
        from netderive.derivations.ir import DerivationError

        kind = "derivation failed" if isinstance(exc, DerivationError) else "internal error"
        print(f"netderive: {kind}: {type(exc).__name__}: {exc} "
              "(set NETDERIVE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
