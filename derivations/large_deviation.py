r"""Large deviations of the overlap of a random deep network and its perturbed copy.

Li and Saad 2020 (arXiv:1910.05769); notes ``shared/papers/lisaad2020.md`` (section numbers
below are the notes').  A width-N, depth-L network with i.i.d. Gaussian weights and binary
inputs; a copy with diluted or binarized weights sees the same input.  The overlap
:math:`q_l` of the two activity vectors at layer :math:`l` is a Markov chain in
:math:`l`; as :math:`N\to\infty` it follows the mean-field map and
:math:`P(q_L \approx q) \asymp e^{-N I_L(q)}`.

Three routes, chosen from the activation:

- ``sign`` (any positive multiple): the overlap is the exact scalar state; one-layer rate
  = binary relative entropy, derived here as the Legendre transform of
  :math:`\Lambda(\theta|q')=\ln[\cosh\theta+\mu(q')\sinh\theta]`; it is affine in
  :math:`(1+q)/2` at fixed :math:`q'`, which the derivation detects (line envelope).  The
  saddle-point (forward/backward) route and its Legendre transform are derived too.
- ``relu`` (any positive multiple): the normalised overlap :math:`r` is an exact scalar
  chain; one-layer rate :math:`\sup_\kappa -\ln M_r(\kappa; \rho r')` with the quadrant
  closed form of :math:`M_r` (section 4.4); the rate also by the saddle point of the path
  (a :class:`~derivations.ir.PathSaddle` over :math:`(\kappa_l, r_l)`) and its Legendre
  form :math:`\lambda r - \Lambda_L(\lambda)`, and the SCGF.
- any other whitelisted activation: mean-field map of :math:`(q, Q, \hat Q)` by
  Gauss-Hermite quadrature (exact up to quadrature); its rate function is the action of the
  stationary path of the 3-D chain (section 4.2: stage function
  :math:`\Lambda(\theta; m') - \theta\cdot m` from 28 tilted Gauss-Hermite moments).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

import sympy as sp

from . import gaussian
from .activation import ACTIVATION_VARIABLE, activation_bound, parse_activation
from .domain import Domain
from .ir import (
    POSITIVE,
    REAL,
    DerivationError,
    Expectation,
    Formula,
    FormulaSet,
    Item,
    MinPlusRecursion,
    Parameter,
    PathSaddle,
    Recurrence,
    Root,
    item_symbol,
)
from .model import ModelSpec

REF = "Li and Saad 2020 (arXiv:1910.05769); notes lisaad2020.md"
BOUND_REF = ("limits at +-oo and critical points of each smooth piece of phi "
             "(derivations.activation.activation_bound)")

# -- symbols (parameters of the kernels) ------------------------------------------------
P = sp.Symbol("p", nonnegative=True)
DEPTH = sp.Symbol("depth", positive=True, integer=True)
Q0 = sp.Symbol("input_overlap", real=True)
Q = sp.Symbol("q", real=True)
Q_PREV = sp.Symbol("q_prev", real=True)
GRID = sp.Symbol("grid_size", positive=True, integer=True)
TILT = sp.Symbol("tilt", real=True)
FIRST_TILT = sp.Symbol("first_tilt", real=True)
SIGMA2 = sp.Symbol("weight_variance", positive=True)
NORM = sp.Symbol("norm", positive=True)
NORM_HAT = sp.Symbol("norm_hat", positive=True)
# bound variables
R = sp.Symbol("r", real=True)
V = sp.Symbol("V", real=True)
S_ACTION = sp.Symbol("S", real=True)
TH = sp.Symbol("vartheta", real=True)
LAST = sp.Symbol("lambda_L", real=True)
KAPPA = sp.Symbol("kappa", real=True)
Z1, Z2 = sp.symbols("z1 z2", real=True)
W = sp.Symbol("w", real=True)
ENDPOINT = sp.Symbol("g_L", real=True)
#: conjugates of (q, Q, Q-hat) in the saddle point of general activations (parameters of its
#: tilted Gauss-Hermite moments)
TILTS3 = tuple(sp.Symbol(f"theta_{k}", real=True) for k in (1, 2, 3))
#: the new state (q, Q, Q-hat) of a stage of that saddle point (bound)
STATE3 = (sp.Symbol("q_next", real=True), sp.Symbol("norm_next", real=True),
          sp.Symbol("norm_hat_next", real=True))

PROBABILITY = Domain(0.0, 1.0, upper_closed=False)
OVERLAP = Domain(-1.0, 1.0)
GRID_DOMAIN = Domain(3.0, 20001.0, integer=True)
DEPTH_DOMAIN = Domain(1.0, 1000.0, integer=True)
#: Gauss-Hermite nodes per variable for activations without a closed form: the mean-field
#: maps (evaluated a few times per call) and the tilted moments of the rate function
#: (evaluated in every cell of the dynamic programming).  Measured on tanh, sigma_w^2 = 1.5:
#: 24 nodes leave 4e-5 in q_2; 60 (1-D) and 48 (2-D) leave < 1e-9.  One-layer rate
#: I_1(0.6): 0.10670 (24 nodes), 0.10592 (32), 0.10576 (40), 0.10570 (64).
GAUSS_HERMITE_ORDER = {"norm": 60, "overlap": 48, "tilted": 32}
#: Continuation steps from the typical path to the goal in the Newton saddle-point solves.
SADDLE_CONTINUATION = 8
#: Scan cells of the first-layer tilt in the saddle-point shooting.
SHOOTING_SCAN = 4000
#: Tilts beyond this are not searched (|theta| X saturates doubles long before).
TILT_RANGE = 40


# -- section 2: the weight correlation -------------------------------------------------------
def weight_moments(perturbation: str) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    r""":math:`(\mathbb E[W\hat W], \mathbb E W^2, \mathbb E\hat W^2)` for
    :math:`W\sim\mathcal N(0,1)` (the scale drops out of :math:`\rho`).

    Dilution: :math:`\hat W = cW`, :math:`c\sim\mathrm{Bernoulli}(1-p)` independent of W.
    Binarization: :math:`\hat W = \mathrm{sgn}(W)`.  Expectations over W by sympy
    integration against the normal density (folded onto :math:`w > 0`).
    """
    w = sp.Symbol("w", positive=True)
    density = sp.exp(-(w**2) / 2) / sp.sqrt(2 * sp.pi)

    def normal_mean(f: sp.Expr) -> sp.Expr:
        folded = f.subs(W, w) + f.subs(W, -w)
        return sp.simplify(sp.integrate(sp.simplify(folded) * density, (w, 0, sp.oo)))

    if perturbation == "dilution":
        keep = 1 - P  # E over the mask c in {0, 1}: E[c] = E[c^2] = 1 - p
        return (sp.factor(keep * normal_mean(W**2)), normal_mean(W**2),
                sp.factor(keep * normal_mean(W**2)))
    if perturbation == "binarization":
        return normal_mean(W * sp.sign(W)), normal_mean(W**2), normal_mean(sp.sign(W) ** 2)
    raise DerivationError(f"unknown perturbation {perturbation!r}")


def weight_correlation(perturbation: str) -> tuple[sp.Expr, sp.Expr]:
    r""":math:`\rho = \mathbb E[W\hat W]/\sqrt{\mathbb EW^2\,\mathbb E\hat W^2}` and the
    variance ratio :math:`\hat\sigma^2/\sigma^2` (section 2; binarization at
    :math:`\alpha=\sigma`)."""
    cross, var, var_hat = weight_moments(perturbation)
    return sp.simplify(cross / sp.sqrt(var * var_hat)), sp.simplify(var_hat / var)


# -- sign units: section 4.3 -----------------------------------------------------------------
def xlogx(t: sp.Expr) -> sp.Expr:
    r""":math:`t\ln t` with its limit 0 at :math:`t = 0` (and 0 below, where it is unused)."""
    return sp.Piecewise((0, t <= 0), (t * sp.log(t), True))


def sign_one_layer_rate(mu: sp.Expr) -> sp.Expr:
    r"""Cramér rate of :math:`\bar X` for :math:`X=\pm1` with mean :math:`\mu`:
    :math:`\sup_\theta[\theta q-\ln(\cosh\theta+\mu\sinh\theta)]`.

    :math:`\Lambda'(\theta) = (t+\mu)/(1+\mu t)` with :math:`t=\tanh\theta` (checked by
    sympy), so :math:`t^* = (q-\mu)/(1-q\mu)`; the value at :math:`\theta^*=
    \operatorname{artanh}t^*` is checked at random points against the binary relative
    entropy it is printed as."""
    theta, m, t = (sp.Symbol("theta_s", real=True), sp.Symbol("m", real=True),
                   sp.Symbol("t_s", real=True))
    scgf = sp.log(sp.cosh(theta) + m * sp.sinh(theta))
    slope = (t + m) / (1 + m * t)
    if sp.simplify((sp.diff(scgf, theta) - slope.subs(t, sp.tanh(theta))).rewrite(sp.exp)) != 0:
        raise DerivationError("sign units: Lambda'(theta) is not (tanh + mu)/(1 + mu tanh)")
    roots = sp.solve(sp.Eq(slope, Q), t)
    if len(roots) != 1:
        raise DerivationError("sign units: Lambda'(theta) = q has no unique solution")
    theta_star = sp.atanh(roots[0])
    legendre = theta_star * Q - scgf.subs(theta, theta_star)
    kl = (xlogx((1 + Q) / 2) + xlogx((1 - Q) / 2) - (1 + Q) / 2 * sp.log((1 + m) / 2)
          - (1 - Q) / 2 * sp.log((1 - m) / 2))
    rng = random.Random(1)
    for _ in range(4):
        point = {Q: sp.Float(rng.uniform(-0.95, 0.95), 30), m: sp.Float(rng.uniform(-0.9, 0.9), 30)}
        if abs(legendre.subs(point).evalf(30) - kl.subs(point).evalf(30)) > 1e-20:
            raise DerivationError("sign units: the Legendre transform is not the binary "
                                  "relative entropy")
    return kl.subs(m, mu)


def line_envelope(rate: sp.Expr, new: sp.Symbol, old: sp.Symbol
                  ) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr] | None:
    r"""Write :math:`J(x|x') = A(x) + X(x)\,m(x') + c(x')` if possible, else None.

    Terms of the expanded rate in ``new`` only go to :math:`A`, in ``old`` only (or
    neither) to :math:`c`; each mixed term must separate as :math:`f_k(x)g_k(x')` with every
    :math:`f_k = \alpha_k + \beta_k X` for one function :math:`X` (constants
    :math:`\alpha_k,\beta_k`).  The result is checked by ``simplify`` of the difference.
    """
    terms = sp.Add.make_args(sp.expand(rate))
    offset, intercept = sp.Integer(0), sp.Integer(0)
    mixed: list[tuple[sp.Expr, sp.Expr]] = []
    for term in terms:
        syms = term.free_symbols
        if old not in syms:
            offset += term
        elif new not in syms:
            intercept += term
        else:
            parts = sp.separatevars(term, [new, old], dict=True)
            if parts is None:
                return None
            mixed.append((parts["coeff"] * parts[new], parts[old]))
    if not mixed:
        return None
    abscissa = mixed[0][0]
    slope = sp.Integer(0)
    d_abscissa = sp.diff(abscissa, new)
    if d_abscissa == 0:
        return None
    for f, g in mixed:
        beta = sp.cancel(sp.diff(f, new) / d_abscissa)
        alpha = sp.cancel(f - beta * abscissa)
        if new in beta.free_symbols or new in alpha.free_symbols:
            return None
        slope += beta * g
        intercept += alpha * g
    envelope = (offset, abscissa, slope, intercept)
    if sp.expand(envelope[0] + envelope[1] * envelope[2] + envelope[3] - rate) != 0:
        return None
    return envelope


def sign_saddle_items(mu_of: callable, dmu_of: callable) -> list[Item]:
    r"""Forward/backward saddle point (section 4.3) by shooting in :math:`\theta_1`.

    Forward: :math:`q_l = \frac{\tanh\theta_l+\mu(q_{l-1})}{1+\mu(q_{l-1})\tanh\theta_l}`;
    the backward equation
    :math:`\theta_l = \frac{\mu'(q_l)\tanh\theta_{l+1}}{1+\mu(q_l)\tanh\theta_{l+1}}` solved
    for :math:`\tanh\theta_{l+1} = \theta_l/(\mu'(q_l)-\theta_l\mu(q_l))`; the action
    :math:`S_l=\sum_{m\le l}[\ln(\cosh\theta_m+\mu(q_{m-1})\sinh\theta_m)-\theta_mq_m]`.
    After L layers :math:`\theta_L=\lambda`, :math:`\Lambda_L(\lambda) = S_L+\lambda q_L` and
    :math:`I_L(q_L) = -S_L` (Legendre).
    """
    mu, t = mu_of(Q_PREV), sp.tanh(TH)
    q_next = (t + mu) / (1 + mu * t)
    action = S_ACTION + sp.log(sp.cosh(TH) + mu * sp.sinh(TH)) - TH * q_next
    back = TH / (dmu_of(q_next) - TH * mu_of(q_next))
    theta_next = sp.Piecewise((sp.atanh(back), sp.Abs(back) < 1), (sp.nan, True))
    state = (Q_PREV, TH, S_ACTION, LAST)
    step = (q_next, theta_next, action, TH)
    init = (Q0, FIRST_TILT, sp.Integer(0), sp.Integer(0))
    ref = f"{REF}, section 4.3"

    def path(name: str, output: sp.Expr, meaning: str) -> Recurrence:
        return Recurrence(name, state, step, init, DEPTH, output, meaning, ref, internal=True)

    items: list[Item] = [
        path("saddle_overlap", Q_PREV, "q_L on the saddle path that starts with theta_1"),
        path("saddle_tilt", LAST, "theta_L = lambda on the saddle path that starts with theta_1"),
        path("saddle_action", S_ACTION, "S_L on the saddle path that starts with theta_1"),
    ]
    # |theta_1| = |mu'(q_1) t_2 / (1 + mu(q_1) t_2)| <= max mu' / (1 - max |mu|), |t_2| < 1;
    # the feasible theta_1 form a narrow interval for deep nets: scan it finely
    bound = sp.Min(sp.Integer(TILT_RANGE), sp.Rational(101, 100) * dmu_of(sp.Integer(1))
                   / (1 - sp.Abs(mu_of(sp.Integer(1)))))
    # one layer: theta_1 = lambda itself, bounded only by the search range
    one_layer = sp.Eq(DEPTH, 1)
    overlap_bound = sp.Piecewise((sp.Integer(TILT_RANGE), one_layer), (bound, True))
    tilt_bound = sp.Piecewise((sp.Abs(TILT) + 1, one_layer), (bound, True))
    items += [
        Root("tilt_for_overlap", FIRST_TILT, item_symbol("saddle_overlap") - Q, sp.nan,
             (-overlap_bound, overlap_bound), "theta_1 of the saddle path that ends at q_L = q",
             ref, scan_points=SHOOTING_SCAN, internal=True),
        Root("tilt_for_scgf", FIRST_TILT, item_symbol("saddle_tilt") - TILT, sp.nan,
             (-tilt_bound, tilt_bound),
             "theta_1 of the saddle path with theta_L = lambda", ref, scan_points=SHOOTING_SCAN,
             internal=True),
        Recurrence("rate_function_legendre", (FIRST_TILT,), (FIRST_TILT,),
                   (item_symbol("tilt_for_overlap"),), sp.Integer(0),
                   -item_symbol("saddle_action"),
                   "I_L(q) by the saddle point and Legendre transform (convex hull of I_L)",
                   ref),
        Recurrence("scgf", (FIRST_TILT,), (FIRST_TILT,), (item_symbol("tilt_for_scgf"),),
                   sp.Integer(0), item_symbol("saddle_action")
                   + TILT * item_symbol("saddle_overlap"),
                   "scaled cumulant generating function Lambda_L(lambda) of q_L", ref),
    ]
    return items


# -- ReLU units: section 4.4 -----------------------------------------------------------------
@cache
def quadrant_ratio_taylor(order: int = 7) -> tuple[sp.Rational, ...]:
    r"""Taylor coefficients :math:`a_n` of :math:`F(1+e)=\sum_n a_n e^n`.

    :math:`F(t)=\arccos t/\sqrt{1-t^2}` solves :math:`(1-t^2)F'-tF+1=0` (checked by
    sympy); in :math:`e=t-1` this gives :math:`a_0=1`, :math:`(2n+1)a_n=-n\,a_{n-1}`.
    """
    t = sp.Symbol("t", real=True)
    f = sp.acos(t) / sp.sqrt(1 - t**2)
    if sp.simplify((1 - t**2) * sp.diff(f, t) - t * f + 1) != 0:
        raise DerivationError("F(t) = acos(t)/sqrt(1 - t^2) does not solve its ODE")
    coefficients = [sp.Integer(1)]
    for n in range(1, order):
        coefficients.append(-n * coefficients[-1] / (2 * n + 1))
    return tuple(coefficients)


def quadrant_integral_ratio(t: sp.Expr) -> sp.Expr:
    r""":math:`F(t) = \arccos t/\sqrt{1-t^2}` (:math:`|t|<1`), its continuation
    :math:`\operatorname{arccosh} t/\sqrt{t^2-1}` (:math:`t>1`), and its Taylor polynomial
    within :math:`10^{-3}` of :math:`t = 1` (where both forms cancel; the first omitted
    term is below :math:`10^{-22}`)."""
    series = sum(a * (t - 1) ** n for n, a in enumerate(quadrant_ratio_taylor()))
    return sp.Piecewise(
        (series, sp.Abs(t - 1) < sp.Rational(1, 1000)),
        (sp.acos(t) / sp.sqrt(1 - t**2), t < 1),
        (sp.acosh(t) / sp.sqrt(t**2 - 1), True),
    )


def relu_tilted_mgf(r: sp.Expr, c: sp.Expr, kappa: sp.Expr,
                    ratio: callable = quadrant_integral_ratio) -> sp.Expr:
    r""":math:`M_r(\kappa;c)=\mathbb E\,e^{\kappa[X-\frac r2(Y+Z)]}` for ReLU units with
    unit variances and correlation c: the four sign quadrants (section 4.4),

    .. math:: M_r = \tfrac14+\tfrac{\arcsin c}{2\pi}
       + \frac{\sqrt D}{\pi}\frac{F(c/\sqrt g)}{\sqrt g}
       + \frac{\sqrt D}{2\pi}\frac{F(-(c+\kappa D)/g)}{g},\quad D=1-c^2,\ g=1+\kappa rD,

    with ``ratio`` as :math:`F` (an abstract function while differentiating).
    """
    d = 1 - c**2
    g = 1 + kappa * r * d
    return (sp.Rational(1, 4) + sp.asin(c) / (2 * sp.pi)
            + sp.sqrt(d) / sp.pi * ratio(c / sp.sqrt(g)) / sp.sqrt(g)
            + sp.sqrt(d) / (2 * sp.pi) * ratio(-(c + kappa * d) / g) / g)


def relu_rate_items(rho: sp.Expr, scale: sp.Expr) -> list[Item]:
    r"""Root :math:`\kappa^*` of :math:`\partial_\kappa\ln M_r = 0` inside the domain
    :math:`(-1/(rD),\ 1/((1-r)(1+c)))` and :math:`J(r|r') = -\ln M_r(\kappa^*)`, with
    ``scale`` the positive slope of the ReLU (it drops out of r)."""
    c = rho * Q_PREV
    mgf = relu_tilted_mgf(Q, c, KAPPA)
    d_log = sp.diff(mgf, KAPPA) / mgf
    dd_log = sp.diff(mgf, KAPPA, 2) / mgf - d_log**2
    d = 1 - c**2
    shrink = sp.Rational(1, 10**9)
    # the domain, cut at |kappa| = 1e10 (at r = 0 and r = 1 the supremum is approached as
    # kappa -> -inf / +inf: the bracket ends are candidates, the least M_r wins)
    lower = -(1 - shrink) / sp.Max(Q * d, sp.Rational(1, 10**10))
    upper = (1 - shrink) / sp.Max((1 - Q) * (1 + c), sp.Rational(1, 10**10))
    ref = f"{REF}, section 4.4"
    return [
        Root("chernoff_tilt", KAPPA, d_log, dd_log, (lower, upper),
             "kappa* maximising -ln M_r(kappa; rho r') (ln M_r is convex)", ref,
             scan_points=2, select="min_objective", objective=mgf, candidates=(lower, upper),
             internal=True),
        Formula("one_layer_rate", -sp.log(mgf.subs(KAPPA, item_symbol("chernoff_tilt"))),
                "one-layer rate J(r | r') = -ln M_r(kappa*; rho r') of the normalised overlap",
                ref),
    ]


class _QuadrantRatio(sp.Function):
    """Placeholder for F(t) while differentiating (its derivatives are _QuadrantRatio1, 2)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return _QuadrantRatio1(self.args[0])


