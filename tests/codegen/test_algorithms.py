"""The fixed algorithms of codegen/algorithms on toy problems, independent of any family.

Templates are compiled from the same spliced text a generated module holds
(``templates.instantiate``); each result is compared with an independent computation
(numpy's polynomial roots, a brute-force numpy dynamic programming, LAPACK, the closed-form
rate of a Gaussian random walk).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest

from netderive.codegen.algorithms import continuation, min_plus, root
from netderive.codegen.algorithms.banded import band_solve, band_storage
from netderive.codegen.algorithms.templates import instantiate, splice

# -- root search --------------------------------------------------------------------------
#: g(x) = (x + 0.5)(x - 0.3)(x - 0.7): three zeros in [-1, 1].
CUBIC = np.poly1d([-0.5, 0.3, 0.7], r=True)


@nb.njit
def cubic_equation(x: float, params: tuple) -> tuple[float, float]:
    (shift,) = params
    y = x - shift
    return (y + 0.5) * (y - 0.3) * (y - 0.7), 3 * y * y - 1.0 * y - 0.29


@nb.njit
def distance_to_target(x: float, params: tuple) -> float:
    return (x - 0.65) ** 2


@pytest.fixture(scope="module")
def root_search() -> object:
    return instantiate(root.root_search, {"equation": cubic_equation,
                                          "objective": distance_to_target})


def test_polynomial_derivative_is_right() -> None:
    # the toy's g' is typed by hand: check it against numpy before trusting the tests below
    for x in np.linspace(-1, 1, 7):
        assert cubic_equation(x, (0.0,))[1] == pytest.approx(CUBIC.deriv()(x), abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_root_search_finds_the_chosen_zero(root_search: object, shift: float) -> None:
    zeros = np.sort(CUBIC.roots.real) + shift
    none = (math.nan,)
    # 40 equal cells, or the pieces between the zeros of g' (given in decreasing order, with
    # a NaN and a break outside the bracket, which are ignored)
    critical = tuple(np.sort(CUBIC.deriv().roots.real)[::-1] + shift) + (math.nan, 3.0)
    for cells, breaks in ((40, none), (0, critical)):
        first = root_search(-1.0, 1.0, cells, breaks, root.FIRST, none, math.nan, (shift,))
        last = root_search(-1.0, 1.0, cells, breaks, root.LAST, none, math.nan, (shift,))
        nearest = root_search(-1.0, 1.0, cells, breaks, root.MIN_OBJECTIVE, none, math.nan,
                              (shift,))
        assert first == pytest.approx(zeros[0], abs=1e-13)
        assert last == pytest.approx(zeros[2], abs=1e-13)
        assert nearest == pytest.approx(zeros[np.argmin((zeros - 0.65) ** 2)], abs=1e-13)


def test_root_search_candidates_and_fallback(root_search: object) -> None:
    none = (math.nan,)
    best = root_search(-1.0, 1.0, 40, none, root.MIN_OBJECTIVE, (0.66, 5.0, math.nan),
                       math.nan, (0.0,))
    assert best == 0.66  # closer to 0.65 than the zero 0.7
    # no sign change in [0.35, 0.65] (between the zeros 0.3 and 0.7): the fallback
    assert root_search(0.35, 0.65, 10, none, root.FIRST, none, -7.0, (0.0,)) == -7.0
    assert root_search(0.35, 0.65, 0, (0.5,), root.FIRST, none, -7.0, (0.0,)) == -7.0
    # a zero exactly at a cell's or piece's end counts
    assert root_search(-0.5, 0.0, 5, none, root.FIRST, none, -7.0, (0.0,)) == -0.5
    assert root_search(-1.0, 0.0, 0, (-0.5,), root.LAST, none, -7.0, (0.0,)) == -0.5


def test_pieces_with_a_wrong_break_miss_a_zero(root_search: object) -> None:
    """The pieces are trusted: with g monotone claimed on [-1, 1] (no break), the three zeros
    give one sign change, and one zero is found (this is why breaks must come from the
    derivation, and why the interpreter's fine scan checks them)."""
    found = root_search(-1.0, 1.0, 0, (math.nan,), root.LAST, (math.nan,), -7.0, (0.0,))
    assert np.min(np.abs(CUBIC.roots.real - found)) < 1e-13


# -- min-plus dynamic programming --------------------------------------------------------
LOWER, UPPER, SIZE, START, STAGES = -2.0, 2.0, 81, 0.3, 4


@nb.njit
def quadratic_rate(x: float, x_prev: float, stage: float, params: tuple) -> float:
    """J(x | x') = (x - a x')^2 / 2 + b x'^2 (a, b) = params; NaN far out (read as +inf)."""
    a, b = params
    if abs(x) > 1.9 and abs(x_prev) > 1.9:
        return math.nan
    return 0.5 * (x - a * x_prev) ** 2 + b * x_prev * x_prev


@nb.njit
def staged_rate(x: float, x_prev: float, stage: float, params: tuple) -> float:
    a, b = params
    return 0.5 * (x - a * x_prev) ** 2 / stage + b * x_prev * x_prev


@nb.njit
def quadratic_abscissa(x: float, params: tuple) -> tuple[float, float]:
    """J = A(x) + X(x) m(x') + c(x') with A = x^2/2, X = x, m = -a x', c = (a^2/2 + b) x'^2."""
    return 0.5 * x * x, x


@nb.njit
def quadratic_line(x_prev: float, params: tuple) -> tuple[float, float]:
    a, b = params
    return -a * x_prev, (0.5 * a * a + b) * x_prev * x_prev


def brute_force_curves(rate: object, params: tuple) -> tuple[np.ndarray, np.ndarray]:
    """I_1 = J_1(x | x0), I_{k+1}(x) = min_j I_k(x_j) + J_{k+1}(x | x_j) with numpy arrays."""
    x = np.linspace(LOWER, UPPER, SIZE)
    curves = np.empty((STAGES, SIZE))
    with np.errstate(invalid="ignore"):
        curves[0] = [rate.py_func(xi, START, 1.0, params) for xi in x]
        for k in range(1, STAGES):
            table = np.array([[rate.py_func(xi, xj, float(k + 1), params) for xj in x]
                              for xi in x])
            table[np.isnan(table)] = np.inf
            curves[k] = np.min(curves[k - 1][None, :] + table, axis=1)
    curves[0][np.isnan(curves[0])] = np.inf
    return x, curves


@pytest.mark.parametrize(("template", "rate"), [(min_plus.curves_fixed, quadratic_rate),
                                                (min_plus.curves_staged, staged_rate)])
def test_min_plus_matches_brute_force(template: object, rate: object) -> None:
    params = (0.8, 0.1)
    curves = instantiate(template, {"rate": rate})
    x, rows = curves(LOWER, UPPER, float(SIZE), START, float(STAGES), params)
    x_ref, rows_ref = brute_force_curves(rate, params)
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_allclose(rows, rows_ref, rtol=1e-13, atol=1e-13)


def test_envelope_matches_brute_force() -> None:
    params = (0.8, 0.1)

    @nb.njit
    def smooth_rate(x: float, x_prev: float, stage: float, p: tuple) -> float:
        a, b = p
        return 0.5 * (x - a * x_prev) ** 2 + b * x_prev * x_prev

    curves = instantiate(min_plus.curves_envelope, {
        "rate": smooth_rate, "abscissa": quadratic_abscissa, "line": quadratic_line})
    x, rows = curves(LOWER, UPPER, float(SIZE), START, float(STAGES), params)
    _, rows_ref = brute_force_curves(smooth_rate, params)
    np.testing.assert_allclose(rows, rows_ref, rtol=1e-12, atol=1e-12)


def test_interpolation_on_the_grid() -> None:
    x = np.linspace(0.0, 1.0, 11)
    y = x**2
    for t in (0.0, 0.05, 0.5, 0.93, 1.0):
        assert min_plus.interpolate_grid(x, y, t) == pytest.approx(np.interp(t, x, y), abs=1e-15)
    assert min_plus.interpolate_grid(x, y, 1.5) == math.inf
    assert math.isnan(min_plus.interpolate_grid(x, y, math.nan))


# -- banded solve ------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "kl", "seed"), [(7, 1, 0), (12, 3, 1), (30, 5, 2)])
def test_band_solve_matches_lapack(n: int, kl: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, n))
    matrix[np.abs(np.subtract.outer(np.arange(n), np.arange(n))) > kl] = 0.0
    rhs = rng.normal(size=n)
    x, sign = band_solve(band_storage(matrix, kl), rhs, kl)
    np.testing.assert_allclose(x, np.linalg.solve(matrix, rhs), rtol=1e-10, atol=1e-12)
    assert sign == np.linalg.slogdet(matrix)[0]


