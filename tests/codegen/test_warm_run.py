"""A warm run compiles nothing: numba's on-disk cache holds every kernel a generated module
calls, the spliced algorithms and the imported cached ones included.

Two fresh processes build (or find) the toy set's kernels in one cache folder and call the
kernels of every kind that uses a fixed algorithm; the second must load every compiled
function from numba's cache (the dispatchers' cache statistics: hits, no misses).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent

#: Build the items of the toy set whose kernels call a fixed algorithm (root search, dynamic
#: programming, line envelope, largest eigenvalue, continuation) or loop (recurrence,
#: quadrature), call each kernel, and print (hits, misses) of numba's cache per dispatcher.
SCRIPT = r"""
import json, sys
import numpy as np
sys.path[:0] = [{tests!r}, {tests_codegen!r}]
from conftest import _import_this_checkout, toy_formula_set
_import_this_checkout()
import numba
from netderive.codegen import compile_formulas
from netderive.derivations.ir import FormulaSet
from test_parity import POINTS

full = toy_formula_set()
wanted = ("rec", "root_first", "root_min", "e_gh1", "dp_envelope", "dp_stage", "rot_eig",
          "path_rate")
keep = set(wanted) | {{d for w in wanted for d in full.dependencies(full.item(w))}}
fs = FormulaSet("warm", full.family, full.source, full.params,
                tuple(i for i in full.items if i.name in keep))
module = compile_formulas(fs)
point = POINTS[0]
for name in wanted:
    args = [point[a] for a in fs.arguments(name)]
    getattr(module, name)(*args)
    getattr(module, name + "_grid")(*[np.array([a, a]) for a in args])
    getattr(module, name + "_grid_serial")(*[np.array([a, a]) for a in args])
stats = {{}}
for owner in [module, *(sys.modules[m] for m in list(sys.modules)
                        if m.startswith("netderive.codegen.algorithms."))]:
    for attr, value in vars(owner).items():
        if isinstance(value, numba.core.registry.CPUDispatcher) and value.signatures:
            s = value.stats
            stats[owner.__name__.split(".")[-1] + "." + attr] = (
                sum(s.cache_hits.values()), sum(s.cache_misses.values()))
print(json.dumps(stats))
"""


def run_once(cache: Path) -> dict[str, list[int]]:
    env = {**os.environ, "NETDERIVE_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(cache / "nb")}
    script = SCRIPT.format(tests=str(TESTS), tests_codegen=str(TESTS / "codegen"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=cache, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_compiles_nothing(tmp_path: Path) -> None:
    first = run_once(tmp_path)
    assert sum(misses for _, misses in first.values()) > 0  # the first run did compile
    second = run_once(tmp_path)
    compiled = {name: counts for name, counts in second.items() if counts != [1, 0]}
    assert not compiled, f"compiled in the warm run, (hits, misses): {compiled}"
    # every compiled kernel called from Python was loaded from the cache (functions called
    # only from compiled code are linked into their callers' cached code)
    loaded = {name.split(".", 1)[1] for name in second if name.startswith("netderive_kernels")}
    for item in ("rec", "root_first", "root_min", "e_gh1", "dp_envelope", "dp_stage"):
        assert {item, f"{item}_grid", f"{item}_grid_serial"} <= loaded
    assert {"_program_0", "_saddle_0_solve"} <= loaded  # rot_eig, path_rate: Python wrappers