class _QuadrantRatio1(sp.Function):
    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return _QuadrantRatio2(self.args[0])


class _QuadrantRatio2(sp.Function):
    pass


def stage_derivatives(stage: sp.Expr, variables: tuple[sp.Symbol, ...]
                      ) -> tuple[tuple[sp.Expr, ...], tuple[tuple[sp.Expr, ...], ...]]:
    """Gradient and Hessian of ``stage`` in ``variables`` (sympy ``diff``)."""
    gradient = tuple(sp.diff(stage, v) for v in variables)
    hessian = tuple(tuple(sp.diff(g, v) for v in variables) for g in gradient)
    return gradient, hessian


def relu_stage() -> tuple[sp.Expr, tuple[sp.Expr, ...], tuple[tuple[sp.Expr, ...], ...]]:
    r"""Stage function :math:`\ell(\kappa, r, r') = \ln M_r(\kappa; \rho r')` of the ReLU
    saddle point, with its gradient and Hessian in :math:`(\kappa, r, r')`.

    :math:`J(r|r') = -\min_\kappa\ell` (section 4.4).  Differentiated with :math:`F` as an
    abstract function, then :math:`F, F', F''` replaced by their branches (arccos, arccosh
    and the Taylor polynomial near :math:`t = 1`): the derivative of the whole Piecewise is
    six times larger.
    """
    mgf = relu_tilted_mgf(R, item_symbol("weight_correlation") * Q_PREV, KAPPA,
                          ratio=_QuadrantRatio)
    stage = sp.log(mgf)
    gradient, hessian = stage_derivatives(stage, (KAPPA, R, Q_PREV))
    t = sp.Symbol("t", real=True)
    ratio = quadrant_integral_ratio(t)
    first = sp.diff(ratio, t)
    second = sp.diff(first, t)

    def concrete(e: sp.Expr) -> sp.Expr:
        return (e.replace(_QuadrantRatio2, sp.Lambda(t, second))
                .replace(_QuadrantRatio1, sp.Lambda(t, first))
                .replace(_QuadrantRatio, sp.Lambda(t, ratio)))

    return (concrete(stage), tuple(concrete(e) for e in gradient),
            tuple(tuple(concrete(e) for e in row) for row in hessian))


