"""The ``netderive`` command line: build | latex | eval | check | demo | models.

Every error from bad input is one line on stderr and exit status 2; no traceback
(set NETDERIVE_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from pathlib import Path

from derivations.model import ModelError

from .session import UsageError

EXAMPLES = """examples:
  netderive demo                                   # every bundled model -> ./netderive-report/
  netderive models                                 # list the bundled models
  netderive build models/weight_decay.toml         # derive + LaTeX + kernels (cached)
  netderive latex weight_decay                     # the derived formulas as LaTeX
  netderive eval weight_decay b_star loss_at_minimum --grid weight_decay=0.05:0.6:56 \\
      --csv out.csv --plot out.png
  netderive check weight_decay                     # kernels vs Monte Carlo / minimisation
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}; allowed: see {self.prog} --help")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="netderive", description="Derive, print and compile formulas of deep "
                "network theory.", epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    model_help = "a model file (.toml) or the name of a bundled model"

    b = sub.add_parser("build", help="derive and generate kernels (no-op when unchanged)")
    b.add_argument("model", help=model_help)
    b.add_argument("--compile", action="store_true",
                   help="also compile every kernel now (numba cache), not on first use")

    lt = sub.add_parser("latex", help="print the derived formulas as LaTeX (or Markdown)")
    lt.add_argument("model", help=model_help)
    lt.add_argument("--markdown", action="store_true", help="Markdown with $$ blocks")
    lt.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")

    e = sub.add_parser("eval", help="evaluate quantities on a grid")
    e.add_argument("model", help=model_help)
    e.add_argument("quantities", nargs="+", metavar="QUANTITY")
    e.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter (or a model key such as depth: re-derives)")
    e.add_argument("--grid", action="append", default=[], metavar="NAME=START:STOP:NUM",
                   help="grid axis: START:STOP:NUM (linspace) or v1,v2,...")
    e.add_argument("--csv", type=Path,
                   help="write the table as CSV (full precision); '-' for stdout")
    e.add_argument("--plot", type=Path, help="write a PNG plot against the first grid axis")
    e.add_argument("--parallel", choices=("auto", "yes", "no"), default="auto",
                   help="grid kernel on both cores (prange) or one (default: by grid size)")

    c = sub.add_parser("check", help="compare kernels with independent Monte Carlo / "
                       "brute-force minimisation")
    c.add_argument("model", help=model_help)
    c.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    c.add_argument("--draws", type=int, default=200_000, help="Monte Carlo draws")
    c.add_argument("--starts", type=int, default=24, help="multi-start minimisation starts")
    c.add_argument("--seed", type=int, default=0)

    d = sub.add_parser("demo", help="the main job: every bundled model derived, printed, "
                       "compiled, evaluated and checked; a report with LaTeX, tables, plots")
    d.add_argument("--output", type=Path, default=Path("netderive-report"),
                   help="report folder (default ./netderive-report)")
    d.add_argument("--quick", action="store_true", help="fewer Monte Carlo draws and starts")

    sub.add_parser("models", help="list the bundled models")
    return p


def _split_sets(build_, assignments: list[str], option: str = "--set"):
    """Parameter values and model-key overrides from ``--set NAME=VALUE``."""
    from .evaluate import parse_assignment
    from .session import parse_number

    params, structural = {}, {}
    schema_keys = _schema_keys(build_.spec.family)
    for text in assignments:
        name, value = parse_assignment(text, option)
        label = f"{option} {text}"
        if name in build_.params:
            params[name] = parse_number(value, label)
        elif name in schema_keys:
            structural[name] = parse_key_value(build_.spec.get(name), value, label)
        else:
            raise UsageError(f"{label}: unknown parameter {name!r}; allowed: "
                             + ", ".join(dict.fromkeys([*build_.params, *sorted(schema_keys)])))
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
    from derivations.schemas import SCHEMAS

    return {k for k in SCHEMAS[family].keys if k != "description"}


def _resolve_build(model: str, sets: list[str]):
    from .session import apply_structural, build, resolve_model

    b = build(resolve_model(model), on_derive=_say_deriving)
    params, structural = _split_sets(b, sets)
    if structural:
        b = build(apply_structural(b.spec, structural, "--set"), on_derive=_say_deriving)
        params = {k: v for k, v in params.items() if k not in structural}
    return b, params


