"""The run-time side of the family registry: one package per family, generic modules that
name no family, no algebra (no sympy) at run time, references independent of the derivations,
kernels called by name."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from netderive.derivations.families import FAMILIES
from netderive.runtime.families import FamilyRuntime, Figure, family_runtime, registry

RUNTIME = PROJECT_ROOT / "runtime"
FAMILY_PACKAGES = RUNTIME / "families"
#: The generic run-time modules: every module directly under runtime/, and the registry.
GENERIC = sorted([*RUNTIME.glob("*.py"), FAMILY_PACKAGES / "__init__.py"])
#: What a reference may import of netderive (progress bars, the activation evaluator).
REFERENCE_MAY_IMPORT = ("netderive.runtime.progress", "netderive.runtime.activation")
#: Modules no run-time module may import: the runtime does no algebra.
ALGEBRA = ("sympy", "symengine", "mpmath")


def _bundled_stems() -> list[str]:
    from netderive.models import bundled_model_paths

    return [p.stem for p in bundled_model_paths()]


def _imports(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(["netderive", *path.relative_to(PROJECT_ROOT).parent.parts])
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            names += [module] if node.module else [f"{module}.{a.name}" for a in node.names]
    return names


def test_every_family_has_a_runtime_package() -> None:
    assert set(registry()) == set(FAMILIES)
    for family in FAMILIES:
        runtime = family_runtime(family)
        assert isinstance(runtime, FamilyRuntime) and runtime.family == family
        assert callable(runtime.check)
        assert all(isinstance(f, Figure) for f in runtime.figures)
        assert (FAMILY_PACKAGES / family / "reference.py").is_file(), family
    assert sorted(p.name for p in FAMILY_PACKAGES.iterdir() if (p / "__init__.py").is_file()
                  ) == sorted(FAMILIES)


def _family_names_in(path: Path) -> list[str]:
    """``file:line: name`` of every family name or bundled model stem in ``path`` (code,
    strings, comments; as a whole word: ``build_`` is not ``ld_``)."""
    names = [*FAMILIES, *_bundled_stems()]
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, names))
                         + r")(?![A-Za-z0-9_])")
    return [f"{path.relative_to(PROJECT_ROOT)}:{n}: {m.group(1)}"
            for n, line in enumerate(path.read_text().splitlines(), start=1)
            for m in [pattern.search(line)] if m]


def test_generic_modules_name_no_family() -> None:
    """The generic modules reach the families through the registry only."""
    assert len(GENERIC) >= 12
    found = [hit for path in GENERIC for hit in _family_names_in(path)]
    assert not found, "\n".join(found)


def test_the_search_finds_family_names_where_they_belong() -> None:
    """The test above can fail: the same search finds the names in the family modules."""
    for family in FAMILIES:
        assert _family_names_in(FAMILY_PACKAGES / family / "__init__.py"), family
    assert _family_names_in(FAMILY_PACKAGES / "large_deviation" / "figures.py")


def test_no_module_under_runtime_imports_sympy() -> None:
    modules = sorted(RUNTIME.rglob("*.py"))
    assert len(modules) > len(GENERIC)
    bad = [f"{p.relative_to(PROJECT_ROOT)}: {name}" for p in modules for name in _imports(p)
           if name.split(".")[0] in ALGEBRA]
    assert not bad, bad


def test_importing_the_whole_runtime_loads_no_sympy() -> None:
    """Indirect imports too (e.g. through derivations): every run-time module imported in a
    fresh interpreter, then sympy is not among the loaded modules."""
    modules = [".".join(["netderive", *p.relative_to(PROJECT_ROOT).with_suffix("").parts])
               .removesuffix(".__init__") for p in sorted(RUNTIME.rglob("*.py"))]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in {ALGEBRA!r}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", run.stdout


@pytest.mark.parametrize("family", FAMILIES)
def test_references_import_nothing_of_the_derivations(family: str) -> None:
    """``reference*.py`` (and the activation evaluator they use) import numpy/scipy and
    nothing of netderive but progress bars and the activation evaluator."""
    paths = [*sorted((FAMILY_PACKAGES / family).glob("reference*.py")),
             RUNTIME / "activation.py"]
    for path in paths:
        ours = [n for n in _imports(path) if n.split(".")[0] == "netderive"]
        assert all(n.startswith(REFERENCE_MAY_IMPORT) for n in ours), (path, ours)
        assert not [n for n in _imports(path) if n.split(".")[0] in (*ALGEBRA, "numba")]


def test_families_and_demo_call_kernels_by_name() -> None:
    """The family modules, the demo and the check never take the kernel module of a build
    (``.kernels()``, whose functions take arguments by position): they call
    ``Build.call``, ``Build.grid`` and ``Build.curves``, which take them by name."""
    paths = [*sorted(FAMILY_PACKAGES.rglob("*.py")), RUNTIME / "demo.py", RUNTIME / "check.py"]
    bad = [f"{p.relative_to(PROJECT_ROOT)}:{node.lineno}" for p in paths
           for node in ast.walk(ast.parse(p.read_text()))
           if isinstance(node, ast.Attribute) and node.attr == "kernels"]
    assert not bad, bad


def test_every_runtime_package_says_what_lives_there_and_what_it_may_import() -> None:
    inits = sorted(RUNTIME.rglob("__init__.py"))
    assert len(inits) == 2 + len(FAMILIES)
    for path in inits:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "may import" in doc.lower(), path
    assert "never sympy" in ast.get_docstring(ast.parse((RUNTIME / "__init__.py").read_text())
                                              ).lower()