def relu_saddle_items(mu_of: callable) -> list[Item]:
    r"""ReLU saddle point of the path (section 4.2 with the scalar chain of section 4.4).

    Stationary point of :math:`\sum_l \ln M_{r_l}(\kappa_l;\rho r_{l-1})` with the output
    constraint (target) or tilt: forward :math:`\partial_\kappa\ln M = 0` (the Chernoff
    condition of each layer), backward :math:`\partial_{r_l}[\ell_l+\ell_{l+1}]=0`.  Target
    mode gives :math:`I_L(r) = \lambda r - \Lambda_L(\lambda)` with :math:`\lambda = I_L'(r)`
    (Legendre), tilt mode the SCGF :math:`\Lambda_L(\lambda)`.
    """
    stage, gradient, hessian = relu_stage()
    ref = f"{REF}, sections 4.2 and 4.4"
    common = dict(conjugate=(KAPPA,), state=(R,), previous=(Q_PREV,), stage=stage,
                  stage_gradient=gradient, stage_hessian=hessian, start=(Q0,),
                  typical_step=(mu_of(Q_PREV),), observable=R,
                  observable_gradient=(sp.Integer(1),),
                  observable_hessian=((sp.Integer(0),),), steps=DEPTH, action=S_ACTION,
                  multiplier=LAST, endpoint=ENDPOINT, continuation=SADDLE_CONTINUATION,
                  ref=ref)
    return [
        PathSaddle("rate_function_legendre", goal=Q, mode="target",
                   output=sp.Piecewise((-S_ACTION, sp.And(Q >= 0, Q <= 1)), (sp.oo, True)),
                   meaning="I_L(r) = lambda r - Lambda_L(lambda) at the saddle point of the "
                   "path (Legendre; continuation from the typical path); +inf outside "
                   "0 <= r <= 1", **common),
        PathSaddle("scgf", goal=TILT, mode="tilt", output=S_ACTION + TILT * ENDPOINT,
                   meaning="scaled cumulant generating function Lambda_L(lambda) of r_L "
                   "(saddle point of the path, continuation from lambda = 0)", **common),
    ]


