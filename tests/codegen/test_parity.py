"""Every generated kernel vs the independent mpmath interpreter (tests/ir_interpreter.py).

The scalar kernel, ``_grid`` (prange), ``_grid_serial`` and ``_trajectory`` of every item of
the toy set are compared at seeded random points to 30-digit values: relative 1e-12, with
an absolute floor of 1e-12 for values near 0.  Gauss-Hermite kernels are compared with
the exact Gaussian integral (``mpmath.quad``) on smooth integrands, where 20-30 nodes are
exact to rounding.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from ir_interpreter import evaluate, gaussian_expectation, trajectory

from derivations.ir import FormulaSet, Recurrence

RTOL = 1e-12
ATOL = 1e-12
N_POINTS = 6
SEED = 20240611

#: item names of the toy set (tests/conftest.py::toy_formula_set)
TOY_ITEMS = (
    "pw",
    "pw2",
    "rec",
    "heron",
    "root_first",
    "root_last",
    "root_min",
    "root_fallback",
    "root_nan",
    "h",
    "t_star",
    "t_min",
    "e_closed",
    "e_gh1",
    "e_gh2",
    "jrate",
    "dp_envelope",
    "dp_item",
    "dp_stage",
    "rec_moving",
    "at_root",
    "rot",
)
RECURRENCES = ("rec", "heron", "rec_moving", "at_root")
MIN_PLUS = ("dp_envelope", "dp_item", "dp_stage")


def random_points(n: int = N_POINTS, seed: int = SEED) -> list[dict[str, float]]:
    """Seeded points inside the ranges of conftest.TOY_RANGES (K is a whole number)."""
    from conftest import TOY_RANGES

    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for name, (lo, hi) in TOY_RANGES.items():
            if isinstance(lo, int):
                point[name] = float(rng.integers(lo, hi + 1))
            else:
                point[name] = float(rng.uniform(lo, hi))
        points.append(point)
    return points


POINTS = random_points()


def close(got: float, want: mpmath.mpf) -> bool:
    if mpmath.isnan(want):
        return math.isnan(got)
    return math.isclose(got, float(want), rel_tol=RTOL, abs_tol=ATOL)


class InterpretedValues(dict):
    """Item name -> interpreter values at POINTS, computed on first use."""

    def __init__(self, fs: FormulaSet) -> None:
        super().__init__()
        self.fs = fs

    def __missing__(self, name: str) -> list[mpmath.mpf]:
        self[name] = [evaluate(self.fs, name, p) for p in POINTS]
        return self[name]


@pytest.fixture(scope="module")
def expected(toy_set: FormulaSet) -> InterpretedValues:
    return InterpretedValues(toy_set)


def test_toy_item_list_is_complete(toy_set: FormulaSet) -> None:
    assert TOY_ITEMS == tuple(i.name for i in toy_set.items)
    assert RECURRENCES == tuple(i.name for i in toy_set.items if isinstance(i, Recurrence))


@pytest.mark.parametrize("name", TOY_ITEMS)
def test_scalar_kernel_matches_interpreter(name, toy_set, toy_kernels, expected) -> None:
    kernel = getattr(toy_kernels, name)
    args = toy_set.arguments(name)
    assert toy_kernels.KERNEL_ARGUMENTS[name] == args
    for point, want in zip(POINTS, expected[name], strict=True):
        got = kernel(*(point[a] for a in args))
        assert close(got, want), f"{name}{point}: kernel {got!r}, interpreter {want}"


@pytest.mark.parametrize("suffix", ["_grid", "_grid_serial"])
@pytest.mark.parametrize("name", TOY_ITEMS)
def test_grid_kernels_match_interpreter(name, suffix, toy_set, toy_kernels, expected) -> None:
    kernel = getattr(toy_kernels, name + suffix)
    args = toy_set.arguments(name)
    arrays = [np.array([p[a] for p in POINTS]) for a in args]
    got = kernel(*arrays)
    assert got.shape == (len(POINTS),)
    for g, want, point in zip(got, expected[name], POINTS, strict=True):
        assert close(float(g), want), f"{name}{suffix}{point}: kernel {g!r}, interpreter {want}"


@pytest.mark.parametrize("name", RECURRENCES)
def test_trajectory_matches_interpreter(name, toy_set, toy_kernels) -> None:
    kernel = getattr(toy_kernels, name + "_trajectory")
    args = toy_set.arguments(name)
    item = toy_set.item(name)
    n_states = len(item.state)
    for point in POINTS[:3]:
        got = kernel(*(point[a] for a in args))
        want = trajectory(toy_set, name, point)
        steps = item.steps if isinstance(item.steps, sp.Integer) else point["K"]
        assert got.shape == (int(steps) + 1, n_states)
        for row, want_row in zip(got, want, strict=True):
            for g, w in zip(row, want_row, strict=True):
                assert close(float(g), w), f"{name}_trajectory{point}: {g!r} vs {w}"
        # the scalar kernel is the output of the last row
        assert close(
            getattr(toy_kernels, name)(*(point[a] for a in args)), evaluate(toy_set, name, point)
        )


def test_grid_kernels_take_arrays_of_any_length(toy_set, toy_kernels) -> None:
    a = np.linspace(0.5, 3.0, 7)
    q = np.linspace(-1.0, 1.0, 7)
    want = [toy_kernels.pw(x, y) for x, y in zip(a, q, strict=True)]
    np.testing.assert_array_equal(toy_kernels.pw_grid(a, q), want)
    np.testing.assert_array_equal(toy_kernels.pw_grid_serial(a, q), want)
    assert toy_kernels.pw_grid(a[:0], q[:0]).shape == (0,)


@pytest.mark.parametrize("name", ["e_gh1", "e_gh2"])
def test_gauss_hermite_matches_quadrature_on_smooth_integrands(name, toy_set, toy_kernels):
    """The kernel's tensor Gauss-Hermite rule vs the exact integral by mpmath.quad."""
    item = toy_set.item(name)
    args = toy_set.arguments(name)
    for point in POINTS:
        env = {toy_set.param(n).symbol: sp.Float(point[n], 40) for n in args}
        for dep in toy_set.dependencies(item):
            env[toy_set.symbol_for(dep)] = sp.Float(evaluate(toy_set, dep, point), 40)
        with mpmath.workdps(30):
            exact = gaussian_expectation(item.integrand.xreplace(env), item.variables)
        got = getattr(toy_kernels, name)(*(point[a] for a in args))
        assert close(got, exact), f"{name}{point}: {got!r} vs {exact}"