# -- path-saddle continuation ------------------------------------------------------------
# Gaussian random walk m_l = m_{l-1} + N(0, 1): the one-stage rate is (m - m')^2 / 2 and
# I_K(goal) = (goal - m_0)^2 / (2K), lambda = I_K' = (goal - m_0) / K.  In the path-saddle
# form the stage function is l(theta, m, m') = theta m' + theta^2 / 2 - theta m (so that
# J(m | m') = -min_theta l), the typical step m' -> m', the observable g(m) = m.
@nb.njit
def walk_stage(theta: np.ndarray, m: np.ndarray, previous: np.ndarray, params: tuple
               ) -> tuple[float, np.ndarray, np.ndarray]:
    t, y, yp = theta[0], m[0], previous[0]
    gradient = np.array([yp + t - y, -t, t])
    hessian = np.array([[1.0, -1.0, 1.0], [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    return t * yp + 0.5 * t * t - t * y, gradient, hessian


@nb.njit
def walk_typical(previous: np.ndarray, params: tuple) -> np.ndarray:
    return previous.copy()


@nb.njit
def walk_observable(m: np.ndarray, params: tuple) -> tuple[float, np.ndarray, np.ndarray]:
    return m[0], np.ones(1), np.zeros((1, 1))


@pytest.fixture(scope="module")
def walk_solve() -> object:
    return instantiate(continuation.solve, {"stage": walk_stage, "typical": walk_typical,
                                            "observable": walk_observable})


@pytest.mark.parametrize(("steps", "goal"), [(1, 1.1), (3, -0.9), (4, 2.0)])
def test_continuation_gives_the_random_walk_rate(walk_solve: object, steps: int,
                                                 goal: float) -> None:
    start = np.array([0.3])
    x, action, multiplier, endpoint = walk_solve(goal, True, steps, start, 8, (0.0,))
    assert -action == pytest.approx((goal - 0.3) ** 2 / (2 * steps), abs=1e-10)
    assert multiplier == pytest.approx((goal - 0.3) / steps, abs=1e-10)
    assert endpoint == pytest.approx(goal, abs=1e-10)
    # the optimal path is a straight line from m_0 to the goal
    path = x[1:2 * steps:2]
    np.testing.assert_allclose(path, 0.3 + (goal - 0.3) * np.arange(1, steps + 1) / steps,
                               atol=1e-10)


def test_continuation_tilt_mode_moves_the_endpoint(walk_solve: object) -> None:
    # tilt lambda: S = -I, so the stationary point of S + lambda g is the maximiser of
    # lambda m - (m - m_0)^2 / (2K) (the SCGF's): m = m_0 + K lambda, S = -K lambda^2 / 2
    steps, tilt = 3, 0.4
    _, action, multiplier, endpoint = walk_solve(tilt, False, steps, np.array([0.3]), 8,
                                                 (0.0,))
    assert multiplier == tilt
    assert endpoint == pytest.approx(0.3 + steps * tilt, abs=1e-10)
    assert action == pytest.approx(-steps * tilt**2 / 2, abs=1e-10)


# -- splicing ------------------------------------------------------------------------------
def test_splice_renames_callbacks_and_imports_constants() -> None:
    spliced = splice(root.root_search, "_x", {"equation": "_x_eq", "objective": "_x_obj"})
    names = [name for name, _ in spliced.functions]
    assert names == ["_x_offer", "_x_refine_root", "_x_root_search"]
    source = "\n".join(text for _, text in spliced.functions)
    assert "_x_eq(" in source and "equation(" not in source.replace("_x_eq(", "")
    assert ("netderive.codegen.algorithms.root", "ROOT_TOLERANCE") in spliced.imports


def test_splice_refuses_a_missing_callback() -> None:
    with pytest.raises(TypeError, match="callback objective not given"):
        splice(root.root_search, "_x", {"equation": "_x_eq"})


def test_placeholders_refuse_to_run() -> None:
    with pytest.raises(NotImplementedError, match="placeholder"):
        root.equation(0.0, ())


@pytest.mark.parametrize("runs", [1, 2, 3, 10, 49, 64, 489, 4096])
def test_spreading_stride_permutes_and_spreads(runs: int) -> None:
    stride = root.spreading_stride(runs)
    order = [(r * stride) % runs for r in range(runs)]
    assert sorted(order) == list(range(runs))
    if runs >= 10:  # the first half of r (one thread's block) reaches both halves of the runs
        first = order[: runs // 2]
        assert min(first) < runs // 4 and max(first) > 3 * runs // 4