# -- generic activations: Gauss-Hermite ----------------------------------------------------
def gauss_hermite_items(phi: sp.Expr, rho: sp.Expr, scale: sp.Expr) -> list[Item]:
    r"""Mean-field map of :math:`m = (q, Q, \hat Q)` and the saddle point of its path.

    :math:`h=\sigma\sqrt{Q'}z_1`, :math:`\hat h=\hat\sigma\sqrt{\hat Q'}(cz_1+\sqrt{1-c^2}z_2)`,
    :math:`c=\rho q'/\sqrt{Q'\hat Q'}`; :math:`Q=\mathbb E\phi(h)^2`,
    :math:`\hat Q=\mathbb E\phi(\hat h)^2`, :math:`q=\mathbb E\phi(h)\phi(\hat h)`
    (section 3).  The stage function of the saddle point (section 4.2) is
    :math:`\ell(\theta, m, m') = \Lambda(\theta; m') - \theta\cdot m` with
    :math:`\Lambda = \ln\mathbb E e^{\theta\cdot T}`,
    :math:`T = (\phi(h)\phi(\hat h), \phi(h)^2, \phi(\hat h)^2)`; its derivatives in
    :math:`v = (\theta, m')` are ratios of the tilted moments
    :math:`\mathbb E\,\partial_v e^{\theta\cdot T}` and
    :math:`\mathbb E\,\partial_v\partial_w e^{\theta\cdot T}` (the integrand differentiated
    by sympy; :math:`h, \hat h` depend on :math:`m'` through the fixed normal nodes).
    The observable is :math:`s_L = q_L/\sqrt{Q_L^*\hat Q_L^*}` (typical norms of layer L).
    """
    norm_method, overlap_method, tilted_method = (
        f"gauss-hermite:{GAUSS_HERMITE_ORDER[k]}" for k in ("norm", "overlap", "tilted"))
    ref = f"{REF}, section 3 (general phi)"

    def act(arg: sp.Expr) -> sp.Expr:
        return phi.subs(ACTIVATION_VARIABLE, arg)

    sigma_hat2 = SIGMA2 * scale
    c = rho * Q_PREV / sp.sqrt(NORM * NORM_HAT)
    h = sp.sqrt(SIGMA2 * NORM) * Z1
    h_hat = sp.sqrt(sigma_hat2 * NORM_HAT) * (c * Z1 + sp.sqrt(1 - c**2) * Z2)
    mean_field_state = (Q_PREV, NORM, NORM_HAT)
    mean_field_step = (item_symbol("pair_overlap_map"), item_symbol("norm_map"),
                       item_symbol("norm_hat_map"))

    def mean_field(name: str, output: sp.Expr, meaning: str, internal: bool) -> Recurrence:
        return Recurrence(name, mean_field_state, mean_field_step,
                          (Q0, sp.Integer(1), sp.Integer(1)), DEPTH, output, meaning, ref,
                          internal=internal)

    items: list[Item] = [
        Expectation("norm_map", act(sp.sqrt(SIGMA2 * NORM) * Z1) ** 2, (Z1,), norm_method,
                    "Q' = E phi(h)^2 (reference network)", ref, internal=True),
        Expectation("norm_hat_map", act(sp.sqrt(sigma_hat2 * NORM_HAT) * Z1) ** 2, (Z1,),
                    norm_method, "Q-hat' = E phi(h-hat)^2 (perturbed network)", ref,
                    internal=True),
        Expectation("pair_overlap_map", act(h) * act(h_hat), (Z1, Z2), overlap_method,
                    "q' = E phi(h) phi(h-hat)", ref, internal=True),
        mean_field("mean_field", Q_PREV / sp.sqrt(NORM * NORM_HAT),
                   "typical normalised overlap q_L / sqrt(Q_L Q-hat_L) at layer L", False),
        mean_field("typical_norm", NORM, "typical norm Q_L at layer L", True),
        mean_field("typical_norm_hat", NORM_HAT, "typical norm Q-hat_L at layer L", True),
    ]
    # tilted moments: E f, E d_v f, E d_v d_w f with f = exp(theta . T), v in (theta, m')
    pair = (act(h) * act(h_hat), act(h) ** 2, act(h_hat) ** 2)
    weight = sp.exp(sum(t * x for t, x in zip(TILTS3, pair, strict=True)))
    variables = (*TILTS3, *mean_field_state)
    tags = ("t1", "t2", "t3", "q", "Q", "Qh")
    saddle_ref = f"{REF}, section 4.2"
    items.append(Expectation("tilted_moment", weight, (Z1, Z2), tilted_method,
                             "E exp(theta . T), T = (phi(h) phi(h-hat), phi(h)^2, "
                             "phi(h-hat)^2)", saddle_ref, internal=True))
    derivative = _tilted_derivatives(phi, weight, h, h_hat, sigma_hat2, rho)
    first: dict[int, sp.Expr] = {}
    second: dict[tuple[int, int], sp.Expr] = {}
    for a, va in enumerate(variables):
        name = f"tilted_moment_{tags[a]}"
        items.append(Expectation(name, derivative((a,)), (Z1, Z2), tilted_method,
                                 f"E d/d{va.name} exp(theta . T)", saddle_ref, internal=True))
        first[a] = item_symbol(name)
        for b in range(a, len(variables)):
            name2 = f"tilted_moment_{tags[a]}_{tags[b]}"
            items.append(Expectation(name2, derivative((a, b)), (Z1, Z2), tilted_method,
                                     f"E d2/d{va.name} d{variables[b].name} exp(theta . T)",
                                     saddle_ref, internal=True))
            second[a, b] = second[b, a] = item_symbol(name2)
    zero = item_symbol("tilted_moment")
    # gradient and Hessian of ell in (theta, m, m'): Lambda's in v = (theta, m') by the ratios
    log_gradient = {a: first[a] / zero for a in range(6)}
    position = {0: 0, 1: 1, 2: 2, 3: 6, 4: 7, 5: 8}  # v index -> index in (theta, m, m')
    gradient = [sp.Integer(0)] * 9
    hessian = [[sp.Integer(0)] * 9 for _ in range(9)]
    for a in range(6):
        gradient[position[a]] = log_gradient[a]
        for b in range(6):
            hessian[position[a]][position[b]] = (second[a, b] / zero
                                                 - log_gradient[a] * log_gradient[b])
    for k in range(3):
        gradient[k] -= STATE3[k]
        gradient[3 + k] = -TILTS3[k]
        hessian[k][3 + k] = hessian[3 + k][k] = sp.Integer(-1)
    stage = sp.log(zero) - sum(t * m for t, m in zip(TILTS3, STATE3, strict=True))
    scale_out = sp.sqrt(item_symbol("typical_norm") * item_symbol("typical_norm_hat"))
    observable = STATE3[0] / scale_out
    common = dict(conjugate=TILTS3, state=STATE3, previous=mean_field_state, stage=stage,
                  stage_gradient=tuple(gradient),
                  stage_hessian=tuple(tuple(row) for row in hessian),
                  start=(Q0, sp.Integer(1), sp.Integer(1)), typical_step=mean_field_step,
                  observable=observable,
                  observable_gradient=(1 / scale_out, sp.Integer(0), sp.Integer(0)),
                  observable_hessian=((sp.Integer(0),) * 3,) * 3, steps=DEPTH,
                  action=S_ACTION, multiplier=LAST, endpoint=ENDPOINT,
                  continuation=SADDLE_CONTINUATION, ref=saddle_ref)
    items += [
        PathSaddle("rate_function", goal=Q, mode="target", output=-S_ACTION,
                   meaning="rate function I_L(s) of s_L = q_L / sqrt(Q_L* Q-hat_L*) (typical "
                   "norms of layer L): the stationary path of the 3-D state (q, Q, Q-hat) "
                   "with lambda = I_L'(s), by Newton continuation from the typical path",
                   **common),
        PathSaddle("scgf", goal=TILT, mode="tilt", output=S_ACTION + TILT * ENDPOINT,
                   meaning="scaled cumulant generating function Lambda_L(lambda) of s_L "
                   "(saddle point of the path of (q, Q, Q-hat))", **common),
    ]
    return items


