r"""Gaussian expectations of activations for correlated pre-activations (math only).

For a pair :math:`(u, v)` of standard normals with correlation :math:`c` and an activation
:math:`\phi` that is a polynomial on each half-line (sign, ReLU, ``abs``, leaky ReLU,
``relu(x)**2``, ...), every moment :math:`\mathbb E[f(u)g(v)]` of piecewise polynomials is
a sum over the four sign quadrants of

.. math::
    Q_{a,b}(c) = \mathbb E[u^a v^b;\ u>0, v>0]
    = \frac{2^{(a+b)/2}\,\Gamma\!\big(\tfrac{a+b}{2}+1\big)}{2\pi}
      \int_{-\beta}^{\pi/2}\cos^a t\,\sin^b(t+\beta)\,dt,\qquad \beta=\arcsin c,

(polar coordinates of :math:`u = z_1`, :math:`v = c z_1 + \sqrt{1-c^2} z_2`), integrated
exactly by sympy.  This gives the arcsine kernel of sign units and the arc-cosine kernel of
ReLU units; Price's theorem :math:`\partial_c\mathbb E[\phi(u)\phi(v)] =
\mathbb E[\phi'(u)\phi'(v)]` is an independent check (tests).  Activations without this
structure (``tanh``, ``erf``, ...) have no closed form here: their callers use
Gauss-Hermite quadrature instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from .activation import ACTIVATION_VARIABLE

X = ACTIVATION_VARIABLE
#: The correlation of the pair (u, v).
C = sp.Symbol("c", real=True)
_T = sp.Symbol("t", real=True)
_BETA = sp.Symbol("beta", real=True)
_POS = sp.Symbol("x_pos", positive=True)


@dataclass(frozen=True)
class HalfLinePolynomials:
    r""":math:`\phi(x) = P_+(x)` for :math:`x > 0` and :math:`P_-(x)` for :math:`x < 0`."""

    positive: sp.Poly
    negative: sp.Poly

    def degree_if_homogeneous(self) -> int | None:
        """``d`` if both pieces are multiples of :math:`x^d` (positive homogeneity)."""
        degrees = set()
        for piece in (self.positive, self.negative):
            monomials = [m for m, coeff in zip(piece.monoms(), piece.coeffs(), strict=True)
                         if coeff != 0]
            if len(monomials) > 1:
                return None
            degrees.update(m[0] for m in monomials)
        if len(degrees) > 1:
            return None
        return degrees.pop() if degrees else None

    def squared(self) -> HalfLinePolynomials:
        return HalfLinePolynomials(self.positive**2, self.negative**2)


def half_line_polynomials(phi: sp.Expr) -> HalfLinePolynomials | None:
    r"""The two polynomial pieces of ``phi`` on :math:`x>0` and :math:`x<0`, or None."""
    pieces = []
    for sign in (1, -1):
        piece = sp.piecewise_fold(phi.subs(X, sign * _POS))
        piece = sp.simplify(piece)
        if piece.has(sp.Piecewise, sp.Heaviside, sp.sign, sp.Abs, sp.Max, sp.Min):
            return None
        piece = sp.expand(piece.subs(_POS, sign * X))
        if not piece.is_polynomial(X):
            return None
        pieces.append(sp.Poly(piece, X))
    return HalfLinePolynomials(*pieces)


@cache
def quadrant_moment(a: int, b: int) -> sp.Expr:
    r""":math:`Q_{a,b}(c)=\mathbb E[u^a v^b;\,u>0,v>0]` in closed form (module docstring)."""
    s_beta, c_beta = sp.Symbol("s_beta", real=True), sp.Symbol("c_beta", positive=True)
    integrand = sp.expand(sp.cos(_T) ** a * (sp.sin(_T) * c_beta + sp.cos(_T) * s_beta) ** b)
    antiderivative = sp.integrate(integrand, _T)
    angular = antiderivative.subs(_T, sp.pi / 2) - antiderivative.subs(_T, -_BETA)
    angular = angular.subs({sp.sin(_BETA): s_beta, sp.cos(_BETA): c_beta})
    angular = angular.subs({s_beta: C, c_beta: sp.sqrt(1 - C**2), _BETA: sp.asin(C)})
    radial = 2 ** sp.Rational(a + b, 2) * sp.gamma(sp.Rational(a + b, 2) + 1)
    return sp.simplify(radial * angular / (2 * sp.pi))


def half_moment(k: int) -> sp.Expr:
    r""":math:`\mathbb E[z^k;\,z>0] = 2^{k/2}\Gamma(\frac{k+1}{2})/(2\sqrt\pi)`."""
    return 2 ** sp.Rational(k, 2) * sp.gamma(sp.Rational(k + 1, 2)) / (2 * sp.sqrt(sp.pi))


def pair_moment(f: HalfLinePolynomials, g: HalfLinePolynomials) -> sp.Expr:
    r""":math:`\mathbb E[f(u)g(v)]` for unit variances and correlation ``C``.

    Quadrant :math:`(s_u, s_v)`: substitute :math:`u = s_u u'`, :math:`v = s_v v'`; the pair
    :math:`(u', v')` has correlation :math:`s_u s_v c` on the positive quadrant.
    """
    total = sp.Integer(0)
    for su, fp in ((1, f.positive), (-1, f.negative)):
        for sv, gp in ((1, g.positive), (-1, g.negative)):
            for (i,), ci in zip(fp.monoms(), fp.coeffs(), strict=True):
                for (j,), cj in zip(gp.monoms(), gp.coeffs(), strict=True):
                    term = quadrant_moment(i, j).subs(C, su * sv * C)
                    total += ci * cj * su**i * sv**j * term
    return sp.simplify(total)


def single_moment(f: HalfLinePolynomials) -> sp.Expr:
    r""":math:`\mathbb E[f(z)]` for a standard normal :math:`z`."""
    total = sp.Integer(0)
    for s, piece in ((1, f.positive), (-1, f.negative)):
        for (i,), coeff in zip(piece.monoms(), piece.coeffs(), strict=True):
            total += coeff * s**i * half_moment(i)
    return sp.simplify(total)


@dataclass(frozen=True)
class ActivationKernels:
    r"""Closed forms for unit-variance pre-activations with correlation :math:`c`.

    ``kernel`` :math:`K(c)=\mathbb E\phi(u)\phi(v)`, ``second_moment``
    :math:`\mathbb E\phi^2`, ``mean`` :math:`\mathbb E\phi`, ``degree`` of positive
    homogeneity (or None), and the fourth-order moments of
    :math:`T=(\phi(u)\phi(v), \phi(u)^2, \phi(v)^2)` that the variance of the normalised
    overlap needs: ``xx`` :math:`\mathbb E[\phi(u)^2\phi(v)^2]`, ``xy``
    :math:`\mathbb E[\phi(u)^3\phi(v)]`, ``yy`` :math:`\mathbb E\phi^4`.
    """

    pieces: HalfLinePolynomials
    kernel: sp.Expr
    second_moment: sp.Expr
    mean: sp.Expr
    degree: int | None
    xx: sp.Expr
    xy: sp.Expr
    yy: sp.Expr

    @property
    def normalised_kernel(self) -> sp.Expr:
        r""":math:`\kappa(c) = K(c)/\mathbb E\phi^2` (the map of the normalised overlap)."""
        return sp.simplify(self.kernel / self.second_moment)


def activation_kernels(phi: sp.Expr) -> ActivationKernels | None:
    """Closed-form Gaussian kernels of ``phi`` (module docstring), or None if it is not a
    polynomial on each half-line."""
    pieces = half_line_polynomials(phi)
    if pieces is None:
        return None
    squared = pieces.squared()
    cubed = HalfLinePolynomials(pieces.positive**3, pieces.negative**3)
    second = single_moment(squared)
    if second == 0:
        return None
    return ActivationKernels(
        pieces=pieces,
        kernel=pair_moment(pieces, pieces),
        second_moment=second,
        mean=single_moment(pieces),
        degree=pieces.degree_if_homogeneous(),
        xx=pair_moment(squared, squared),
        xy=pair_moment(cubed, pieces),
        yy=single_moment(squared.squared()),
    )


def price_derivative(phi: sp.Expr) -> sp.Expr:
    r""":math:`\phi'` with sympy's distributional derivative (``DiracDelta`` at jumps)."""
    return sp.diff(phi.rewrite(sp.Heaviside), X)


__all__ = ["C", "ActivationKernels", "HalfLinePolynomials", "activation_kernels",
           "half_line_polynomials", "pair_moment", "quadrant_moment", "single_moment"]
