r"""Deep linear networks with weight decay and stochastic neurons (Ziyin, Li, Meng 2022).

Network: :math:`f(x) = U^\top \epsilon^{(D)}\odot W^{(D)} \cdots \epsilon^{(1)}\odot W^{(1)} x`,
``D`` hidden layers of widths :math:`d_i`, i.i.d. noise with :math:`\mathbb E\epsilon = 1`,
:math:`\mathrm{Var}\,\epsilon=\sigma^2`; objective
:math:`L = \mathbb E_x\mathbb E_\epsilon (f(x)-y)^2 + \gamma(\|U\|^2+\sum_i\|W^{(i)}\|_F^2)`.
Reference: ``shared/papers/ziyin2022.md`` (section numbers below are the notes').

This module is mathematics only.  The symbolic building blocks
(:func:`noise_averaged_loss`, :func:`noise_averaged_loss_by_expansion`,
:func:`stationarity_system`, :func:`stationary_points`, :func:`hessian_at_origin`) work on
explicit small networks; :func:`derive` turns a model into a FormulaSet in the scalar ``b``
of the global minimum (section 3), with the thresholds of section 4 derived by
resultants and discriminants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import sympy as sp

from .ir import (
    NONNEGATIVE,
    POSITIVE,
    DerivationError,
    Domain,
    Formula,
    FormulaSet,
    Item,
    Parameter,
    Recurrence,
    Root,
    item_symbol,
)
from .model import ModelSpec

REF = "Ziyin, Li, Meng 2022 (arXiv:2202.04777); notes ziyin2022.md"
#: Domains of gamma and sigma^2: beyond 1e8 the reduced formulas overflow doubles.
DECAY_DOMAIN = Domain(0.0, 1e8, lower_closed=False)
NOISE_DOMAIN = Domain(0.0, 1e8)

# -- symbols -----------------------------------------------------------------------------
GAMMA = sp.Symbol("weight_decay", positive=True)
SIGMA2 = sp.Symbol("noise_variance", nonnegative=True)
EY2 = sp.Symbol("output_variance", nonnegative=True)
B = sp.Symbol("b", nonnegative=True)
T = sp.Symbol("t", positive=True)


# -- explicit networks (section 2) -----------------------------------------------------------
def weight_symbols(input_dim: int, widths: Sequence[int]) -> list[sp.Matrix]:
    r"""Symbolic weights ``[W1, ..., WD, U]``: :math:`W^{(i)}_{jk}` and :math:`U_j` as symbols."""
    dims = [input_dim, *widths]
    mats = [sp.Matrix(dims[i + 1], dims[i], lambda r, c, i=i: sp.Symbol(f"W{i + 1}_{r}{c}",
                                                                         real=True))
            for i in range(len(widths))]
    mats.append(sp.Matrix(dims[-1], 1, lambda r, c: sp.Symbol(f"U_{r}", real=True)))
    return mats


def noise_averaged_loss(weights: Sequence[sp.Matrix], a0: sp.Matrix, exy: sp.Matrix,
                        ey2: sp.Expr, sigma2: sp.Expr, gammas: Sequence[sp.Expr]) -> sp.Expr:
    r"""Exact :math:`L` by the forward moment recursion (notes section 2).

    :math:`H_0=A_0,\ G_i=W^{(i)}H_{i-1}W^{(i)\top},\ H_i=G_i+\sigma^2\mathrm{Diag}(G_i),\
    m_i=W^{(i)}m_{i-1}`, then
    :math:`L=\mathbb E y^2-2U^\top m_D+U^\top H_DU+\sum\gamma_i\|W^{(i)}\|^2`.
    """
    return sp.expand(sum(loss_by_degree(weights, a0, exy, ey2, sigma2, gammas).values(),
                         sp.Integer(0)))


def loss_by_degree(weights: Sequence[sp.Matrix], a0: sp.Matrix, exy: sp.Matrix,
                   ey2: sp.Expr, sigma2: sp.Expr, gammas: Sequence[sp.Expr]
                   ) -> dict[int, sp.Expr]:
    r"""The terms of :func:`noise_averaged_loss` by total degree in the weights (unexpanded).

    :math:`\mathbb Ey^2` has degree 0, the penalty degree 2, :math:`-2U^\top m_D` degree
    :math:`D+1` and :math:`U^\top H_DU` degree :math:`2D+2` (each layer enters linearly in
    :math:`m` and quadratically in :math:`H`).
    """
    depth = len(weights) - 1
    h, m = a0, exy
    *hidden, u = weights
    for w in hidden:
        g = w * h * w.T
        h = g + sigma2 * sp.diag(*[g[j, j] for j in range(g.shape[0])])
        m = w * m
    penalty = sum((gm * sum(e**2 for e in w) for gm, w in zip(gammas, weights, strict=True)),
                  sp.Integer(0))
    terms: dict[int, sp.Expr] = {0: ey2, 2: penalty}
    for degree, term in ((depth + 1, -2 * (u.T * m)[0, 0]), (2 * depth + 2, (u.T * h * u)[0, 0])):
        terms[degree] = terms.get(degree, sp.Integer(0)) + term
    return terms


def noise_averaged_loss_by_expansion(weights: Sequence[sp.Matrix], a0: sp.Matrix,
                                     exy: sp.Matrix, ey2: sp.Expr, sigma2: sp.Expr,
                                     gammas: Sequence[sp.Expr]) -> sp.Expr:
    r"""Brute force: expand :math:`(a_\epsilon^\top x - y)^2` in the noise and average.

    Every :math:`\epsilon_j` enters :math:`a_\epsilon` linearly, so the square has powers
    at most 2: replace :math:`\epsilon_j^2\to1+\sigma^2`, :math:`\epsilon_j\to1`.
    """
    *hidden, u = weights
    eps = [[sp.Symbol(f"eps{i}_{j}") for j in range(w.shape[0])] for i, w in enumerate(hidden)]
    end_to_end = u.T
    for w, e in reversed(list(zip(hidden, eps, strict=True))):
        end_to_end = end_to_end * sp.diag(*e) * w
    a = end_to_end.T
    quad = sp.expand((a.T * a0 * a)[0, 0] - 2 * (a.T * exy)[0, 0] + ey2)
    flat = [s for row in eps for s in row]
    poly = sp.Poly(quad, *flat)
    moments = {0: sp.Integer(1), 1: sp.Integer(1), 2: 1 + sigma2}
    averaged = sp.Integer(0)
    for powers, coeff in poly.terms():
        factor = sp.Integer(1)
        for p in powers:
            if p > 2:
                raise DerivationError(f"noise enters with power {p} > 2: not a linear network")
            factor *= moments[p]
        averaged += coeff * factor
    penalty = sum((gm * sum(e**2 for e in w) for gm, w in zip(gammas, weights, strict=True)),
                  sp.Integer(0))
    return sp.expand(averaged + penalty)


def stationarity_system(loss: sp.Expr, weights: Sequence[sp.Matrix]) -> list[sp.Expr]:
    r"""The polynomial system :math:`\nabla L = 0` (one polynomial per weight)."""
    return [sp.expand(sp.diff(loss, s)) for w in weights for s in w]


def stationary_points(depth: int, values: dict[sp.Symbol, sp.Rational],
                      digits: int = 50) -> list[dict[sp.Symbol, sp.Float]]:
    r"""All real stationary points of the width-1, input-dimension-1 network.

    Loss :math:`L(w_1..w_{D+1})` from :func:`noise_averaged_loss` with :math:`A_0=a`,
    :math:`\mathbb E[xy]=m`; ``values`` gives rational ``a, m, noise_variance,
    weight_decay, output_variance``.  A lexicographic Groebner basis of :math:`\nabla L`
    (exact) is triangular; its univariate polynomials are solved variable by variable
    from the last, with the real roots to ``digits`` digits.  Raises DerivationError if
    the stationary points are not isolated.
    """
    a, m = sp.Symbol("a", positive=True), sp.Symbol("m", positive=True)
    weights = weight_symbols(1, [1] * depth)
    loss = noise_averaged_loss(weights, sp.Matrix([[a]]), sp.Matrix([m]), EY2, SIGMA2,
                               [GAMMA] * (depth + 1)).subs(values)
    unknowns = [s for w in weights for s in w]
    basis = sp.groebner(stationarity_system(loss, weights), *unknowns, order="lex").exprs
    if basis == [1]:
        return []
    tol = sp.Float(10) ** (-(digits // 2))
    partial: list[dict[sp.Symbol, sp.Float]] = [{}]
    for var in reversed(unknowns):
        known = set().union(*(sol.keys() for sol in partial[:1]))
        relevant = [g for g in basis if g.has(var) and g.free_symbols <= known | {var}]
        extended = []
        for sol in partial:
            polys = [sp.Poly(sp.expand(g.subs(sol)), var) for g in relevant]
            polys = [p for p in polys if not all(abs(c) < tol for c in p.all_coeffs())]
            if not polys:
                raise DerivationError(f"stationary points: {var} is not determined (a "
                                      "continuum of stationary points)")
            lowest = min(polys, key=lambda p: p.degree())
            if lowest.degree() == 0:
                continue
            for root in lowest.nroots(n=digits, maxsteps=500):
                if abs(sp.im(root)) > tol:
                    continue
                r = sp.re(root)
                if all(abs(p.eval(r)) < tol * (1 + max(abs(c) for c in p.all_coeffs()))
                       for p in polys):
                    extended.append({**sol, var: r})
        partial = extended
    unique = {tuple(round(float(s[v]), 12) for v in unknowns): s for s in partial}
    return list(unique.values())


def hessian_at_origin(depth: int, gammas: Sequence[sp.Expr] | None = None) -> sp.Matrix:
    r"""Hessian of :math:`L` at the origin for the width-1 network with input along
    :math:`\mathbb E[xy]` (any input rotates there; the Hessian at 0 does not see :math:`A_0`).

    ``gammas``: per-layer decays :math:`(\gamma_1..\gamma_D,\gamma_u)` (default: all
    :math:`\gamma`).  Only the terms of :math:`L` of total degree 2 in the weights matter
    (:func:`loss_by_degree`): the penalty, and for D = 1 the data-fit cross term.
    """
    a, m = sp.Symbol("a", positive=True), sp.Symbol("m", positive=True)
    weights = weight_symbols(1, [1] * depth)
    gammas = list(gammas) if gammas is not None else [GAMMA] * (depth + 1)
    terms = loss_by_degree(weights, sp.Matrix([[a]]), sp.Matrix([m]), EY2, SIGMA2, gammas)
    unknowns = [s for w in weights for s in w]
    return sp.hessian(sp.expand(terms[2]), unknowns)


# -- data in the eigenbasis of A0 ------------------------------------------------------------
def eigen_directions(a0: Sequence[Sequence[float]], exy: Sequence[float],
                     rtol: float = 1e-12) -> list[tuple[float, float]]:
    r"""Pairs :math:`(a_k, c_k^2)`: eigenvalues of :math:`A_0` and squared projections
    :math:`c=Q^\top\mathbb E[xy]`, equal eigenvalues merged, directions with :math:`c_k=0`
    dropped (they enter no formula)."""
    vals, vecs = np.linalg.eigh(np.asarray(a0, dtype=float))
    proj2 = (vecs.T @ np.asarray(exy, dtype=float)) ** 2
    total = float(proj2.sum())
    pairs: list[list[float]] = []
    for val, c2 in sorted(zip(vals, proj2, strict=True)):
        if pairs and abs(val - pairs[-1][0]) <= rtol * max(1.0, abs(val)):
            pairs[-1][1] += c2
        else:
            pairs.append([float(val), float(c2)])
    return [(v, c2) for v, c2 in pairs if c2 > 1e-15 * total]


# -- the reduction to b (section 3) -----------------------------------------------------------
def reduced_loss(depth: int, s2: sp.Expr, gamma: sp.Expr, ey2: sp.Expr,
                 directions: Sequence[tuple[sp.Expr, sp.Expr]], b: sp.Expr = B
                 ) -> tuple[sp.Expr, sp.Expr]:
    r"""The loss on the balanced rank-1 family, minimised over the first-layer vector ``w``.

    Along :math:`U=br_D,\ W^{(i)}=br_ir_{i-1}^\top,\ W^{(1)}=r_1w^\top` the moment recursion
    gives :math:`L=\mathbb Ey^2-2b^D w^\top\mathbb E[xy]+b^{2D}s^2w^\top A_0w+\gamma(Db^2+\|w\|^2)`.
    In the eigenbasis each :math:`w_k` is solved from :math:`\partial L/\partial w_k=0`.
    Returns :math:`(\mathcal L(b), \text{the optimal } w_k \text{ as a tuple expression})`.
    """
    ws = sp.symbols(f"w_1:{len(directions) + 1}", real=True)
    loss = ey2 + gamma * depth * b**2
    for (a_k, c_k), w_k in zip(directions, ws, strict=True):
        loss += -2 * b**depth * c_k * w_k + (b ** (2 * depth) * s2 * a_k + gamma) * w_k**2
    optimum = sp.solve([sp.diff(loss, w) for w in ws], ws, dict=True)
    if len(optimum) != 1:
        raise DerivationError("reduction to b: the first-layer vector is not unique")
    best = optimum[0]
    return sp.simplify(loss.subs(best)), sp.Tuple(*[best[w] for w in ws])


def _positive_root(poly: sp.Expr, var: sp.Symbol, what: str) -> sp.Expr:
    """The unique positive real root of the factor of ``poly`` that contains ``var``."""
    roots = []
    for factor, _ in sp.factor_list(poly)[1]:
        if factor.has(var):
            roots += [r for r in sp.solve(factor, var) if r.is_positive]
    roots = list(dict.fromkeys(roots))
    if len(roots) != 1:
        raise DerivationError(f"{what}: expected one positive root, found {roots}")
    return roots[0]


def isotropic_thresholds(depth: int) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    r"""Closed forms :math:`(\gamma_c, \gamma_{sp}, g(t))` in ``m`` and ``k`` :math:`= s^2a`.

    Zero is the global minimum iff :math:`g(t)=(\mathcal L(b)-\mathcal L(0))(t^Dk+\gamma)/t
    \ge 0` for all :math:`t=b^2>0`; :math:`\gamma_c` is where ``g`` gets a double root:
    the resultant of :math:`g` and :math:`g'` in ``t``.  The spinodal is where the
    stationarity polynomial :math:`P_D(b)=kb^{2D}-mb^{D-1}+\gamma` gets a double root:
    its discriminant in ``b``.
    """
    k, m, g_ = sp.symbols("k m gamma", positive=True)
    loss, _ = reduced_loss(depth, k, g_, EY2, [(1, m)], b=sp.sqrt(T))
    g = sp.factor(sp.cancel((loss - loss.subs(T, 0)) * (T**depth * k + g_) / T))
    g = sp.expand(g)
    if depth == 1:
        gamma_c = _positive_root(g.subs(T, 0), g_, "critical weight decay (D = 1)")
        return gamma_c, gamma_c, g
    resultant = sp.resultant(g, sp.diff(g, T), T)
    gamma_c = _positive_root(resultant, g_, "critical weight decay")
    p = k * B ** (2 * depth) - m * B ** (depth - 1) + g_
    gamma_sp = _positive_root(sp.discriminant(p, B), g_, "spinodal weight decay")
    return gamma_c, gamma_sp, g


# -- the FormulaSet -------------------------------------------------------------------------
def model_parameters(spec: ModelSpec) -> tuple[float, list[tuple[float, float]], list[str]]:
    """Effective equal weight decay, eigen-directions, and notes on reductions applied."""
    notes = []
    decay = spec["weight_decay"]
    if isinstance(decay, tuple):
        gamma = math.exp(sum(math.log(v) for v in decay) / len(decay))
        notes.append(
            "Per-layer weight decays reduced to their geometric mean "
            f"{gamma:.12g} (rescale W_i by sqrt(gamma_i/gamma); section 1): the parameter "
            "weight_decay is that geometric mean (critical_weight_decay is its critical "
            "value), b is the common norm of the rescaled layers sqrt(gamma_i/gamma) |W_i|; "
            "losses, predictor and variance are those of the original network.")
    else:
        gamma = decay
    data = spec["data"]
    directions = eigen_directions(data["input_covariance"], data["input_output_covariance"])
    return gamma, directions, notes


def _parameters(spec: ModelSpec, gamma_default: float, directions: list
                ) -> tuple[list[Parameter], list[tuple[sp.Symbol, sp.Symbol]]]:
    """The kernels' parameters (gamma, sigma^2, E[y^2]; the data along each direction of A0
    that carries E[xy]: (a, m) when isotropic, else (a_k, c_k); b) and the directions'
    symbols."""
    isotropic = len(directions) == 1
    params = [
        Parameter(GAMMA, "weight decay gamma (equal for every layer)", DECAY_DOMAIN,
                  gamma_default, r"\gamma"),
        Parameter(SIGMA2, "variance sigma^2 of the multiplicative noise", NOISE_DOMAIN,
                  spec["noise_variance"], r"\sigma^2"),
        Parameter(EY2, "E[y^2]", NONNEGATIVE, spec["data"]["output_variance"],
                  r"\mathbb{E}[y^2]"),
    ]
    if isotropic:
        a_sym, m_sym = sp.Symbol("a", positive=True), sp.Symbol("m", positive=True)
        (a_val, c2_val), = directions
        params += [
            Parameter(a_sym, "eigenvalue of A0 along E[xy]", POSITIVE, a_val, "a"),
            Parameter(m_sym, "m = |E[xy]|", POSITIVE, math.sqrt(c2_val), "m"),
        ]
        dirs = [(a_sym, m_sym)]
    else:
        dirs = []
        for k, (a_val, c2_val) in enumerate(directions, start=1):
            a_k = sp.Symbol(f"a_{k}", positive=True)
            c_k = sp.Symbol(f"c_{k}", positive=True)
            params += [Parameter(a_k, f"eigenvalue {k} of A0", POSITIVE, a_val, f"a_{{{k}}}"),
                       Parameter(c_k, f"|projection of E[xy] on eigenvector {k}|", POSITIVE,
                                 math.sqrt(c2_val), f"c_{{{k}}}")]
            dirs.append((a_k, c_k))
    params.append(Parameter(B, "common layer norm b (argument of the reduced loss)",
                            NONNEGATIVE, None, "b"))
    return params, dirs


def minimum_items(depth: int, widths, dirs: list
                  ) -> tuple[list[Item], sp.Expr, sp.Expr, tuple[sp.Expr, ...] | None]:
    """The reduction to the layer norm b (section 3) and the global minimum: noise factor,
    balanced path, reduced loss, its factorised derivative, the stationarity residual, b* and
    the loss, predictor and prediction variance there (section 5); also the equation of b* and the
    upper end of its bracket and its monotone pieces (isotropic data), which the barrier uses."""
    s2 = item_symbol("noise_factor")
    items: list[Item] = [Formula(
        "noise_factor", sp.Mul(*[1 + SIGMA2 / d for d in widths]),
        "noise factor s^2 = prod_i (1 + sigma^2/d_i) over hidden widths", f"{REF}, section 3")]

    loss, w_opt = reduced_loss(depth, s2, GAMMA, EY2, dirs)
    derivative = sp.diff(loss, B)
    residual_sum = sum(c**2 / (B ** (2 * depth) * s2 * a + GAMMA) ** 2 for a, c in dirs)
    factorised = 2 * GAMMA * depth * B * (1 - B ** (2 * depth - 2) * residual_sum)
    if sp.cancel(sp.together(derivative - factorised)) != 0:
        raise DerivationError("reduced loss: the derivative does not factorise as in section 3")
    residual = B ** (2 * depth - 2) * residual_sum - 1
    items.append(_balanced_path_recursion(depth, widths, dirs, w_opt))
    items += [
        Formula("reduced_loss", loss, "loss L(b) on the balanced rank-1 family, optimal w",
                f"{REF}, section 3"),
        Formula("reduced_loss_derivative", factorised,
                "L'(b) = 2 gamma D b [1 - b^(2D-2) E[xy]^T (b^(2D) s^2 A0 + gamma)^-2 E[xy]]",
                f"{REF}, section 3"),
        Formula("stationarity_residual", residual,
                "b > 0 is stationary iff this vanishes (|w(b)| = b)", f"{REF}, section 3"),
    ]
    equation, breaks = stationarity_equation(depth, s2, residual, dirs)
    # every positive zero lies below b_max, where the residual is already < 0
    b_max = sp.Rational(11, 10) * sum(c**2 / (s2 * a) ** 2 for a, c in dirs) ** sp.Rational(
        1, 2 * depth + 2) + sp.Rational(1, 10**6)
    # L'(b) = -2 gamma D b r(b) (the factorisation checked above): a zero of r is a local
    # minimum of L only where r falls through zero.  Isotropic data, D >= 2: that is the zero
    # right of the spinodal point b_sp (the one left of it is the barrier b_s, a local
    # maximum), so b*'s search starts at b_sp, where its equation is monotone.
    lower, b_star_breaks = (breaks[0], ()) if breaks else (sp.Integer(0), breaks)
    items.append(Root(
        "b_star", B, equation, sp.diff(equation, B), (lower, b_max),
        "b* of the global minimum: the zero of the residual (or 0) with the least L(b)",
        f"{REF}, section 3", scan_points=400, select="min_objective",
        objective=item_symbol("reduced_loss"), candidates=(sp.Integer(0),),
        monotone_breaks=b_star_breaks))
    b_star = item_symbol("b_star")
    items.append(Formula(
        "loss_at_minimum", loss.subs(B, b_star),
        "L* = L(b*): noise-averaged data loss plus weight decay at the global minimum",
        f"{REF}, sections 1 and 3"))
    v = [sp.simplify(w_k * B**depth) for w_k in w_opt]  # v_k = b^D w_k (notes: b^(2D) c/(..))
    items.append(Formula(
        "predictor_norm", sp.sqrt(sum(vk**2 for vk in v)).subs(B, b_star),
        "|v| of the mean predictor E_eps f(x) = v^T x at the global minimum",
        f"{REF}, section 3"))
    variance = (s2 - 1) * sum(a * vk**2 for (a, _), vk in zip(dirs, v, strict=True))
    items.append(Formula(
        "prediction_variance", variance.subs(B, b_star),
        "E_x Var_eps f(x) = (s^2 - 1) v^T A0 v at the global minimum", f"{REF}, section 5"))
    small_decay = sp.simplify(sp.limit(variance.subs(B, 1), GAMMA, 0))
    items.append(Formula(
        "prediction_variance_small_decay_limit", small_decay,
        "limit gamma -> 0+ of the prediction variance: (s^2-1)/s^4 E[xy]^T A0^-1 E[xy]",
        f"{REF}, section 5"))

    return items, equation, b_max, breaks


def stationarity_equation(depth: int, s2: sp.Expr, residual: sp.Expr, dirs: list
                          ) -> tuple[sp.Expr, tuple[sp.Expr, ...] | None]:
    r"""The equation whose zeros in b > 0 are those of the stationarity residual r(b), and the
    points that cut b > 0 into pieces where it is monotone (None: not known, scan).

    Isotropic data (one eigen-direction, k = s^2 a):

    .. math:: r(b) = \frac{(m b^{D-1} - k b^{2D} - \gamma)(m b^{D-1} + k b^{2D} + \gamma)}
        {(k b^{2D} + \gamma)^2},

    whose second factor is positive, so r has the zeros and the sign of the polynomial
    :math:`-P(b) = m b^{D-1} - k b^{2D} - \gamma`.  :math:`P'(b) = b^{D-2}\,[2Dk\,b^{D+1} -
    (D-1) m]` vanishes on b > 0 only at the spinodal point :math:`b_{sp} = ((D-1) m /
    (2Dk))^{1/(D+1)}` (D >= 2; D = 1: P is monotone on b > 0), so each side holds at most one
    zero (the barrier b_s and b*).  Both factorisations are checked here.  Several
    eigen-directions: the residual itself, scanned."""
    if len(dirs) != 1:
        return residual, None
    (a, m), = dirs
    k = s2 * a
    polynomial = m * B ** (depth - 1) - k * B ** (2 * depth) - GAMMA
    claimed = polynomial * (m * B ** (depth - 1) + k * B ** (2 * depth) + GAMMA) / (
        k * B ** (2 * depth) + GAMMA) ** 2
    if sp.cancel(sp.together(residual - claimed)) != 0:
        raise DerivationError("stationarity residual: it does not factorise as "
                              "(m b^(D-1) - k b^(2D) - gamma)(...) / (k b^(2D) + gamma)^2")
    if depth == 1:
        return polynomial, ()
    slope = sp.diff(polynomial, B)
    claimed_slope = -B ** (depth - 2) * (2 * depth * k * B ** (depth + 1) - (depth - 1) * m)
    if sp.expand(slope - claimed_slope) != 0:
        raise DerivationError("the stationarity polynomial's derivative does not factorise as "
                              "-b^(D-2) [2 D k b^(D+1) - (D-1) m]")
    return polynomial, (((depth - 1) * m / (2 * depth * k)) ** sp.Rational(1, depth + 1),)


def origin_hessian_item(spec: ModelSpec, depth: int, gamma_default: float, dirs: list
                        ) -> Formula:
    """The smallest eigenvalue of the Hessian at the origin in the model's own weights
    (per-layer decays gamma_i = gamma * ratio_i), section 4."""
    # the Hessian in the model's own weights: per-layer decays gamma_i = gamma * ratio_i
    decay = spec["weight_decay"]
    ratios = [sp.nsimplify(v / gamma_default) for v in decay] if isinstance(
        decay, tuple) else [sp.Integer(1)] * (depth + 1)
    hess = hessian_at_origin(depth, [GAMMA * r for r in ratios])
    m_total = sp.sqrt(sum(c**2 for _, c in dirs))
    smallest = sp.Min(*hess.eigenvals().keys()).subs(sp.Symbol("m", positive=True), m_total)
    return Formula(
        "origin_hessian_min_eigenvalue", sp.simplify(smallest),
        "smallest eigenvalue of the Hessian of L at the origin, in the model's weights "
        "(D = 1: 2(gamma - m); D >= 2: 2 min_i gamma_i)", f"{REF}, section 4")


def threshold_items(depth: int, dirs: list, isotropic: bool) -> list[Item]:
    """gamma_c (and for D >= 2 gamma_sp) in closed form when the data are isotropic or D = 1
    (a resultant and a discriminant, with P_D(b) when isotropic); else the nested root solve of
    the anisotropic gamma_c (section 4)."""
    s2 = item_symbol("noise_factor")
    m_total = sp.sqrt(sum(c**2 for _, c in dirs))
    items: list[Item] = []
    gamma_c_iso, gamma_sp_iso, g = isotropic_thresholds(depth)
    k_, m_ = sp.symbols("k m", positive=True)
    if isotropic or depth == 1:
        a_sym, c_sym = dirs[0]
        k_value = s2 * a_sym if isotropic else sp.Integer(1)
        subs = {k_: k_value, m_: m_total}
        if isotropic:
            items.append(Formula(
                "stationarity_polynomial",
                s2 * a_sym * B ** (2 * depth) - m_total * B ** (depth - 1) + GAMMA,
                "P_D(b) = s^2 a b^(2D) - m b^(D-1) + gamma: b > 0 stationary iff P_D(b) = 0",
                f"{REF}, section 3 (isotropic)"))
        items.append(Formula(
            "critical_weight_decay", gamma_c_iso.subs(subs),
            "gamma_c: zero is the global minimum iff gamma >= gamma_c "
            + ("(D = 1: gamma_c = m for any A0)" if depth == 1 else
               "(double root of g(t): resultant of g and g')"),
            f"{REF}, section 4"))
        if depth >= 2:
            items.append(Formula(
                "spinodal_weight_decay", gamma_sp_iso.subs(subs),
                "gamma_sp: the nonzero local minimum exists iff gamma < gamma_sp "
                "(discriminant of P_D)", f"{REF}, section 4"))
    else:
        items += _anisotropic_critical_decay(depth, dirs, s2, gamma_c_iso, m_total)
    return items


def derive(spec: ModelSpec) -> FormulaSet:
    """The weight-decay FormulaSet of a model (see the module docstring): the reduction to the
    layer norm b and the global minimum, the Hessian at the origin, the thresholds gamma_c and
    gamma_sp, and the barrier."""
    depth, widths = spec["depth"], spec["widths"]
    gamma_default, directions, notes = model_parameters(spec)
    isotropic = len(directions) == 1
    params, dirs = _parameters(spec, gamma_default, directions)
    items, equation, b_max, breaks = minimum_items(depth, widths, dirs)
    items.append(origin_hessian_item(spec, depth, gamma_default, dirs))
    items += threshold_items(depth, dirs, isotropic)
    items.append(Formula(
        "data_consistency_margin", EY2 - sum(c**2 / a for a, c in dirs),
        "E[y^2] - E[xy]^T A0^-1 E[xy] (Cauchy-Schwarz: >= 0 for moments of real data)",
        f"{REF}, section 1", internal=True))
    if depth >= 2:
        items.append(Root(
            "barrier_b", B, equation, sp.diff(equation, B), (sp.Integer(0), b_max),
            "b_s: the smaller positive zero of the residual (the saddle between 0 and b*); "
            "NaN when gamma > gamma_sp", f"{REF}, section 4", scan_points=400, select="first",
            monotone_breaks=breaks))
    return FormulaSet(
        name=spec.stem, family="weight_decay", source=spec.source, params=tuple(params),
        items=tuple(items),
        latex_names=(("noise_factor", "s^2"), ("b_star", "b^*"), ("loss_at_minimum",
                     r"\mathcal{L}^*"), ("reduced_loss", r"\mathcal{L}(b)"),
                     ("reduced_loss_derivative", r"\mathcal{L}'(b)"),
                     ("critical_weight_decay", r"\gamma_c"),
                     ("spinodal_weight_decay", r"\gamma_{sp}"), ("barrier_b", "b_s"),
                     ("prediction_variance", r"\mathbb{E}_x\mathrm{Var}_\epsilon f"),
                     ("predictor_norm", r"\|v\|"), ("t", "t"), ("mu", r"\mu"),
                     ("balanced_path_loss", r"\mathcal{L}_{\mathrm{path}}(b)")),
        constraints=(("data_consistency_margin",
                      "output_variance >= E[xy]^T A0^-1 E[xy] (moments of real data)"),),
        notes=tuple(notes) + (
            f"Depth D = {depth}, hidden widths {list(widths)}; "
            + ("isotropic data (E[xy] is an eigenvector of A0)." if isotropic else
               f"{len(dirs)} eigen-directions of A0 carry E[xy]."),),
    )


def _balanced_path_recursion(depth: int, widths: Sequence[int],
                              dirs: list[tuple[sp.Symbol, sp.Symbol]], w_opt: sp.Tuple
                              ) -> Recurrence:
    r"""The forward moment recursion of section 2 along the balanced rank-1 family.

    With :math:`W^{(1)}=r_1w^\top`, :math:`W^{(i)}=br_ir_{i-1}^\top` and
    :math:`r_{ij}=\pm1/\sqrt{d_i}`, only :math:`h_i=r_i^\top H_ir_i` and
    :math:`\mu_i=r_i^\top m_i` propagate: :math:`h_i=\beta_i^2(1+\sigma^2/d_i)h_{i-1}`,
    :math:`\mu_i=\beta_i\mu_{i-1}` with :math:`\beta_1=1`, :math:`\beta_{i\ge2}=b`; then
    :math:`L=\mathbb Ey^2-2b\mu_D+b^2h_D+\gamma(Db^2+\|w\|^2)`.  A loop over layers that
    reproduces the closed-form reduced loss by another route.
    """
    h, mu = sp.Symbol("h", real=True), sp.Symbol("mu", real=True)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    half = sp.Rational(1, 2)
    width_factor = sp.Piecewise(
        *[(1 + SIGMA2 / d, k < i + half) for i, d in enumerate(widths[:-1])],
        (1 + SIGMA2 / widths[-1], True))
    beta = sp.Piecewise((1, k < half), (B, True))
    h0 = sum(a * w**2 for (a, _), w in zip(dirs, w_opt, strict=True))
    mu0 = sum(c * w for (_, c), w in zip(dirs, w_opt, strict=True))
    penalty = GAMMA * (depth * B**2 + sum(w**2 for w in w_opt))
    return Recurrence(
        "balanced_path_loss", (h, mu), (beta**2 * width_factor * h, beta * mu), (h0, mu0),
        sp.Integer(depth), EY2 - 2 * B * mu + B**2 * h + penalty,
        "L(b) by the forward moment recursion over layers along the balanced rank-1 family "
        "(optimal w); equals the reduced loss", f"{REF}, sections 2 and 3", index=k)


def _anisotropic_critical_decay(depth: int, dirs: list[tuple[sp.Symbol, sp.Symbol]],
                                s2: sp.Expr, gamma_c_iso: sp.Expr, m_total: sp.Expr
                                ) -> list[Item]:
    r"""gamma_c for anisotropic A0 (D >= 2) as a generated root solve.

    :math:`\psi(t,\gamma)=(\mathcal L(b)-\mathcal L(0))/t=\gamma D-t^{D-1}\sum_k c_k^2/(s^2a_kt^D+
    \gamma)` increases in :math:`\gamma`; :math:`\gamma_c` solves :math:`\min_t\psi(t,\gamma)=0`.
    Inner root: the minimiser :math:`t^*(\gamma)` (zero of :math:`\partial_t\psi`); outer
    root in :math:`\gamma` with :math:`d\Psi/d\gamma=\partial_\gamma\psi` (envelope theorem),
    bracketed by the isotropic :math:`\gamma_c` at the largest and smallest :math:`a_k`.
    """
    k_, m_ = sp.symbols("k m", positive=True)
    psi = GAMMA * depth - T ** (depth - 1) * sum(
        c**2 / (s2 * a * T**depth + GAMMA) for a, c in dirs)
    t_max = sum(c**2 / (s2 * a) for a, c in dirs) / (GAMMA * depth)
    t_star = item_symbol("zero_margin_minimiser")
    a_values = [a for a, _ in dirs]
    bound = [gamma_c_iso.subs({k_: s2 * a, m_: m_total}) for a in (sp.Max(*a_values),
                                                                   sp.Min(*a_values))]
    return [
        Root("zero_margin_minimiser", T, sp.diff(psi, T), sp.diff(psi, T, 2),
             (sp.Integer(0), t_max),
             "t* = argmin_t psi(t, gamma), psi = (L(b) - L(0))/b^2 at b^2 = t",
             f"{REF}, section 4", scan_points=200, select="min_objective", objective=psi,
             candidates=(t_max,), internal=True),
        Root("critical_weight_decay", GAMMA, psi.subs(T, t_star),
             sp.diff(psi, GAMMA).subs(T, t_star),
             (sp.Rational(1, 2) * bound[0], 2 * bound[1]),
             "gamma_c: zero is the global minimum iff gamma >= gamma_c (root of "
             "min_t psi(t, gamma) = 0; bracket from the isotropic gamma_c at max/min a_k)",
             f"{REF}, section 4", scan_points=32, select="first"),
    ]


__all__ = ["derive", "noise_averaged_loss", "noise_averaged_loss_by_expansion",
           "stationarity_system", "stationary_points", "hessian_at_origin", "reduced_loss",
           "isotropic_thresholds", "eigen_directions"]