def _tilted_derivatives(phi: sp.Expr, weight: sp.Expr, h: sp.Expr, h_hat: sp.Expr,
                        sigma_hat2: sp.Expr, rho: sp.Expr):
    r"""``derivative(indices)``: the integrand of :math:`\partial_v\ldots\mathbb E
    e^{\theta\cdot T}` for ``indices`` into :math:`v = (\theta_1,\theta_2,\theta_3, q', Q',
    \hat Q')`, as a function of the normal nodes.

    A smooth activation is differentiated through :math:`h, \hat h` (pathwise: the
    integrand's own derivative).  A kinked one (its derivative has a sign, step or delta) is
    differentiated through the Gaussian density instead (score function, Price-free):
    :math:`\partial_v\mathbb E_C f = \mathbb E_C[f\,\partial_v\ln p_C]`,
    :math:`\partial_v\partial_w\mathbb E_C f = \mathbb E_C[f(\partial_v\partial_w\ln p_C +
    \partial_v\ln p_C\,\partial_w\ln p_C)]` (plus the :math:`\theta`-derivatives of f),
    which needs no derivative of :math:`\phi`.
    """
    variables = (*TILTS3, Q_PREV, NORM, NORM_HAT)
    kinks = (sp.DiracDelta, sp.Heaviside, sp.sign, sp.Derivative, sp.Piecewise, sp.Max, sp.Min)
    first = sp.diff(phi, ACTIVATION_VARIABLE)
    if not (first.has(*kinks) or sp.diff(first, ACTIVATION_VARIABLE).has(*kinks)):
        def pathwise(indices: tuple[int, ...]) -> sp.Expr:
            return sp.diff(weight, *(variables[i] for i in indices))
        return pathwise
    x1, x2 = sp.symbols("x_1 x_2", real=True)
    var, var_hat = SIGMA2 * NORM, sigma_hat2 * NORM_HAT
    cov = rho * sp.sqrt(SIGMA2 * sigma_hat2) * Q_PREV
    det = var * var_hat - cov**2
    log_density = -sp.log(det) / 2 - (var_hat * x1**2 - 2 * cov * x1 * x2 + var * x2**2) / (
        2 * det)
    tilt_exponent = sum(t * phi.subs(ACTIVATION_VARIABLE, a) * phi.subs(ACTIVATION_VARIABLE, b)
                        for t, (a, b) in zip(TILTS3, ((x1, x2), (x1, x1), (x2, x2)),
                                             strict=True))
    exponent = tilt_exponent + log_density  # f p_C up to a constant, x held fixed

    def score(indices: tuple[int, ...]) -> sp.Expr:
        grads = [sp.diff(exponent, variables[i]) for i in indices]
        factor = grads[0] if len(indices) == 1 else (
            sp.diff(grads[0], variables[indices[1]]) + grads[0] * grads[1])
        return weight * factor.subs({x1: h, x2: h_hat}, simultaneous=True)
    return score


