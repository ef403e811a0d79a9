"""Every generated kernel vs the independent mpmath interpreter (tests/ir_interpreter.py).

The scalar kernel, ``_grid`` (prange), ``_grid_serial`` and ``_trajectory`` of every item of
the toy set are compared at seeded random points to 30-digit values: relative 1e-12, with
an absolute floor of 1e-12 for values near 0.  Gauss-Hermite kernels are compared with
the exact Gaussian integral (``mpmath.quad``) on smooth integrands, where 20-30 nodes are
exact to rounding.

PathSaddle items are compared with the interpreter's nested float64 optimisation (itself
checked against closed forms below) at relative 1e-9 (SADDLE_RTOL).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from ir_interpreter import evaluate, gaussian_expectation, trajectory

from netderive.derivations.ir import FormulaSet, Recurrence, item_symbol

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
    "cubic_pieces",
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
    "rot_eig",
    "rot_min",
    "ar_mean",
    "path_rate",
    "path_scgf",
    "path_dual_2d",
    "path_scgf_2d",
)
RECURRENCES = ("rec", "heron", "rec_moving", "at_root")
MIN_PLUS = ("dp_envelope", "dp_item", "dp_stage")
PATH_SADDLES = ("path_rate", "path_scgf", "path_dual_2d", "path_scgf_2d")
#: the interpreter solves path saddles by nested float64 optimisation: ~1e-12 relative on the
#: toys (test_interpreter_path_saddles_match_closed_forms), the kernels to their Newton
#: tolerance
SADDLE_RTOL = 1e-9
RTOLS = dict.fromkeys(PATH_SADDLES, SADDLE_RTOL)


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


def close(got: float, want: mpmath.mpf, rtol: float = RTOL) -> bool:
    if mpmath.isnan(want):
        return math.isnan(got)
    return math.isclose(got, float(want), rel_tol=rtol, abs_tol=ATOL)


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
        assert close(got, want, RTOLS.get(name, RTOL)), (
            f"{name}{point}: kernel {got!r}, interpreter {want}")


@pytest.mark.parametrize("suffix", ["_grid", "_grid_serial"])
@pytest.mark.parametrize("name", TOY_ITEMS)
def test_grid_kernels_match_interpreter(name, suffix, toy_set, toy_kernels, expected) -> None:
    kernel = getattr(toy_kernels, name + suffix)
    args = toy_set.arguments(name)
    arrays = [np.array([p[a] for p in POINTS]) for a in args]
    got = kernel(*arrays)
    assert got.shape == (len(POINTS),)
    for g, want, point in zip(got, expected[name], POINTS, strict=True):
        assert close(float(g), want, RTOLS.get(name, RTOL)), (
            f"{name}{suffix}{point}: kernel {g!r}, interpreter {want}")


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
            env[item_symbol(dep)] = sp.Float(evaluate(toy_set, dep, point), 40)
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
        lam = math.hypot(math.cos(k * a), q * math.sin(k * a))
        assert toy_kernels.rot_eig(a, q, float(k)) == pytest.approx(lam, rel=1e-12)
        assert float(evaluate(toy_set, "rot_eig", p)) == pytest.approx(lam, rel=1e-12)
        low = q + min(math.cos(j * a) for j in range(k + 1))
        assert toy_kernels.rot_min(a, q, float(k)) == pytest.approx(low, rel=1e-12, abs=1e-12)
        assert float(evaluate(toy_set, "rot_min", p)) == pytest.approx(low, rel=1e-12,
                                                                      abs=1e-12)


def test_body_statements_run_only_for_the_items_that_need_them(toy_set) -> None:
    """The running minimum of the toy body is needed by rot_min only: the compiled program
    runs it only when rot_min is wanted; the rotation serves every item."""
    from netderive.codegen.kernels.array_program import body_users

    members = [toy_set.item(n) for n in ("rot", "rot_eig", "rot_min")]
    users = body_users(members)
    assert users[:3] == [[0, 1, 2]] * 3
    assert users[3] == [2]


def test_array_program_grid_records_one_trajectory_per_setting(toy_kernels) -> None:
    """The grid kernels of an array program: any order of steps and settings gives the scalar
    kernel's values (one trajectory per setting of a and q, recorded at every step asked)."""
    rng = np.random.default_rng(7)
    n = 40
    a = rng.choice([0.3, 1.1], n)
    q = rng.choice([-0.5, 0.25], n)
    k = rng.integers(0, 9, n).astype(float)
    for name in ("rot", "rot_eig"):
        want = [getattr(toy_kernels, name)(*point) for point in zip(a, q, k, strict=True)]
        for suffix in ("_grid", "_grid_serial"):
            got = getattr(toy_kernels, name + suffix)(a, q, k)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_array_program_grid_runs_each_trajectory_once(toy_kernels, monkeypatch) -> None:
    """A sweep over the steps costs one run of the largest step per setting: the program runs
    once per (a, q) with its counts sorted, and both items of the program share the run."""
    helper = next(n for n in dir(toy_kernels) if n.startswith("_program_")
                  and not n.endswith("_grid") and callable(getattr(toy_kernels, n)))
    program = getattr(toy_kernels, helper)
    calls = []

    def counting(counts, points, wanted, *trajectory):
        calls.append((list(counts), list(wanted)))
        return program(counts, points, wanted, *trajectory)

    monkeypatch.setattr(toy_kernels, helper, counting)
    k = np.tile(np.arange(9.0), 2)[::-1].copy()  # K = 8..0, twice, in decreasing order
    a = np.repeat([0.3, 1.1], 9)
    q = np.full(18, 0.25)
    got = toy_kernels.rot_grid_serial(a, q, k)
    assert [c for c, _ in calls] == [list(range(9))] * 2
    want = 2 * (np.cos(k * a) + q * np.sin(k * a))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    calls.clear()
    both = getattr(toy_kernels, helper + "_grid")(("rot", "rot_eig"), {"a": a, "q": q, "K": k},
                                                  18)
    assert len(calls) == 2 and all(list(w) == [True, True, False] for _, w in calls)
    np.testing.assert_allclose(both["rot"], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(both["rot_eig"], np.hypot(np.cos(k * a), q * np.sin(k * a)),
                               rtol=1e-12)


# -- path saddles ----------------------------------------------------------------------------
#: (y, lam, a, q, K): goal, tilt and chain; K = 1 and K = 6 among them
SADDLE_POINTS = ((0.7, 0.8, 0.7, 0.4, 1), (-1.2, -1.1, 1.3, -0.8, 3), (1.5, 1.3, 2.5, 0.9, 6),
                 (-0.4, 0.5, 0.6, 0.2, 6), (0.3, -1.4, 2.9, -0.5, 8))


def ar1_moments(a: float, q: float, k: int) -> tuple[float, float]:
    """Mean and variance of y_K of the toy AR(1) chain from y_0 = q."""
    return q / (1 + a) ** k, a * sum((1 + a) ** (-2 * j) for j in range(k))


def ar1_scgf(lam: float, a: float, q: float, k: int) -> float:
    """SCGF lam mean_K + lam^2 Var_K / 2 of y_K (Gaussian)."""
    mean, variance = ar1_moments(a, q, k)
    return lam * mean + lam**2 * variance / 2


def ar1_saddle_path(y: float, a: float, q: float, k: int) -> tuple[list[float], list[float]]:
    """Stationary path (theta_l, m_l) of the 1-D target saddle: theta_K = I_K'(y),
    theta_l = theta_{l+1}/(1+a) (backward), m_l = m_{l-1}/(1+a) + a theta_l (forward)."""
    mean, variance = ar1_moments(a, q, k)
    slope = (y - mean) / variance
    thetas = [slope / (1 + a) ** (k - stage) for stage in range(1, k + 1)]
    states, m = [], q
    for theta in thetas:
        m = m / (1 + a) + a * theta
        states.append(m)
    return thetas, states


def chain2_moments(a: float, q: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of m_K of the toy 2-D chain (conftest.toy_path_saddle_items)."""
    drift = np.diag([1 / (1 + a), 1 / (1 + a / 2)])
    noise = a * np.array([[1, 1 / 8], [1 / 8, 1 / 2]])
    powers = [np.linalg.matrix_power(drift, j) for j in range(k + 1)]
    return powers[k] @ np.array([q, 1 - q]), sum(p @ noise @ p for p in powers[:k])


def chain2_scgf(lam: float, a: float, q: float, k: int) -> float:
    """sup_y [lam g(y) - (y - mu)' P (y - mu) / 2], g = y1 + y2^2/20: a linear system."""
    mean, cov = chain2_moments(a, q, k)
    precision = np.linalg.inv(cov)
    y = np.linalg.solve(precision - np.diag([0, lam / 10]), precision @ mean + [lam, 0])
    return lam * (y[0] + y[1] ** 2 / 20) - (y - mean) @ precision @ (y - mean) / 2


def chain2_rate(goal: float, a: float, q: float, k: int) -> tuple[float, float]:
    """I_K(goal) = min over y2 of the Gaussian rate at (goal - y2^2/20, y2) (a quartic in
    y2: the least value at the real zeros of its cubic derivative) and I_K'(goal)."""
    mean, cov = chain2_moments(a, q, k)
    p = np.linalg.inv(cov)
    poly = np.polynomial.Polynomial
    v1, v2 = poly([goal - mean[0], 0, -1 / 20]), poly([-mean[1], 1])
    quartic = (p[0, 0] * v1 * v1 + 2 * p[0, 1] * v1 * v2 + p[1, 1] * v2 * v2) / 2
    zeros = [z.real for z in quartic.deriv().roots() if abs(z.imag) < 1e-9]
    y2 = min(zeros, key=quartic)
    slope = p[0, 0] * v1(y2) + p[0, 1] * v2(y2)  # d rate / d y1 at fixed y2 (envelope)
    return quartic(y2), slope


def test_interpreter_path_saddles_match_closed_forms(toy_set) -> None:
    """The interpreter's nested optimisation against the Gaussian chains' closed forms: the
    K-step rate (target), the SCGF (tilt) and, in 2-D with a nonlinear observable, the
    SCGF at the tilt and at the slope of the rate (Legendre duality: the multiplier)."""
    for y, lam, a, q, k in SADDLE_POINTS:
        point = {"y": y, "lam": lam, "a": a, "q": q, "K": float(k)}
        rate, slope = chain2_rate(y, a, q, k)
        want = {"path_rate": ar1_rate(y, a, q, k), "path_scgf": ar1_scgf(lam, a, q, k),
                "path_scgf_2d": chain2_scgf(lam, a, q, k), "path_dual_2d": slope * y - rate}
        assert want["path_dual_2d"] == pytest.approx(chain2_scgf(slope, a, q, k), rel=1e-12)
        for name, value in want.items():
            got = float(evaluate(toy_set, name, point))
            assert got == pytest.approx(value, rel=1e-10, abs=1e-14), (name, point)


def test_path_saddle_kernels_give_the_stationary_path(toy_set, toy_kernels) -> None:
    """``name_path`` rows (theta_l, m_l) and (lambda, S, g(m_K)) of the 1-D target saddle
    against the Gaussian bridge, and of the tilt against lambda = lam (needs the kernels)."""
    for y, lam, a, q, k in SADDLE_POINTS:
        rows = toy_kernels.path_rate_path(*(
            {"y": y, "a": a, "q": q, "K": float(k)}[n] for n in toy_set.arguments("path_rate")))
        thetas, states = ar1_saddle_path(y, a, q, k)
        assert rows.shape == (k + 1, 3)
        np.testing.assert_allclose(rows[:k, 0], thetas, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(rows[:k, 1], states, rtol=1e-9, atol=1e-11)
        assert rows[k, 0] == pytest.approx(thetas[-1], rel=1e-9)  # lambda = I_K'(y)
        assert rows[k, 1] == pytest.approx(-ar1_rate(y, a, q, k), rel=1e-9, abs=1e-12)
        assert rows[k, 2] == pytest.approx(y, rel=1e-12)
        tilt = toy_kernels.path_scgf_path(*(
            {"lam": lam, "a": a, "q": q, "K": float(k)}[n] for n in toy_set.arguments("path_scgf")))
        mean, variance = ar1_moments(a, q, k)
        assert tilt[k, 0] == lam
        assert tilt[k, 2] == pytest.approx(mean + lam * variance, rel=1e-9)  # tilted mean
