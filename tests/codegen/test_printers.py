"""Every printer x every IR kind; strict failures; LaTeX/Markdown shape; stable hashes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import sympy as sp
from ir_interpreter import _Interpreter

from netderive.codegen import CodegenError, kernel_source, to_latex, to_markdown
from netderive.codegen.kernels import KernelPrinter, emitter_for
from netderive.codegen.latex import LatexPrinter
from netderive.derivations.ir import (
    IR_VERSION,
    ITEM_KINDS,
    POSITIVE,
    POSITIVE_INTEGER,
    REAL,
    DerivationError,
    Domain,
    Expectation,
    Formula,
    FormulaSet,
    Parameter,
    Recurrence,
    content_hash,
    item_symbol,
)

TESTS_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT = TESTS_DIR.parent
PRINTERS = (KernelPrinter, LatexPrinter)

A = sp.Symbol("a", positive=True)
Q = sp.Symbol("q", real=True)
PARAMS = (Parameter(A, "scale", POSITIVE, 2.0), Parameter(Q, "shift", REAL, 0.3))

#: content_hash(golden_formula_set()) from tests/conftest.py.  It must change only when
#: IR_VERSION or the sympy version changes (srepr is part of the hash); any other drift is
#: a change of the canonical form and invalidates every user's cache.  Recomputed for IR 5
#: (array programs may compute lambda_max; a loop bound's domain must be bounded above, so the
#: golden K went from [1, inf) to [1, 1000]).  Recomputed for IR 6 (a Root carries its
#: monotone_breaks).
GOLDEN_DIGEST = "40656ca2b1c79e9641e67599744a425956cb8143b9fca09eb293ea7bc213523f"
GOLDEN_IR_VERSION = "6"
GOLDEN_SYMPY = "1.14."  # the minor version pyproject allows


def one_formula(expr: sp.Expr, name: str = "bad") -> FormulaSet:
    return FormulaSet("one", "toy", "one.toml", PARAMS, (Formula(name, expr, "m", "r"),))


@dataclass(frozen=True)
class Legendre:
    """An item kind that no printer knows (it has what FormulaSet needs to accept it)."""

    name: str
    meaning: str = "a Legendre transform"
    ref: str = "nowhere"
    internal: bool = False

    def expressions(self) -> tuple[sp.Expr, ...]:
        return (A * Q,)

    def bound_symbols(self) -> tuple[sp.Symbol, ...]:
        return ()


# -- coverage of kinds -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ITEM_KINDS, ids=lambda k: k.__name__)
def test_every_printer_has_a_rule_for_every_kind(kind: type) -> None:
    """The kinds are listed once (ITEM_KINDS): the numba printer has an emitter module per kind,
    the LaTeX printer and the test interpreter a method per kind."""
    assert callable(emitter_for(kind).emit)
    assert callable(getattr(LatexPrinter, f"_emit_{kind.__name__}", None)), (
        f"LatexPrinter lacks _emit_{kind.__name__}")
    assert callable(getattr(_Interpreter, f"_value_{kind.__name__}", None)), (
        f"the interpreter lacks _value_{kind.__name__}")


def test_a_kind_without_an_emitter_is_named() -> None:
    with pytest.raises(CodegenError, match="KernelPrinter has no rule for Legendre"):
        emitter_for(Legendre)


def test_toy_set_covers_every_kind(toy_set: FormulaSet) -> None:
    assert {type(i) for i in toy_set.items} == set(ITEM_KINDS)


@pytest.mark.parametrize("printer", PRINTERS, ids=lambda p: p.__name__)
def test_every_printer_emits_every_toy_item(printer: type, toy_set: FormulaSet) -> None:
    p = printer(toy_set)
    for item in toy_set.items:
        assert p.emit(item).strip(), item.name


def test_unknown_item_kind_is_named(toy_set: FormulaSet) -> None:
    fs = FormulaSet("fake", "toy", "fake.toml", PARAMS, (Legendre("lt"),))
    with pytest.raises(CodegenError, match="KernelPrinter has no rule for Legendre"):
        kernel_source(fs, "0" * 64)
    with pytest.raises(CodegenError, match="LatexPrinter has no rule for Legendre"):
        to_latex(fs)
    with pytest.raises(CodegenError, match="Legendre"):
        to_markdown(fs)


# -- strict expression printing -------------------------------------------------------------
def test_unknown_function_is_a_codegen_error_not_broken_code() -> None:
    fs = one_formula(sp.Function("f")(A) + Q)
    with pytest.raises(CodegenError, match=r"\bf\b"):
        kernel_source(fs, "0" * 64)


def test_unsupported_sympy_function_is_a_codegen_error() -> None:
    fs = one_formula(sp.lowergamma(A, Q**2))
    with pytest.raises(CodegenError, match="lowergamma"):
        kernel_source(fs, "0" * 64)


def test_piecewise_without_true_branch_is_a_codegen_error() -> None:
    fs = one_formula(sp.Piecewise((A, Q > 0), (A**2, Q < -1)))
    with pytest.raises(CodegenError, match="Piecewise"):
        kernel_source(fs, "0" * 64)


def test_piecewise_with_true_branch_prints_a_conditional(toy_set: FormulaSet) -> None:
    source = kernel_source(toy_set, "0" * 64)
    assert " if " in source and " else " in source
    assert "None" not in source and not re.search(r"\bselect\(", source)


def test_recurrence_is_a_loop_and_not_unrolled(toy_set: FormulaSet) -> None:
    source = kernel_source(toy_set, "0" * 64)
    rec = source[source.index("def rec(") : source.index("def rec_trajectory(")]
    assert "for k_int in range(int(K)):" in rec
    assert rec.count("math.cos(") == 1  # one step map, whatever K is


def test_generated_module_lists_argument_order(toy_set: FormulaSet) -> None:
    source = kernel_source(toy_set, "f" * 64)
    assert 'CONTENT_HASH = "' + "f" * 64 + '"' in source
    for item in toy_set.items:
        args = toy_set.arguments(item.name)
        assert f"def {item.name}({', '.join(args)}):" in source
        assert f"Arguments: ({', '.join(args)})" in source
        assert f"def {item.name}_grid(" in source
        assert (f"def {item.name}_grid_serial(" in source
                or f"{item.name}_grid_serial = {item.name}_grid\n" in source)
    assert toy_set.arguments("t_star") == ("a", "q")  # the root solves for t


# -- LaTeX and Markdown ------------------------------------------------------------------
def test_latex_has_one_numbered_equation_per_item(toy_set: FormulaSet) -> None:
    tex = to_latex(toy_set)
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert tex.count(r"\begin{equation}") == len(toy_set.items)
    assert tex.count(r"\end{equation}") == len(toy_set.items)
    assert r"\begin{equation*}" not in tex and r"\nonumber" not in tex
    for item in toy_set.items:
        assert tex.count(rf"\label{{eq:{item.name}}}") == 1
        assert item.ref in tex and item.meaning in tex
    assert r"\alpha" in tex  # the parameter's LaTeX name
    assert "Gauss-Hermite, 30 nodes" in tex  # the method is shown
    assert tex.count("{") == tex.count("}")


def test_latex_recurrence_shows_one_step_map(toy_set: FormulaSet) -> None:
    rec = LatexPrinter(toy_set).emit(toy_set.item("rec"))
    assert "{s}_{k+1}" in rec and "{u}_{k+1}" in rec and "{s}_0" in rec


def test_markdown_has_one_display_per_item(toy_set: FormulaSet) -> None:
    md = to_markdown(toy_set)
    lines = md.splitlines()
    assert lines.count("$$") == 2 * len(toy_set.items)
    blocks = re.findall(r"^\$\$\n(.*?)\n\$\$$", md, flags=re.M | re.S)
    assert len(blocks) == len(toy_set.items)
    for item in toy_set.items:
        assert f"`{item.name}`" in md and item.ref in md


# -- hashing -------------------------------------------------------------------------------
def _hash_in_subprocess(seed: str, builder: str) -> str:
    code = (
        "import conftest\n"
        "from netderive.derivations.ir import content_hash\n"
        f"print(content_hash(conftest.{builder}()))\n"
    )
    env = {
        **os.environ,
        "PYTHONHASHSEED": seed,
        # this checkout as netderive (conftest's link folder), and tests/ for conftest
        "PYTHONPATH": os.pathsep.join([os.environ["PYTHONPATH"], str(TESTS_DIR)]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(PROJECT_ROOT),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("builder", ["toy_formula_set", "golden_formula_set"])
def test_content_hash_is_independent_of_hash_seed(builder: str) -> None:
    import conftest

    here = content_hash(getattr(conftest, builder)())
    assert _hash_in_subprocess("1", builder) == _hash_in_subprocess("2", builder) == here


def test_golden_content_hash() -> None:
    import conftest

    # runs on every sympy the project allows (pyproject pins the minor version: srepr is part
    # of the hash); a new IR_VERSION needs a new digest
    assert IR_VERSION == GOLDEN_IR_VERSION, "IR_VERSION changed: recompute GOLDEN_DIGEST"
    assert sp.__version__.startswith(GOLDEN_SYMPY), f"sympy {sp.__version__} is not allowed"
    assert content_hash(conftest.golden_formula_set()) == GOLDEN_DIGEST


def test_content_hash_sees_every_change(toy_set: FormulaSet) -> None:
    base = content_hash(toy_set)
    gh = toy_set.item("e_gh1")
    changed = Expectation(
        gh.name, gh.integrand, gh.variables, "gauss-hermite:21", gh.meaning, gh.ref
    )
    items = tuple(changed if i.name == gh.name else i for i in toy_set.items)
    other = FormulaSet(
        toy_set.name, toy_set.family, toy_set.source, toy_set.params, items, notes=toy_set.notes
    )
    assert content_hash(other) != base
    assert content_hash(toy_set, extra=("generator 2",)) != base
    assert content_hash(toy_set) == base


# -- FormulaSet validation ---------------------------------------------------------------
def test_formula_set_refuses_unknown_free_symbols() -> None:
    with pytest.raises(DerivationError, match="uses w"):
        one_formula(A + sp.Symbol("w", real=True))


def test_formula_set_refuses_same_name_with_other_assumptions() -> None:
    with pytest.raises(DerivationError, match="other assumptions"):
        one_formula(sp.Symbol("a") + Q)  # 'a' without positive=True
    with pytest.raises(DerivationError, match="other assumptions"):
        FormulaSet(
            "two",
            "toy",
            "two.toml",
            PARAMS,
            (
                Formula("first", A, "m", "r"),
                Formula("second", sp.Symbol("first", positive=True) + 1, "m", "r"),
            ),
        )


def test_formula_set_refuses_later_items_and_clashes() -> None:
    with pytest.raises(DerivationError, match="uses second"):
        FormulaSet(
            "two",
            "toy",
            "two.toml",
            PARAMS,
            (
                Formula("first", item_symbol("second"), "m", "r"),
                Formula("second", A, "m", "r"),
            ),
        )
    with pytest.raises(DerivationError, match="clashes"):
        one_formula(A, name="q")


def test_recurrence_state_may_not_leak() -> None:
    s = sp.Symbol("s", real=True)
    steps = sp.Symbol("K", positive=True, integer=True)
    params = (*PARAMS, Parameter(steps, "steps", Domain(0.0, 100.0), 3.0))
    rec = Recurrence("r", (s,), (s / 2,), (A,), steps, s, "m", "r")
    fs = FormulaSet("rec", "toy", "rec.toml", params, (rec,))
    with pytest.raises(DerivationError, match="uses s"):
        FormulaSet("rec", "toy", "rec.toml", params, (rec, Formula("after", s, "m", "r")))
    assert fs.arguments("r") == ("a", "K")


def test_a_loop_bound_needs_a_finite_maximum() -> None:
    """A parameter that bounds a loop has a documented maximum (else a huge value would run
    for hours instead of being refused)."""
    steps = sp.Symbol("K", positive=True, integer=True)
    s = sp.Symbol("s", real=True)
    item = Recurrence("r", (s,), (s / 2,), (A,), steps, s, "halving", "none")
    with pytest.raises(DerivationError, match="finite upper bound"):
        FormulaSet("t", "toy", "t.toml", (*PARAMS, Parameter(steps, "steps", POSITIVE_INTEGER,
                                                              3)), (item,))