# -- the FormulaSet ------------------------------------------------------------------------
def _positive_multiple(phi: sp.Expr, of: sp.Expr) -> sp.Expr | None:
    ratio = sp.simplify(phi / of)
    return ratio if ratio.is_number and ratio.is_positive else None


def derive(spec: ModelSpec) -> FormulaSet:
    """The large-deviation FormulaSet of a model (see the module docstring): the weight
    correlation and the activation's bound, the mean field where the Gaussian kernel has a
    closed form, then the items of the activation's route (:data:`ROUTES`)."""
    phi = parse_activation(spec["activation"], spec.source)
    perturbation = spec["perturbation"]
    rho_expr, scale = weight_correlation(perturbation)
    route, kernels, relu_scale = _route(phi)
    params = [
        Parameter(P, "dilution probability p (fraction of weights set to zero; unused by "
                  "binarization)",
                  PROBABILITY, spec.get("p", 0.0), "p"),
        Parameter(DEPTH, "number of layers L", DEPTH_DOMAIN, spec["depth"], "L"),
        Parameter(Q0, "input overlap q_0", OVERLAP, spec["input_overlap"], "q_0"),
        Parameter(Q, "output overlap at which the rate function is evaluated", REAL, 0.5, "q"),
        Parameter(Q_PREV, "overlap at the previous layer (argument of the one-layer rate)",
                  OVERLAP, 1.0, "q'"),
    ]
    bound = activation_bound(phi)
    items: list[Item] = [
        Formula("weight_correlation", rho_expr,
                f"rho = E[W What] / sqrt(E W^2 E What^2) for {perturbation}",
                f"{REF}, section 2"),
        Formula("activation_bound", bound.value,
                "sup_x |phi(x)| over the reals (+inf: unbounded, or not decided symbolically); "
                "the samplers of the rate function need it finite", BOUND_REF),
    ]
    notes = [f"Activation phi(x) = {sp.sstr(phi)}; perturbation: {perturbation} "
             f"(variance ratio sigma-hat^2 / sigma^2 = {sp.sstr(scale)}).",
             f"sup |phi| = {sp.sstr(bound.value)}: {bound.reason}."]
    if route in ("sign", "relu", "closed"):
        items += mean_field_items(kernels, _lower_end(route, kernels))
        notes.append(f"Closed-form Gaussian kernel K(c) = {sp.sstr(kernels.kernel)}, "
                     f"E phi^2 = {sp.sstr(kernels.second_moment)} (quadrant integrals).")
    more = ROUTES[route](spec, _Route(phi, kernels, relu_scale, scale, route))
    return _formula_set(spec, params + more.params, items + more.items, notes + more.notes)


