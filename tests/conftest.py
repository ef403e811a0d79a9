"""Shared fixtures: toy FormulaSets covering every IR kind, and their compiled kernels.

The toy sets are built by plain functions (importable without pytest fixtures, e.g. by a
subprocess that hashes them under another ``PYTHONHASHSEED``).  Their kernels are
compiled once per test session into a temporary cache directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import sympy as sp

TESTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS_DIR.parent


def _import_this_checkout() -> None:
    """Make ``import netderive`` (here and in the subprocesses the tests start) load this
    checkout, whatever is installed: the repository's root is the package ``netderive``
    (pyproject's package-dir), so a folder holding a link ``netderive`` -> the root goes first
    on ``sys.path`` and ``PYTHONPATH``.  tests/ goes on ``sys.path`` too (ir_interpreter)."""
    import atexit
    import shutil
    import tempfile

    if any(name == "netderive" or name.startswith("netderive.") for name in sys.modules):
        return  # already imported (e.g. by a plugin): leave it
    folder = Path(tempfile.mkdtemp(prefix="netderive-tests-"))
    (folder / "netderive").symlink_to(PROJECT_ROOT, target_is_directory=True)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    sys.path[:0] = [str(folder), str(TESTS_DIR)]
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])


_import_this_checkout()

#: The command line as a user runs it, in a subprocess (this checkout: see above).
CLI = (sys.executable, "-m", "netderive.runtime.cli")

from netderive.derivations.ir import (  # noqa: E402
    POSITIVE,
    REAL,
    ArrayConstant,
    ArrayProgram,
    ArrayStatement,
    Domain,
    Expectation,
    Formula,
    FormulaSet,
    LargestEigenvalue,
    MinPlusRecursion,
    Parameter,
    PathSaddle,
    Recurrence,
    Root,
    item_symbol,
)

# -- symbols --------------------------------------------------------------------------
A = sp.Symbol("a", positive=True)
Q = sp.Symbol("q", real=True)
T = sp.Symbol("t", real=True)
STEPS = sp.Symbol("K", positive=True, integer=True)
X = sp.Symbol("x", real=True)
S = sp.Symbol("s", real=True)
U = sp.Symbol("u", real=True)
C = sp.Symbol("c", positive=True)
INDEX = sp.Symbol("k", integer=True, nonnegative=True)
Z1, Z2 = sp.symbols("z1 z2", real=True)
Y = sp.Symbol("y", real=True)
Y_PREV = sp.Symbol("y_prev", real=True)
LAM = sp.Symbol("lam", real=True)
#: bound symbols of the toy path saddles
THETA = sp.Symbol("theta", real=True)
M = sp.Symbol("m", real=True)
THETAS = sp.symbols("theta1 theta2", real=True)
MS = sp.symbols("m1 m2", real=True)
MS_PREV = sp.symbols("m1_prev m2_prev", real=True)
ACTION, MULTIPLIER, ENDPOINT = sp.symbols("action multiplier endpoint", real=True)
#: domain of the toy loop bound K (a loop bound needs a finite maximum)
TOY_STEPS = Domain(1.0, 1000.0, integer=True)
#: grid of the toy min-plus recursions
TOY_GRID = (-3, 3, 19)

#: Ranges of the random test points of the toy set, per parameter.
TOY_RANGES = {"a": (0.5, 3.0), "q": (-1.0, 1.0), "t": (-2.0, 2.0), "K": (1, 8),
              "y": (-2.0, 2.0), "y_prev": (-2.0, 2.0), "lam": (-1.5, 1.5)}


def toy_params() -> tuple[Parameter, ...]:
    return (
        Parameter(A, "scale", POSITIVE, 2.0, r"\alpha"),
        Parameter(Q, "shift", REAL, 0.3),
        Parameter(T, "a free coordinate that a root solves for", REAL, 0.0),
        Parameter(STEPS, "number of steps", TOY_STEPS, 5),
        Parameter(Y, "new state of a Gaussian AR(1) chain", REAL, 0.2),
        Parameter(Y_PREV, "old state of a Gaussian AR(1) chain", REAL, 0.0),
        Parameter(LAM, "tilt of a generating function", REAL, 0.5, r"\lambda"),
    )


def toy_min_plus_items() -> tuple:
    r"""Gaussian AR(1) chain y_k = y_{k-1}/(1+a) + sqrt(a) xi: its exact rate after K steps
    from y_0 = q is (y - q/(1+a)^K)^2 / (2 a \sum_{j<K} (1+a)^{-2j})."""
    lo, hi, size = TOY_GRID
    rate = (Y - Y_PREV / (1 + A)) ** 2 / (2 * A)
    envelope = (Y**2 / (2 * A), Y, -Y_PREV / (A * (1 + A)), Y_PREV**2 / (2 * A * (1 + A) ** 2))
    common = dict(start=Q, steps=STEPS, lower=sp.Integer(lo), upper=sp.Integer(hi),
                  grid_size=sp.Integer(size))
    return (
        Formula("jrate", rate, "one-step rate of a Gaussian AR(1) chain", "Toy 2024, eq. (16)"),
        MinPlusRecursion("dp_envelope", Y, Y_PREV, rate, meaning="the K-step rate by a line "
                         "envelope", ref="Toy 2024, eq. (17)", envelope=envelope, **common),
        MinPlusRecursion("dp_item", Y, Y_PREV, item_symbol("jrate"), meaning="the K-step rate "
                         "by dynamic programming over an item", ref="Toy 2024, eq. (18)",
                         **common),
        MinPlusRecursion("dp_stage", Y, Y_PREV, item_symbol("jrate") * (1 + 1 / (INDEX + 1)),
                         meaning="a stage-dependent rate", ref="Toy 2024, eq. (19)",
                         index=INDEX, **common),
        Recurrence("rec_moving", (Y_PREV,), (sp.sin(item_symbol("jrate")) + Y_PREV / 2,), (Q,),
                   STEPS, item_symbol("jrate") + Y_PREV, "a recurrence whose state is a "
                   "parameter of the item it calls (re-evaluated at every step)",
                   "Toy 2024, eq. (20)"),
        Recurrence("at_root", (T,), (T,), (item_symbol("t_star"),), sp.Integer(0),
                   2 * item_symbol("h"), "twice h evaluated at the root t* (zero steps)",
                   "Toy 2024, eq. (21)"),
        *toy_array_programs(),
    )


def toy_path_saddle_items() -> tuple:
    r"""Path saddles of Gaussian AR(1) chains, whose values are closed forms.

    One dimension: the chain of :func:`toy_min_plus_items`, stage
    :math:`\ell = \theta\mu(y') + a\theta^2/2 - \theta m`, :math:`\mu(y') = y'/(1+a)`, so
    :math:`J(m\mid y') = (m-\mu(y'))^2/(2a)`: target mode gives the K-step rate at y, tilt
    mode the SCGF :math:`\lambda\mu_K + \lambda^2 V_K/2`.  The tilt's stage and typical
    step call the item ``ar_mean``, which takes the previous state y_prev (a parameter) and
    moves with it; the derivative fields must then differentiate through the item (they are
    expressions: nothing checks them against the stage, but the interpreter uses only the
    stage, so a parity test catches a missing chain rule).

    Two dimensions: the chain :math:`m_l = D m_{l-1} + \xi`, :math:`D =
    \mathrm{diag}(1/(1+a), 1/(1+a/2))`, noise covariance :math:`C = a((1, 1/8), (1/8, 1/2))`
    from :math:`(q, 1-q)`, observable :math:`g = m_1 + m_2^2/20` (convex problems for the
    ranges of TOY_RANGES); both outputs are :math:`S + \lambda g`: the SCGF at the tilt
    (tilt mode) and at the slope :math:`I_K'(y)` (target mode, Legendre duality).
    """
    mean = Y_PREV / (1 + A)
    ar_mean = item_symbol("ar_mean")

    def one_d(name, stage, typical, goal, mode, output, meaning, ref):
        variables = (THETA, M, Y_PREV)
        # the derivative fields differentiate through the item ar_mean (the chain rule)
        inline = stage.xreplace({ar_mean: mean})
        gradient = tuple(sp.diff(inline, v) for v in variables)
        hessian = tuple(tuple(sp.diff(g, v) for v in variables) for g in gradient)
        return PathSaddle(name, (THETA,), (M,), (Y_PREV,), stage, gradient, hessian, (Q,),
                          (typical,), M, (sp.Integer(1),), ((sp.Integer(0),),), goal, mode,
                          STEPS, ACTION, MULTIPLIER, ENDPOINT, output, meaning, ref,
                          continuation=4)

    drift = (1 / (1 + A), 1 / (1 + A / 2))
    cov = ((A, A / 8), (A / 8, A / 2))
    theta, m, prev = THETAS, MS, MS_PREV
    stage2 = sum(theta[i] * drift[i] * prev[i] - theta[i] * m[i] for i in range(2)) + sum(
        theta[i] * cov[i][j] * theta[j] for i in range(2) for j in range(2)) / 2
    variables = (*theta, *m, *prev)
    gradient2 = tuple(sp.diff(stage2, v) for v in variables)
    hessian2 = tuple(tuple(sp.diff(g, v) for v in variables) for g in gradient2)
    observable = m[0] + m[1] ** 2 / 20
    common2 = dict(conjugate=theta, state=m, previous=prev, stage=stage2,
                   stage_gradient=gradient2, stage_hessian=hessian2, start=(Q, 1 - Q),
                   typical_step=(drift[0] * prev[0], drift[1] * prev[1]), observable=observable,
                   observable_gradient=tuple(sp.diff(observable, v) for v in m),
                   observable_hessian=tuple(tuple(sp.diff(observable, v, w) for w in m)
                                            for v in m),
                   steps=STEPS, action=ACTION, multiplier=MULTIPLIER, endpoint=ENDPOINT,
                   output=ACTION + MULTIPLIER * ENDPOINT)
    return (
        Formula("ar_mean", mean, "mean of one step of the Gaussian AR(1) chain from the old state",
                "Toy 2024, eq. (23)"),
        one_d("path_rate", THETA * mean + A * THETA**2 / 2 - THETA * M, mean, Y, "target",
              -ACTION, "the K-step rate of the AR(1) chain at y by its stationary path",
              "Toy 2024, eq. (24)"),
        one_d("path_scgf", THETA * ar_mean + A * THETA**2 / 2 - THETA * M, ar_mean, LAM,
              "tilt", ACTION + MULTIPLIER * ENDPOINT, "the SCGF of the AR(1) chain at the "
              "tilt lam by its stationary path (a stage that calls an item)",
              "Toy 2024, eq. (25)"),
        PathSaddle("path_dual_2d", goal=Y, mode="target", meaning="the SCGF of a 2-D chain "
                   "at the slope of its rate at y (Legendre duality; a nonlinear observable)",
                   ref="Toy 2024, eq. (26)", **common2),
        PathSaddle("path_scgf_2d", goal=LAM, mode="tilt", meaning="the SCGF of a 2-D chain "
                   "at the tilt lam (a nonlinear observable)", ref="Toy 2024, eq. (27)",
                   continuation=2, **common2),
    )


def toy_array_programs() -> tuple[ArrayProgram, ...]:
    r"""K rotations by the angle a of (1, 0), through a scatter into a flat 2 x 2 matrix:
    ``rot`` = :math:`2[\cos(Ka) + q\sin(Ka)]` and, from the same program, ``rot_eig`` =
    :math:`\lambda_{\max}` of the symmetric :math:`[[x_0, qx_1], [qx_1, -x_0]]` =
    :math:`\sqrt{\cos^2(Ka) + q^2\sin^2(Ka)}` and ``rot_min`` = :math:`q + \min_{k\le K}
    \cos(ka)` (a body statement that only ``rot_min`` needs) (closed forms)."""
    i, j, k = sp.symbols("i j k", integer=True, nonnegative=True)

    def el(name, *idx):
        return sp.Function(name)(*idx)

    angle = sp.Function("angle")
    setup = (
        ArrayStatement(el("angle", i), A * el("sign", i), ((i, 2),)),
        ArrayStatement(el("flat", 2 * i + i), sp.cos(A), ((i, 2),), meaning="diagonal"),
        ArrayStatement(el("flat", 2 * i + (1 - i)), sp.sin(angle(i)), ((i, 2),), True,
                       "scatter: off-diagonal -sin a, sin a"),
        ArrayStatement(el("R", i, j), el("flat", 2 * i + j), ((i, 2), (j, 2))),
    )
    body = (
        ArrayStatement(el("y", i), 0, ((i, 2),)),
        ArrayStatement(el("y", i), el("R", i, j) * el("x", j), ((i, 2), (j, 2)), True),
        ArrayStatement(el("x", i), el("y", i), ((i, 2),)),
        ArrayStatement(el("low", 0), sp.Min(el("low", 0), el("x", 0)),
                       meaning="running minimum: only rot_min needs it"),
    )
    finish = (ArrayStatement(el("out", k), el("x", 0) + Q * el("x", 1), ((k, 9),)),)
    constants = (ArrayConstant("sign", (2,), (-1.0, 1.0), "signs of the off-diagonal"),
                 ArrayConstant("x0", (2,), (1.0, 0.0), "start"))
    arrays = (("angle", (2,)), ("flat", (4,)), ("R", (2, 2)), ("x", (2,)), ("y", (2,)),
              ("out", (9,)), ("M", (3, 3)), ("lam", (1,)), ("low", (1,)))
    setup += (ArrayStatement(el("x", i), el("x0", i), ((i, 2),)),
              ArrayStatement(el("low", 0), el("x0", 0)))
    eigen = (
        ArrayStatement(el("M", 0, 0), el("x", 0)),
        ArrayStatement(el("M", 1, 1), -el("x", 0)),
        ArrayStatement(el("M", i, 1 - i), Q * el("x", 1), ((i, 2),)),
        ArrayStatement(el("M", 2, 2), 10, meaning="outside the leading 2 x 2 block"),
        LargestEigenvalue(el("lam", 0), "M", 2, "of the leading 2 x 2 block"),
    )
    return (
        ArrayProgram(
            "rot", constants, arrays, setup, STEPS, body, finish,
            el("out", 0) + el("out", STEPS - 1),
            "2 [cos(K a) + q sin(K a)] (K rotations of (1, 0); an index that is a parameter)",
            "Toy 2024, eq. (22)"),
        ArrayProgram(
            "rot_eig", constants, arrays, setup, STEPS, body, eigen, el("lam", 0),
            "largest eigenvalue of [[x0, q x1], [q x1, -x0]] after K rotations",
            "Toy 2024, eq. (23)"),
        ArrayProgram(
            "rot_min", constants, arrays, setup, STEPS, body, (), el("low", 0) + Q,
            "q + min over k = 0..K of cos(k a)", "Toy 2024, eq. (24)"),
    )


def toy_formula_set() -> FormulaSet:
    """One FormulaSet with every IR kind and the features the printers must handle."""
    pw, pw2, h = item_symbol("pw"), item_symbol("pw2"), item_symbol("h")
    wave = sp.cos(A * X) - Q / 2
    dwave = -A * sp.sin(A * X)
    wave_bracket = (sp.Integer(0), 3 * sp.pi / A)
    items = (
        Formula(
            "pw",
            sp.Piecewise(
                (sp.sqrt(A) * Q + sp.erf(Q), Q > 0),
                (A ** sp.Rational(3, 2) * Q**2 - sp.erf(Q) / 3, True),
            )
            + A ** sp.Rational(-1, 3)
            + (A + Q**2) ** sp.Rational(5, 4),
            "a piecewise closed form",
            "Toy 2024, eq. (1)",
        ),
        Formula(
            "pw2",
            pw**2 / (1 + A)
            + sp.atan(pw)
            + sp.sign(Q) * sp.Abs(Q) ** sp.Rational(1, 2)
            + sp.Max(Q, 0)
            - sp.Min(Q, pw)
            + sp.exp(-A) * sp.log(1 + A),
            "a formula of an earlier item",
            "Toy 2024, eq. (2)",
        ),
        Recurrence(
            "rec",
            (S, U),
            (A * S / (1 + S**2) + Q / (INDEX + 1), U + S * sp.cos(INDEX) + pw / (INDEX + 2)),
            (Q, pw2),
            STEPS,
            S * U + S,
            "a two-state recurrence with an index-dependent step",
            "Toy 2024, eq. (3)",
            index=INDEX,
        ),
        Recurrence(
            "heron",
            (C,),
            ((C + A / C) / 2,),
            (1 + Q**2,),
            STEPS,
            C,
            "Heron's iteration for sqrt(a)",
            "Toy 2024, eq. (4)",
        ),
        Root(
            "root_first",
            X,
            wave,
            dwave,
            wave_bracket,
            "the smallest zero of a wave",
            "Toy 2024, eq. (5)",
            scan_points=60,
            select="first",
        ),
        Root(
            "root_last",
            X,
            wave,
            dwave,
            wave_bracket,
            "the largest zero of a wave",
            "Toy 2024, eq. (6)",
            scan_points=60,
            select="last",
        ),
        Root(
            "root_min",
            X,
            wave,
            dwave,
            wave_bracket,
            "the zero of a wave or a candidate nearest to 1 + q",
            "Toy 2024, eq. (7)",
            scan_points=60,
            select="min_objective",
            objective=(X - 1 - Q) ** 2,
            candidates=(A / 2,),
        ),
        Root(
            "root_fallback",
            X,
            X**2 + A,
            2 * X,
            (sp.Integer(-1), sp.Integer(1)),
            "no zero: the fallback, which calls an item",
            "Toy 2024, eq. (8)",
            scan_points=10,
            fallback=pw + 1,
        ),
        Root(
            "root_nan",
            X,
            X**2 + A,
            2 * X,
            (sp.Integer(-1), sp.Integer(1)),
            "no zero and no candidate: NaN",
            "Toy 2024, eq. (9)",
            scan_points=10,
            select="min_objective",
            objective=X**2,
        ),
        Formula("h", T**3 + A * T + Q, "a cubic in the parameter t", "Toy 2024, eq. (10)"),
        Root(
            "t_star",
            T,
            h - 1,
            3 * T**2 + A,
            (sp.Integer(-3), sp.Integer(3)),
            "the parameter t at which h = 1",
            "Toy 2024, eq. (11)",
            scan_points=40,
        ),
        Root(
            "t_min",
            T,
            sp.sin(h),
            sp.cos(h) * (3 * T**2 + A),
            (sp.Integer(-2), sp.Integer(2)),
            "the zero of sin(h) or the candidate with h nearest to 1",
            "Toy 2024, eq. (12)",
            scan_points=200,
            select="min_objective",
            objective=(h - 1) ** 2,
            candidates=(sp.Integer(0),),
        ),
        Root(
            "cubic_pieces",
            X,
            X**3 - A * X + Q,
            3 * X**2 - A,
            (sp.Integer(-3), sp.Integer(3)),
            "the zero of a cubic nearest to q, from its monotone pieces (breaks at the zeros "
            "of g', given out of order)",
            "Toy 2024, eq. (12a)",
            select="min_objective",
            objective=(X - Q) ** 2,
            monotone_breaks=(sp.sqrt(A / 3), -sp.sqrt(A / 3), sp.Integer(5)),
        ),
        Expectation(
            "e_closed",
            sp.cos(A * Z1),
            (Z1,),
            "closed",
            "a closed-form expectation",
            "Toy 2024, eq. (13)",
            closed_form=sp.exp(-(A**2) / 2),
        ),
        Expectation(
            "e_gh1",
            A * Z1**4 + pw * sp.cos(Q * Z1),
            (Z1,),
            "gauss-hermite:20",
            "a one-variable Gauss-Hermite expectation",
            "Toy 2024, eq. (14)",
        ),
        Expectation(
            "e_gh2",
            sp.cos(A * Z1) * Z2**2 + Q * Z1 * Z2 + Z1**2 * Z2**2,
            (Z1, Z2),
            "gauss-hermite:30",
            "a two-variable Gauss-Hermite expectation",
            "Toy 2024, eq. (15)",
        ),
        *toy_min_plus_items(),
        *toy_path_saddle_items(),
    )
    return FormulaSet(
        "toy",
        "toy",
        "tests/toy.toml",
        toy_params(),
        items,
        notes=("A toy set for the printer tests.",),
    )


def golden_formula_set() -> FormulaSet:
    """A fixed set with one item of each kind.  Do not edit: its content hash is pinned in
    tests/codegen/test_printers.py (it may change only with IR_VERSION or sympy)."""
    f = item_symbol("f")
    items = (
        Formula(
            "f", sp.sqrt(A) + (A + Q**2) ** sp.Rational(2, 3) * sp.erf(Q), "a formula", "G, eq. 1"
        ),
        Recurrence(
            "r", (S,), (A * S / (1 + S) + Q,), (Q,), STEPS, S**2, "a recurrence", "G, eq. 2"
        ),
        Root("z", X, X**3 - f, 3 * X**2, (sp.Integer(0), f + 1), "a root", "G, eq. 3"),
        Expectation(
            "g", sp.cos(A * Z1) * Z2**2, (Z1, Z2), "gauss-hermite:20", "quadrature", "G, eq. 4"
        ),
        Expectation(
            "e",
            sp.cos(A * Z1),
            (Z1,),
            "closed",
            "closed form",
            "G, eq. 5",
            closed_form=sp.exp(-(A**2) / 2),
        ),
    )
    params = (
        Parameter(A, "scale", POSITIVE, 2.0, r"\alpha"),
        Parameter(Q, "shift", REAL, 0.3),
        Parameter(STEPS, "steps", TOY_STEPS, 5),
    )
    return FormulaSet("golden", "toy", "golden.toml", params, items)


def small_formula_set(name: str = "small", offset: int = 0) -> FormulaSet:
    """One Formula: cheap to generate and compile (for the cache tests)."""
    return FormulaSet(
        name,
        "toy",
        f"tests/{name}.toml",
        (Parameter(A, "scale", POSITIVE, 2.0),),
        (Formula("double", 2 * A + offset, "twice the scale", "none"),),
    )


@pytest.fixture(scope="session")
def toy_set() -> FormulaSet:
    return toy_formula_set()


@pytest.fixture(scope="session")
def kernel_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """A session-wide NETDERIVE_CACHE_DIR: numba compiles each toy kernel once per session."""
    path = tmp_path_factory.mktemp("netderive-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NETDERIVE_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def toy_kernels(kernel_cache_dir: Path, toy_set: FormulaSet):
    """The generated module of the toy set (kernels compile on their first call)."""
    from netderive.codegen import compile_formulas

    assert os.environ["NETDERIVE_CACHE_DIR"] == str(kernel_cache_dir)
    return compile_formulas(toy_set)


@pytest.fixture(scope="session")
def case_a_builds(kernel_cache_dir: Path) -> dict:
    """Builds of the bundled case-A model (expectation_tanh) at orders 1 and 2, shared by the
    test modules that compile its kernels (numba compiles each of them once per session)."""
    from netderive.runtime.session import build, resolve_model

    spec = resolve_model("expectation_tanh", cross_checks=True)
    return {2: build(spec), 1: build(spec.with_values({"order": 1}))}