# -- the interpreter itself is right (else parity would prove nothing) -----------------------
def test_interpreter_roots_match_closed_forms(toy_set) -> None:
    for p in POINTS[:3]:
        a, q = mpmath.mpf(p["a"]), mpmath.mpf(p["q"])
        with mpmath.workdps(30):
            c = mpmath.acos(q / 2)
            assert mpmath.almosteq(evaluate(toy_set, "root_first", p), c / a, 1e-25)
            assert mpmath.almosteq(
                evaluate(toy_set, "root_last", p), (2 * mpmath.pi + c) / a, 1e-25
            )
            t = evaluate(toy_set, "t_star", p)
            assert mpmath.almosteq(t**3 + a * t + q, 1, 1e-25)
            t_min = evaluate(toy_set, "t_min", p)
            # the zero with h = 0 (objective 1) unless the candidate t = 0 is nearer: q > 0
            want = 0 if q > 0 else mpmath.findroot(lambda s, a=a, q=q: s**3 + a * s + q, 0)
            assert mpmath.almosteq(t_min, want, 1e-25, 1e-25)
            fallback = evaluate(toy_set, "pw", p) + 1
            assert mpmath.almosteq(evaluate(toy_set, "root_fallback", p), fallback, 1e-28)
            assert mpmath.isnan(evaluate(toy_set, "root_nan", p))


def test_interpreter_expectations_match_closed_forms() -> None:
    z1, z2 = sp.symbols("z1 z2", real=True)
    with mpmath.workdps(30):
        got = gaussian_expectation(sp.cos(sp.Float(1.5, 40) * z1), (z1,))
        assert mpmath.almosteq(got, mpmath.exp(-(mpmath.mpf(1.5) ** 2) / 2), 1e-28)
        got = gaussian_expectation(z1**2 * z2**4 + 3 * z1 * z2 + 2, (z1, z2))
        assert mpmath.almosteq(got, 5, 1e-28)