@dataclass(frozen=True)
class _Route:
    """What a route's builder needs of the activation."""

    phi: sp.Expr
    kernels: gaussian.ActivationKernels | None
    relu_scale: sp.Expr | None
    scale: sp.Expr  # the variance ratio sigma-hat^2 / sigma^2 of the perturbation
    name: str


@dataclass(frozen=True)
class _RouteItems:
    """A route's parameters, items and notes (appended, in order, to the common ones)."""

    params: list[Parameter]
    items: list[Item]
    notes: list[str]


def _route(phi: sp.Expr) -> tuple[str, gaussian.ActivationKernels | None, sp.Expr | None]:
    """``"sign"``/``"relu"`` for positive multiples of those, ``"closed"`` for other
    positively homogeneous activations with a closed-form kernel, else ``"quadrature"``; the
    kernels and the ReLU scale."""
    x = ACTIVATION_VARIABLE
    sign_scale = _positive_multiple(phi, sp.sign(x))
    relu_scale = _positive_multiple(phi, sp.Max(x, 0))
    kernels = gaussian.activation_kernels(phi)
    homogeneous = kernels is not None and kernels.degree is not None
    route = "sign" if sign_scale else "relu" if relu_scale else "closed" if homogeneous \
        else "quadrature"
    return route, kernels, relu_scale


def _lower_end(route: str, kernels: gaussian.ActivationKernels) -> sp.Integer:
    """The lowest overlap the mean field reaches: 0 for ReLU units and activations with a
    nonzero mean and nonnegative pieces, else -1."""
    if route == "relu" or (route != "sign" and kernels.mean != 0 and all(
            coeff >= 0 for piece in (kernels.pieces.positive, kernels.pieces.negative)
            for coeff in piece.coeffs())):
        return sp.Integer(0)
    return sp.Integer(-1)


def _maps(kernels: gaussian.ActivationKernels
          ) -> tuple[Callable[[sp.Expr], sp.Expr], Callable[[sp.Expr], sp.Expr]]:
    r"""The mean-field map :math:`\mu(q') = \kappa(\rho q')` and its derivative in q'."""
    rho = item_symbol("weight_correlation")
    kappa = kernels.normalised_kernel

    def mu_of(arg: sp.Expr) -> sp.Expr:
        return kappa.subs(gaussian.C, rho * arg)

    def dmu_of(arg: sp.Expr) -> sp.Expr:
        return rho * sp.diff(kappa, gaussian.C).subs(gaussian.C, rho * arg)

    return mu_of, dmu_of


def mean_field_items(kernels: gaussian.ActivationKernels, lower: sp.Integer) -> list[Item]:
    """The closed-form mean field: one layer of the map, its iterate to layer L, the largest
    fixed point and its slope, and N Var by the delta method (sections 3, 4.2)."""
    rho = item_symbol("weight_correlation")
    mu_of, dmu_of = _maps(kernels)
    return [
        Formula("overlap_map", mu_of(Q_PREV),
                "one layer of the mean-field map: kappa(rho q') = K(rho q') / E phi^2",
                f"{REF}, section 3"),
        Recurrence("typical_overlap", (R,), (mu_of(R),), (Q0,), DEPTH, R,
                   "typical (mean-field) normalised overlap at layer L", f"{REF}, section 3"),
        Root("fixed_point", R, mu_of(R) - R, dmu_of(R) - 1,
             (sp.Integer(0) if lower == 0 else sp.Integer(-1), sp.Integer(1)),
             "the largest fixed point r* = kappa(rho r*) of the mean-field map",
             f"{REF}, section 3", scan_points=400, select="last"),
        Formula("fixed_point_slope", dmu_of(item_symbol("fixed_point")),
                "slope of the map at r*: stable if < 1", f"{REF}, section 3"),
        Recurrence("overlap_variance", (R, V), (mu_of(R), _one_step_variance(kernels,
                   rho * R) + dmu_of(R) ** 2 * V), (Q0, sp.Integer(0)), DEPTH, V,
                   "N Var(r_L) as N -> infinity (delta method)", f"{REF}, section 4.2"),
    ]


def _dynamic_programming(step_rate: sp.Expr, lower: sp.Integer,
                         envelope: tuple | None) -> MinPlusRecursion:
    return MinPlusRecursion(
        "rate_function", Q, Q_PREV, step_rate, Q0, DEPTH, lower, sp.Integer(1), GRID,
        "rate function I_L(q) of the output overlap (contraction principle, dynamic "
        "programming)", f"{REF}, section 4.2", envelope=envelope)


def _grid_parameter(spec: ModelSpec) -> Parameter:
    return Parameter(GRID, "points of the dynamic-programming grid (odd: q = 0 on the grid)",
                     GRID_DOMAIN, spec.get("grid_size") or 1001, "G")


def _tilt_parameter() -> Parameter:
    return Parameter(TILT, "tilt lambda of the generating functions", REAL, 0.5, r"\lambda")


def sign_route(spec: ModelSpec, route: _Route) -> _RouteItems:
    """Sign units: the one-layer rate is a binary relative entropy, affine in (1 + q)/2 at
    fixed q' (the DP takes a lower envelope of lines), and the forward/backward saddle point
    by shooting with its SCGF and Legendre route (section 4.3)."""
    mu_of, dmu_of = _maps(route.kernels)
    rate = sign_one_layer_rate(mu_of(Q_PREV))
    envelope = line_envelope(rate, Q, Q_PREV)
    items: list[Item] = [
        Formula("one_layer_scgf", sp.log(sp.cosh(TILT) + mu_of(Q_PREV) * sp.sinh(TILT)),
                "one-layer SCGF Lambda(lambda | q') = ln E exp(lambda s s-hat)",
                f"{REF}, section 4.3"),
        Formula("one_layer_rate", rate, "one-layer rate J(q | q') = sup_lambda [lambda q - "
                "Lambda(lambda | q')] = binary relative entropy", f"{REF}, section 4.3"),
        _dynamic_programming(rate, _lower_end("sign", route.kernels), envelope),
        *sign_saddle_items(mu_of, dmu_of),
    ]
    params = [_grid_parameter(spec), _tilt_parameter(),
              Parameter(FIRST_TILT, "tilt theta_1 of the first layer (saddle-point shooting)",
                        REAL, 0.0, r"\theta_1")]
    notes = ["One-layer rate affine in (1 + q)/2 at fixed q': the DP minimum over q' is a "
             "lower envelope of lines (O(G) per layer)."] if envelope is not None else []
    return _RouteItems(params, items, notes)