def _structural_variants(b, structural: list[str], grid: dict, quantities: list[str],
                         fixed: dict):
    """The build and request of every combination of the model-key axes of ``--grid``."""
    import itertools

    from .evaluate import make_request
    from .session import apply_structural, build

    params = {a: v for a, v in grid.items() if a not in structural}
    variants = {}
    for combo in itertools.product(*(grid[a] for a in structural)):
        overrides = {a: int(v) if float(v).is_integer() else float(v)
                     for a, v in zip(structural, combo, strict=True)}
        label = "--grid " + ", ".join(f"{a}={v}" for a, v in overrides.items())
        variant = build(apply_structural(b.spec, overrides, label), on_derive=_say_deriving)
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
        from .compile import compile_all

        seconds = compile_all(b)
        print(f"compiled {len(b.manifest['items'])} kernels in {seconds:.1f} s")
    return 0


def cmd_latex(args: argparse.Namespace) -> int:
    from .evaluate import atomic_write_text
    from .session import build, resolve_model

    b = build(resolve_model(args.model))
    text = (b.markdown_path if args.markdown else b.latex_path).read_text()
    if args.output:
        atomic_write_text(args.output, text, "--output")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import (
        MAX_TABLE_POINTS,
        Request,
        atomic_output,
        check_output_path,
        format_bytes,
        make_request,
        parse_assignment,
        parse_grid_values,
        plot,
        sweep,
        table_bytes,
    )

    b, fixed = _resolve_build(args.model, args.set)
    grid, structural = {}, []
    keys = _schema_keys(b.spec.family)
    for text in args.grid:
        name, value = parse_assignment(text, "--grid")
        if name in grid:
            raise UsageError(f"--grid {text}: {name} given twice; allowed: one axis per name")
        if name not in b.params and name in keys:
            if isinstance(b.spec.get(name), str | tuple):
                raise UsageError(f"--grid {text}: {name} is a text or list key of the model; "
                                 f"allowed: one value with --set {name}=VALUE")
            structural.append(name)
        grid[name] = parse_grid_values(name, value)
    to_stdout = args.csv is not None and str(args.csv) == "-"
    if args.csv and not to_stdout:
        check_output_path(args.csv, "--csv")
    if args.plot:
        check_output_path(args.plot, "--plot")
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
    if structural:
        variants = _structural_variants(b, structural, grid, args.quantities, fixed)
        request = Request(list(args.quantities), {}, grid, tuple(structural))
    else:
        variants = None
        request = make_request(b, args.quantities, fixed, grid)
    parallel = {"auto": None, "yes": True, "no": False}[args.parallel]
    run = functools.partial(sweep, b, request, parallel=parallel, keep=bool(args.plot),
                            variants=variants)
    if to_stdout:  # stdout carries the CSV only
        _, points_, results = run(sys.stdout)
    elif args.csv:
        with atomic_output(args.csv, "--csv") as tmp, tmp.open("w") as out:
            preview, points_, results = run(out)
        print(preview.table())
        print(f"wrote {args.csv} ({preview.rows} rows)", file=sys.stderr)
    else:
        preview, points_, results = run(None)
        print(preview.table())
    if args.plot:
        plot(args.plot, request, points_, results, title=f"model {b.spec.stem}")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_check

    if args.draws < 100:
        raise UsageError(f"--draws {args.draws}: too few; allowed: an integer >= 100")
    if args.starts < 1:
        raise UsageError(f"--starts {args.starts}: allowed: an integer >= 1")
    b, fixed = _resolve_build(args.model, args.set)
    report = run_check(b, fixed, draws=args.draws, starts=args.starts, seed=args.seed)
    print(report.table())
    return 0 if report.all_agree else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    path = run_demo(args.output, quick=args.quick)
    print(f"report: {path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from derivations.model import load_model
    from models import bundled_model_paths

    for path in bundled_model_paths():
        spec = load_model(path)
        print(f"{path.stem:32s} {spec.family:16s} {spec.get('description', '')}")
    return 0


#: Exit status when stdout is closed early: what a shell reports for death by SIGPIPE.
BROKEN_PIPE_STATUS = 141

COMMANDS = {"build": cmd_build, "latex": cmd_latex, "eval": cmd_eval, "check": cmd_check,
            "demo": cmd_demo, "models": cmd_models}


def main(argv: list[str] | None = None) -> int:
    debug = bool(os.environ.get("NETDERIVE_DEBUG"))
    try:
        args = _parser().parse_args(argv)
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
        from derivations.ir import DerivationError

        kind = "derivation failed" if isinstance(exc, DerivationError) else "internal error"
        print(f"netderive: {kind}: {type(exc).__name__}: {exc} "
              "(set NETDERIVE_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