def test_evaluate_at_a_root_gives_the_root_condition(toy_set, toy_kernels) -> None:
    """at_root is 2 h(t_star), and h(t_star) = 1 by definition of the root."""
    for p in POINTS[:3]:
        assert abs(toy_kernels.at_root(p["a"], p["q"]) - 2.0) < 1e-12
        with mpmath.workdps(30):
            assert mpmath.almosteq(evaluate(toy_set, "at_root", p), 2, 1e-25)


def test_interpreter_recurrence_matches_a_plain_loop(toy_set) -> None:
    p = POINTS[0]
    a, q, k_max = mpmath.mpf(p["a"]), mpmath.mpf(p["q"]), int(p["K"])
    with mpmath.workdps(30):
        c = 1 + q**2
        for _ in range(k_max):
            c = (c + a / c) / 2
        assert mpmath.almosteq(evaluate(toy_set, "heron", p), c, 1e-28)


# -- min-plus recursions ---------------------------------------------------------------------
def ar1_rate(y: float, a: float, q: float, k: int) -> float:
    """Exact K-step rate of the toy Gaussian AR(1) chain (conftest.toy_min_plus_items)."""
    variance = a * sum((1 + a) ** (-2 * j) for j in range(k))
    return (y - q / (1 + a) ** k) ** 2 / (2 * variance)


def test_min_plus_envelope_equals_plain_dp_and_the_exact_chain(toy_kernels) -> None:
    """Line envelope == O(G^2) DP to rounding; both == the exact Gaussian rate up to the grid
    error (the minimum over grid points of a quadratic: <= curvature * h^2 / 8 per stage)."""
    from conftest import TOY_GRID

    h = (TOY_GRID[1] - TOY_GRID[0]) / (TOY_GRID[2] - 1)
    for a, q, k in ((0.7, 0.4, 1), (1.3, -0.8, 3), (2.5, 0.9, 6)):
        x, fast = toy_kernels.dp_envelope_curves(a, q, float(k))
        x2, slow = toy_kernels.dp_envelope_curves_dp(a, q, float(k))
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
        exact = [ar1_rate(float(y), a, q, k) for y in x]
        bound = (k - 1) * h**2 / (8 * a) * (1 + 1 / a) ** 2 + 1e-12
        assert np.max(np.abs(fast[-1] - exact)) <= bound
        assert np.all(fast[-1] >= np.asarray(exact) - 1e-12)  # a minimum over fewer paths


def test_min_plus_grid_groups_runs_and_handles_any_order(toy_set, toy_kernels) -> None:
    args = toy_set.arguments("dp_item")
    rng = np.random.default_rng(3)
    points = [{"a": a, "q": q, "K": k, "y": y} for a, q, k in ((0.8, 0.1, 2.0), (1.5, -0.3, 4.0))
              for y in np.linspace(-3.5, 3.5, 9)]
    rng.shuffle(points)
    arrays = [np.array([p[n] for p in points]) for n in args]
    want = [toy_kernels.dp_item(*(p[n] for n in args)) for p in points]
    np.testing.assert_array_equal(toy_kernels.dp_item_grid(*arrays), want)
    np.testing.assert_array_equal(toy_kernels.dp_item_grid_serial(*arrays), want)
    outside = [w for w, p in zip(want, points, strict=True) if abs(p["y"]) > 3]
    assert outside and all(v == math.inf for v in outside)


def test_array_program_is_k_rotations(toy_set, toy_kernels) -> None:
    """rot = 2 [cos(K a) + q sin(K a)]: the kernel and the interpreter against the closed
    form (a scatter, loop nests, a parameter as an index)."""
    for p in POINTS[:3]:
        a, q, k = p["a"], p["q"], int(p["K"])
        want = 2 * (math.cos(k * a) + q * math.sin(k * a))
        assert toy_kernels.rot(a, q, float(k)) == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert float(evaluate(toy_set, "rot", p)) == pytest.approx(want, rel=1e-12, abs=1e-12)