def relu_route(spec: ModelSpec, route: _Route) -> _RouteItems:
    """ReLU units: the one-layer SCGF in quadrant closed form and the Chernoff rate, the DP
    over the overlap, and the saddle point of the path (section 4.4)."""
    mu_of, _ = _maps(route.kernels)
    rho = item_symbol("weight_correlation")
    c_prev = rho * Q_PREV
    finite = sp.And(TILT * Q * (1 - c_prev**2) > -1, TILT * (1 - Q) * (1 + c_prev) < 1)
    items: list[Item] = [
        Formula("one_layer_scgf",
                sp.Piecewise((sp.log(relu_tilted_mgf(Q, c_prev, TILT)), finite), (sp.oo, True)),
                "one-layer SCGF ln M_r(lambda; rho r') = ln E exp(lambda [X - r (Y + Z) / 2]) "
                "(quadrant closed form; +inf outside -1/(rD) < lambda < 1/((1-r)(1+c)))",
                f"{REF}, section 4.4"),
        *relu_rate_items(rho, route.relu_scale),
        _dynamic_programming(item_symbol("one_layer_rate"), sp.Integer(0), None),
        *relu_saddle_items(mu_of),
    ]
    return _RouteItems([_grid_parameter(spec), _tilt_parameter()], items, [])


def quadrature_route(spec: ModelSpec, route: _Route) -> _RouteItems:
    """Other activations: Gaussian expectations by Gauss-Hermite quadrature, the typical
    overlap of the (q, Q, Q-hat) mean field (unless the kernel has a closed form), and the rate
    of the whole 3-D chain as the action of its stationary path (section 4.5)."""
    notes = []
    if route.name == "closed":
        notes.append("No closed-form one-layer rate for this activation: the rate "
                     "function uses Gauss-Hermite quadrature with typical norms.")
    params = [
        Parameter(SIGMA2, "weight variance sigma_w^2 (N Var W)", POSITIVE,
                  spec.get("weight_variance", 1.0), r"\sigma_w^2"),
        Parameter(NORM, "norm Q of the reference layer (state)", POSITIVE, 1.0, "Q"),
        Parameter(NORM_HAT, "norm Q-hat of the perturbed layer (state)", POSITIVE, 1.0,
                  r"\hat Q"),
        *(Parameter(t, f"conjugate of {m} in the saddle point (state)", REAL, 0.0,
                    rf"\theta_{k + 1}")
          for k, (t, m) in enumerate(zip(TILTS3, ("q", "Q", "Q-hat"), strict=True))),
        Parameter(TILT, "tilt lambda of the generating function", REAL, 0.5, r"\lambda"),
    ]
    gh = gauss_hermite_items(route.phi, item_symbol("weight_correlation"), route.scale)
    if route.name == "quadrature":
        gh = [_renamed(i, "mean_field", "typical_overlap") for i in gh]
    else:
        gh = [i for i in gh if i.name != "mean_field"]
    notes.append("Rate function of s_L = q_L / sqrt(Q_L* Q-hat_L*), Q_L*, Q-hat_L* the "
                 "typical (mean-field) norms of layer L: a fixed rescaling of q_L whose "
                 "typical value is typical_overlap.  The norms of every layer fluctuate "
                 "with the overlap: the state is (q, Q, Q-hat) and the rate is the action "
                 "of the stationary path of the 3-D chain (Newton continuation from the "
                 "typical path), exact up to quadrature where that path is the minimising "
                 "one.")
    return _RouteItems(params, gh, notes)


#: The builder of each route's parameters, items and notes.
ROUTES: dict[str, Callable[[ModelSpec, _Route], _RouteItems]] = {
    "sign": sign_route, "relu": relu_route, "closed": quadrature_route,
    "quadrature": quadrature_route}


def _formula_set(spec: ModelSpec, params: list[Parameter], items: list[Item],
                 notes: list[str]) -> FormulaSet:
    return FormulaSet(
        name=spec.stem, family="large_deviation", source=spec.source,
        params=tuple(params), items=tuple(items),
        latex_names=(("weight_correlation", r"\rho"),
                     ("activation_bound", r"\sup_x \lvert\phi(x)\rvert"),
                     ("overlap_map", r"\mu(q')"),
                     ("typical_overlap", "q_L"), ("one_layer_rate", r"J(q \mid q')"),
                     ("rate_function", "I_L(q)"), ("overlap_variance", r"N\,\mathrm{Var}\,q_L"),
                     ("r", "r"), ("V", "V"), ("vartheta", r"\vartheta"), ("S", "S"),
                     ("lambda_L", r"\lambda_L"), ("Q_before", "Q'"),
                     ("Qhat_before", r"\hat Q'"), ("norm", "Q"), ("norm_hat", r"\hat Q")),
        notes=tuple(notes))


def _one_step_variance(k: gaussian.ActivationKernels, c: sp.Expr) -> sp.Expr:
    r""":math:`\nabla g^\top\Sigma_T\nabla g` for :math:`g(x,y,z)=x/\sqrt{yz}` at the means
    :math:`(K, E_2, E_2)` of :math:`T=(\phi(u)\phi(v),\phi(u)^2,\phi(v)^2)` (section 4.2)."""
    kc, e2 = k.kernel.subs(gaussian.C, c), k.second_moment
    var_x = k.xx.subs(gaussian.C, c) - kc**2
    cov_xy = k.xy.subs(gaussian.C, c) - kc * e2
    var_y = k.yy - e2**2
    cov_yz = k.xx.subs(gaussian.C, c) - e2**2
    return var_x / e2**2 - 2 * kc * cov_xy / e2**3 + kc**2 * (var_y + cov_yz) / (2 * e2**4)


def _renamed(item: Item, old: str, new: str) -> Item:
    return item if item.name != old else replace(item, name=new)

