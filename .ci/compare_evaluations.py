"""Compare ``netderive eval`` of every bundled model and quantity between two checkouts.

    python .ci/compare_evaluations.py OLD_CHECKOUT NEW_CHECKOUT [--rtol 1e-12] [--models ...]

For every bundled model of NEW_CHECKOUT and every quantity: the value at the model's
defaults, and a 3-point grid over the quantity's first argument (its default and two
neighbours inside its domain).  Each checkout runs its own command line in subprocesses
(its own cache under a temporary folder); a checkout whose root is the package ``netderive``
(``__init__.py`` at the root) is run as ``python -m netderive.runtime.cli`` through a linked
folder, an older one as ``python -m runtime.cli``.  Values must agree to ``--rtol`` (relative,
with the same absolute floor; NaN equals NaN).  Exit status 1 on any difference.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: A parameter without a default gets this value (inside the domains of the bundled models).
FALLBACK_VALUE = 0.5
#: Relative step of the neighbours of a real default (integers: the next integers).
NEIGHBOUR_STEP = 0.1


class Checkout:
    """One checkout's command line, with a cache of its own."""

    def __init__(self, root: Path, scratch: Path, tag: str) -> None:
        self.root = root.resolve()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NETDERIVE_")}
        self.env["NETDERIVE_CACHE_DIR"] = str(scratch / f"cache-{tag}")
        if (self.root / "__init__.py").is_file():  # the root is the package netderive
            link = scratch / f"link-{tag}"
            link.mkdir()
            (link / "netderive").symlink_to(self.root, target_is_directory=True)
            self.env["PYTHONPATH"] = str(link)
            self.module = "netderive.runtime.cli"
        else:
            self.env["PYTHONPATH"] = str(self.root)
            self.module = "runtime.cli"
        self.cwd = scratch

    def eval_csv(self, model: Path, quantities: list[str], options: list[str]
                 ) -> tuple[list[str], list[list[float]]]:
        run = subprocess.run([sys.executable, "-m", self.module, "eval", str(model),
                              *quantities, *options, "--csv", "-"], cwd=self.cwd,
                             env=self.env, capture_output=True, text=True, timeout=3600)
        if run.returncode != 0:
            raise RuntimeError(f"{self.root}: eval {model.stem} {quantities} {options}: "
                               f"{run.stderr.strip().splitlines()[-1:]}")
        header, *rows = list(csv.reader(io.StringIO(run.stdout)))
        return header, [[float(v) for v in row] for row in rows]


def manifest(new: Checkout, model: Path) -> dict:
    """The new checkout's manifest of ``model`` (quantities, arguments, parameter domains)."""
    code = ("import json, sys\nfrom netderive.runtime.session import build, resolve_model\n"
            "print(json.dumps(build(resolve_model(sys.argv[1])).manifest))")
    run = subprocess.run([sys.executable, "-c", code, str(model)], cwd=new.cwd, env=new.env,
                         capture_output=True, text=True, timeout=3600, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def neighbours(param: dict) -> list[float]:
    """The default of ``param`` and two neighbours inside its domain."""
    d = param["default"] if param["default"] is not None else FALLBACK_VALUE
    step = 1.0 if param["integer"] else NEIGHBOUR_STEP * max(abs(d), 1.0)
    values = [d - step, d, d + step]

    def inside(v: float) -> bool:
        lo_ok = v >= param["lower"] if param["lower_closed"] else v > param["lower"]
        hi_ok = v <= param["upper"] if param["upper_closed"] else v < param["upper"]
        return lo_ok and hi_ok

    return [v for v in values if inside(v)]


def same(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-12)
    parser.add_argument("--models", nargs="*", help="model stems (default: every bundled one)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="netderive-compare-"))
    old, new = Checkout(args.old, scratch, "old"), Checkout(args.new, scratch, "new")
    models = sorted((new.root / "models").glob("*.toml"))
    if args.models:
        models = [m for m in models if m.stem in args.models]
    compared = differing = 0
    for model in models:
        info = manifest(new, model)
        params = {p["name"]: p for p in info["params"]}
        quantities = [i for i in info["items"] if not i["internal"]]
        missing = sorted({a for i in quantities for a in i["arguments"]
                          if params[a]["default"] is None})
        sets = [f"--set={a}={FALLBACK_VALUE}" for a in missing]
        jobs = [([i["name"] for i in quantities], sets)]
        for item in quantities:
            if item["arguments"]:
                first = item["arguments"][0]
                values = ",".join(repr(v) for v in neighbours(params[first]))
                jobs.append(([item["name"]], [s for s in sets if not s.startswith(
                    f"--set={first}=")] + [f"--grid={first}={values}"]))
        for names, options in jobs:
            header_old, rows_old = old.eval_csv(model, names, options)
            header_new, rows_new = new.eval_csv(model, names, options)
            if header_old != header_new or len(rows_old) != len(rows_new):
                print(f"DIFFERENT SHAPE {model.stem} {names} {options}")
                differing += 1
                continue
            for row_old, row_new in zip(rows_old, rows_new, strict=True):
                for name, a, b in zip(header_new, row_old, row_new, strict=True):
                    compared += 1
                    if not same(a, b, args.rtol):
                        differing += 1
                        print(f"DIFFERENT {model.stem} {name} {options}: {a!r} vs {b!r}")
        print(f"{model.stem}: {len(jobs)} evaluations compared", flush=True)
    print(f"{compared} values compared, {differing} differ beyond rtol {args.rtol:g}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
