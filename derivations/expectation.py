r"""Expectation recursions of weights and output under noisy gradient descent.

Borovykh 2019 (arXiv:1912.08526); notes ``shared/papers/borovykh2019.md`` (section numbers
below are the notes').  A fully connected network with scalar output,
:math:`f(x;w)=v^\top\phi(W_L\cdots\phi(W_1x+b_1)\cdots+b_L)`, squared loss
:math:`L=\tfrac12\sum_i(f(x_i)-y_i)^2`, noisy gradient descent
:math:`w_{t+1}=w_t-\eta\nabla L(w_t)+s\,\xi_t` with :math:`s=\eta\sigma` or
:math:`\sqrt\eta\,\sigma`, from fixed :math:`w_0`.

What is derived (all as :class:`~derivations.ir.ArrayProgram` items, loop nests over
layers, units and weights whose statements are written once per layer, so that the
derivation does not grow with the number of weights):

- the jets of the output at :math:`w_0` at every training and test input: value,
  gradient :math:`J` and (order 2) Hessian :math:`H`, by forward propagation of first and
  second derivatives through the layers, with :math:`\phi',\phi''` derived symbolically;
- order 1 (section 3.3): the exact moment map of the linearised network in output space,
  :math:`\mu_{t+1}=\mu_t-\eta\Theta(Z,X)(\mu_{t,X}-Y)`,
  :math:`C_{t+1}=MC_tM^\top+s^2\Theta(Z,Z)`;
- order 2 (sections 4.3-4.4 and the loop body of section 6): the one-step map of the mean
  :math:`m_t` and covariance :math:`S_t` of the weight displacement under the Gaussian
  closure, and the outputs, the expected loss, the loss-Hessian trace and the closure
  indicator of section 8.5;
- order 3 (section 5): third-derivative jets and the same map for the cubic Taylor model,
  its Gaussian expectations contracted by Isserlis' theorem (:func:`cubic_moments`,
  :func:`cubic_variance`; checked against exact Gauss-Hermite quadrature in the tests);
- the stability condition :math:`\eta\lambda_{\max}<2` along the steps (section 8.3) as
  a constraint item.

The parametrisation is the standard one (weights used as stored); the flattening of
:math:`w` is :math:`(W_1\text{ row-major}, b_1, \dots, W_L, b_L, v)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from .activation import ACTIVATION_VARIABLE, parse_activation
from .domain import Domain
from .ir import (
    NONNEGATIVE,
    POSITIVE,
    ArrayConstant,
    ArrayProgram,
    ArrayStatement,
    DerivationError,
    Formula,
    FormulaSet,
    Item,
    LargestEigenvalue,
    Parameter,
    array_element,
    item_symbol,
)
from .model import ModelSpec
from .schemas.expectation import MAX_STEPS

REF = "Borovykh 2019 (arXiv:1912.08526); notes borovykh2019.md"

STEP = sp.Symbol("step", nonnegative=True, integer=True)
TEST_POINT = sp.Symbol("test_point", nonnegative=True, integer=True)
ETA = sp.Symbol("learning_rate", positive=True)
SIGMA = sp.Symbol("noise_std", nonnegative=True)
NOISE = item_symbol("noise_step")

# loop indices: a, u points; i units; j units of the layer below; p, q, r weights; k training
A_, U_, I_, J_, P_, Q_, R_, K_ = sp.symbols("a u i j p q r k", integer=True, nonnegative=True)

#: ``step`` runs up to the schema's maximum of ``steps`` (an order-2 step of a network of a
#: hundred weights takes about a millisecond: 10^6 steps are minutes of work).
STEP_DOMAIN = Domain(0.0, float(MAX_STEPS), integer=True)


def E(name: str, *indices: sp.Expr) -> sp.Expr:
    """Element of array ``name``."""
    return array_element(name, *indices)


def st(target: sp.Expr, value: sp.Expr, loops, accumulate: bool = False,
       meaning: str = "") -> ArrayStatement:
    return ArrayStatement(target, sp.sympify(value), tuple(loops), accumulate, meaning)


# -- the network ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Network:
    """Shapes and parameter offsets of a fully connected scalar-output network."""

    input_dim: int
    widths: tuple[int, ...]

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.input_dim, *self.widths)

    def weight_offset(self, layer: int) -> int:
        """Offset of :math:`W_l` (layer = 1..L) in the flattened :math:`w`."""
        off = 0
        for l_ in range(1, layer):
            off += self.dims[l_] * self.dims[l_ - 1] + self.dims[l_]
        return off

    def bias_offset(self, layer: int) -> int:
        return self.weight_offset(layer) + self.dims[layer] * self.dims[layer - 1]

    @property
    def output_offset(self) -> int:
        return self.weight_offset(len(self.widths) + 1)

    @property
    def size(self) -> int:
        """Number of weights P."""
        return self.output_offset + self.widths[-1]


def activation_derivatives(phi: sp.Expr, order: int) -> list[sp.Expr]:
    r""":math:`\phi, \phi', \dots, \phi^{(order)}` with Dirac deltas dropped (a kinked
    activation is differentiated away from its kinks, section 8.10)."""
    x = ACTIVATION_VARIABLE
    out = [phi]
    for _ in range(order):
        d = sp.diff(out[-1], x)
        # no simplify: it trades tanh for sinh/cosh, which overflow for |x| > 237
        out.append(d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0)))
    return out


def jet_program(net: Network, phi: sp.Expr, order: int, points: int
                ) -> tuple[list[tuple[str, tuple[int, ...]]], list[ArrayStatement]]:
    r"""Statements computing ``F(a)`` = :math:`f(x_a)`, ``Jac(a, p)`` = :math:`J_p(x_a)` and,
    for ``order`` >= 2, ``Hes(a, p, q)`` = :math:`H_{pq}(x_a)` at the rows ``a`` of ``X``.

    Forward propagation through layer l (prev = X or :math:`h^{(l-1)}`):
    :math:`z_i=b_i+\sum_jW_{ij}h_j`, :math:`\partial_pz_i=\sum_jW_{ij}\partial_ph_j`
    :math:`+h_j[p=W_{ij}]+[p=b_i]`,
    :math:`\partial_{pq}z_i=\sum_jW_{ij}\partial_{pq}h_j+\partial_qh_j[p=W_{ij}]`
    :math:`+\partial_ph_j[q=W_{ij}]`; :math:`h_i=\phi(z_i)`,
    :math:`\partial_ph_i=\phi'(z_i)\partial_pz_i`,
    :math:`\partial_{pq}h_i=\phi''(z_i)\partial_pz_i\partial_qz_i+\phi'(z_i)\partial_{pq}z_i`;
    then :math:`f=\sum_iv_ih^{(L)}_i` and its derivatives (with :math:`[p=v_i]`).
    """
    x = ACTIVATION_VARIABLE
    derivs = activation_derivatives(phi, order)
    P = net.size
    arrays: list[tuple[str, tuple[int, ...]]] = []
    out: list[ArrayStatement] = []
    a, i, j, p, q = A_, I_, J_, P_, Q_
    prev, prev_d, prev_dd, prev_ddd = "X", None, None, None
    for layer, width in enumerate(net.widths, start=1):
        below = net.dims[layer - 1]
        w, b = f"W{layer}", f"b{layer}"
        z, h, dz, dh = f"z{layer}", f"h{layer}", f"dz{layer}", f"dh{layer}"
        g1, g2 = f"dphi{layer}", f"ddphi{layer}"
        arrays += [(z, (points, width)), (h, (points, width)), (g1, (points, width)),
                   (dz, (points, width, P)), (dh, (points, width, P))]
        wi = net.weight_offset(layer) + i * below + j  # flat index of W_l[i, j]
        bi = net.bias_offset(layer) + i
        out += [
            st(E(z, a, i), E(b, i), [(a, points), (i, width)],
               meaning=f"pre-activations of layer {layer}"),
            st(E(z, a, i), E(w, i, j) * E(prev, a, j), [(a, points), (i, width), (j, below)],
               True),
            st(E(h, a, i), derivs[0].subs(x, E(z, a, i)), [(a, points), (i, width)]),
            st(E(g1, a, i), derivs[1].subs(x, E(z, a, i)), [(a, points), (i, width)]),
        ]
        if prev_d is not None:
            out.append(st(E(dz, a, i, p), E(w, i, j) * E(prev_d, a, j, p),
                          [(a, points), (i, width), (j, below), (p, P)], True,
                          "first derivatives, through the layer below"))
        out += [
            st(E(dz, a, i, wi), E(prev, a, j), [(a, points), (i, width), (j, below)], True,
               f"[p = W{layer}_ij]"),
            st(E(dz, a, i, bi), 1, [(a, points), (i, width)], True, f"[p = b{layer}_i]"),
            st(E(dh, a, i, p), E(g1, a, i) * E(dz, a, i, p), [(a, points), (i, width), (p, P)]),
        ]
        if order >= 2:
            ddz, ddh = f"ddz{layer}", f"ddh{layer}"
            arrays += [(g2, (points, width)), (ddz, (points, width, P, P)),
                       (ddh, (points, width, P, P))]
            out.append(st(E(g2, a, i), derivs[2].subs(x, E(z, a, i)), [(a, points), (i, width)]))
            if prev_dd is not None:
                out += [
                    st(E(ddz, a, i, p, q), E(w, i, j) * E(prev_dd, a, j, p, q),
                       [(a, points), (i, width), (j, below), (p, P), (q, P)], True,
                       "second derivatives, through the layer below"),
                    st(E(ddz, a, i, wi, q), E(prev_d, a, j, q),
                       [(a, points), (i, width), (j, below), (q, P)], True),
                    st(E(ddz, a, i, p, wi), E(prev_d, a, j, p),
                       [(a, points), (i, width), (j, below), (p, P)], True),
                ]
            out.append(st(E(ddh, a, i, p, q),
                          E(g2, a, i) * E(dz, a, i, p) * E(dz, a, i, q)
                          + E(g1, a, i) * E(ddz, a, i, p, q),
                          [(a, points), (i, width), (p, P), (q, P)]))
        if order >= 3:
            d3z, d3h, g3 = f"d3z{layer}", f"d3h{layer}", f"dddphi{layer}"
            r = R_
            loops4 = [(a, points), (i, width), (p, P), (q, P), (r, P)]
            arrays += [(g3, (points, width)), (d3z, (points, width, P, P, P)),
                       (d3h, (points, width, P, P, P))]
            out.append(st(E(g3, a, i), derivs[3].subs(x, E(z, a, i)),
                          [(a, points), (i, width)]))
            if prev_ddd is not None:
                out += [
                    st(E(d3z, a, i, p, q, r), E(w, i, j) * E(prev_ddd, a, j, p, q, r),
                       [(a, points), (i, width), (j, below), (p, P), (q, P), (r, P)], True,
                       "third derivatives, through the layer below"),
                    st(E(d3z, a, i, wi, q, r), E(prev_dd, a, j, q, r),
                       [(a, points), (i, width), (j, below), (q, P), (r, P)], True),
                    st(E(d3z, a, i, p, wi, r), E(prev_dd, a, j, p, r),
                       [(a, points), (i, width), (j, below), (p, P), (r, P)], True),
                    st(E(d3z, a, i, p, q, wi), E(prev_dd, a, j, p, q),
                       [(a, points), (i, width), (j, below), (p, P), (q, P)], True),
                ]
            out.append(st(
                E(d3h, a, i, p, q, r),
                E(g3, a, i) * E(dz, a, i, p) * E(dz, a, i, q) * E(dz, a, i, r)
                + E(g2, a, i) * (E(ddz, a, i, p, q) * E(dz, a, i, r)
                                 + E(ddz, a, i, p, r) * E(dz, a, i, q)
                                 + E(ddz, a, i, q, r) * E(dz, a, i, p))
                + E(g1, a, i) * E(d3z, a, i, p, q, r), loops4))
        prev, prev_d = h, dh
        prev_dd = f"ddh{layer}" if order >= 2 else None
        prev_ddd = f"d3h{layer}" if order >= 3 else None
    last = len(net.widths)
    width = net.widths[-1]
    vi = net.output_offset + i
    arrays += [("F", (points,)), ("Jac", (points, P))]
    out += [
        st(E("F", a), E("v", i) * E(prev, a, i), [(a, points), (i, width)], True,
           "network output f(x_a)"),
        st(E("Jac", a, p), E("v", i) * E(prev_d, a, i, p), [(a, points), (i, width), (p, P)],
           True, "gradient J(x_a)"),
        st(E("Jac", a, vi), E(prev, a, i), [(a, points), (i, width)], True, "[p = v_i]"),
    ]
    if order >= 2:
        arrays.append(("Hes", (points, P, P)))
        out += [
            st(E("Hes", a, p, q), E("v", i) * E(f"ddh{last}", a, i, p, q),
               [(a, points), (i, width), (p, P), (q, P)], True, "Hessian H(x_a)"),
            st(E("Hes", a, vi, q), E(prev_d, a, i, q), [(a, points), (i, width), (q, P)], True),
            st(E("Hes", a, p, vi), E(prev_d, a, i, p), [(a, points), (i, width), (p, P)], True),
        ]
    if order >= 3:
        r = R_
        arrays.append(("Tes", (points, P, P, P)))
        out += [
            st(E("Tes", a, p, q, r), E("v", i) * E(f"d3h{last}", a, i, p, q, r),
               [(a, points), (i, width), (p, P), (q, P), (r, P)], True,
               "third-derivative tensor T(x_a)"),
            st(E("Tes", a, vi, q, r), E(prev_dd, a, i, q, r),
               [(a, points), (i, width), (q, P), (r, P)], True),
            st(E("Tes", a, p, vi, r), E(prev_dd, a, i, p, r),
               [(a, points), (i, width), (p, P), (r, P)], True),
            st(E("Tes", a, p, q, vi), E(prev_dd, a, i, p, q),
               [(a, points), (i, width), (p, P), (q, P)], True),
        ]
    return arrays, out


# -- order 1: output space (section 3.3) ----------------------------------------------------
def order1_program(n: int, points: int) -> tuple[list, list, list]:
    r"""Arrays, set-up and one-step statements of the order-1 map in output space:
    :math:`\mu_{t+1}=\mu_t-\eta\Theta(Z,X)(\mu_{t,X}-Y)`,
    :math:`C_{t+1}=MC_tM^\top+s^2\Theta(Z,Z)`, :math:`M=I-\eta\Theta(Z,X)E_X`."""
    a, u, k, b = A_, U_, K_, J_
    arrays = [("ThetaZZ", (points, points)), ("M", (points, points)), ("mu", (points,)),
              ("mu_new", (points,)), ("C", (points, points)), ("MC", (points, points)),
              ("res", (n,))]
    return arrays, [
        st(E("mu", a), E("F", a), [(a, points)], meaning="mu_0 = f_0(Z)"),
        st(E("M", a, a), 1, [(a, points)]),
        st(E("M", a, k), -ETA * E("ThetaZZ", a, k), [(a, points), (k, n)], True,
           "M = I - eta Theta(Z, X) E_X"),
    ], [
        st(E("res", k), E("mu", k) - E("Y", k), [(k, n)], meaning="mean training residual"),
        st(E("mu_new", a), E("mu", a), [(a, points)]),
        st(E("mu_new", a), -ETA * E("ThetaZZ", a, k) * E("res", k), [(a, points), (k, n)],
           True, "mu_{t+1} = mu_t - eta Theta(Z, X) (mu_X - Y)"),
        st(E("MC", a, u), 0, [(a, points), (u, points)]),
        st(E("MC", a, u), E("M", a, b) * E("C", b, u), [(a, points), (u, points), (b, points)],
           True),
        st(E("C", a, u), NOISE**2 * E("ThetaZZ", a, u), [(a, points), (u, points)]),
        st(E("C", a, u), E("MC", a, b) * E("M", u, b), [(a, points), (u, points), (b, points)],
           True, "C_{t+1} = M C_t M^T + s^2 Theta(Z, Z)"),
        st(E("mu", a), E("mu_new", a), [(a, points)]),
    ]


def order1_weight_space(n: int, P: int) -> tuple[list, list, list]:
    r"""The order-1 map in weight space (section 3.1):
    :math:`m_{t+1}=(I-\eta G)m_t-\eta J^\top r_0`,
    :math:`S_{t+1}=(I-\eta G)S_t(I-\eta G)+s^2I`, :math:`G=J^\top J` (training rows)."""
    k, p, q, r = K_, P_, Q_, R_
    arrays = [("m", (P,)), ("S", (P, P)), ("G", (P, P)), ("B", (P, P)), ("BS", (P, P)),
              ("JTr", (P,)), ("Gm", (P,))]
    setup = [
        st(E("G", p, q), E("Jac", k, p) * E("Jac", k, q), [(p, P), (q, P), (k, n)], True,
           "G = J^T J"),
        st(E("JTr", p), E("Jac", k, p) * (E("F", k) - E("Y", k)), [(p, P), (k, n)], True),
        st(E("B", p, q), -ETA * E("G", p, q), [(p, P), (q, P)]),
        st(E("B", p, p), 1, [(p, P)], True, "B = I - eta G"),
    ]
    body = [
        st(E("Gm", p), 0, [(p, P)]),
        st(E("Gm", p), E("G", p, q) * E("m", q), [(p, P), (q, P)], True),
        st(E("m", p), -ETA * (E("Gm", p) + E("JTr", p)), [(p, P)], True,
           "m_{t+1} = m_t - eta (G m_t + J^T r_0)"),
        st(E("BS", p, q), 0, [(p, P), (q, P)]),
        st(E("BS", p, q), E("B", p, r) * E("S", r, q), [(p, P), (q, P), (r, P)], True),
        st(E("S", p, q), 0, [(p, P), (q, P)]),
        st(E("S", p, q), E("BS", p, r) * E("B", q, r), [(p, P), (q, P), (r, P)], True),
        st(E("S", p, p), NOISE**2, [(p, P)], True, "S_{t+1} = B S_t B + s^2 I"),
    ]
    return arrays, setup, body


def weight_statistics(P: int) -> tuple[list, list[ArrayStatement]]:
    r""":math:`|m_t|` and :math:`\mathrm{tr}\,S_t` of the weight displacement."""
    p = P_
    zero = sp.Integer(0)
    return [("mnorm", (1,)), ("trS", (1,))], [
        st(E("mnorm", zero), E("m", p)**2, [(p, P)], True, "|m_t|^2"),
        st(E("trS", zero), E("S", p, p), [(p, P)], True, "tr S_t"),
    ]


def ntk_statements(points: int, P: int) -> list[ArrayStatement]:
    r""":math:`\Theta(Z,Z)_{au}=\sum_pJ_p(x_a)J_p(x_u)` (the empirical NTK)."""
    a, u, p = A_, U_, P_
    return [st(E("ThetaZZ", a, u), E("Jac", a, p) * E("Jac", u, p),
               [(a, points), (u, points), (p, P)], True, "empirical NTK Theta(Z, Z)")]


# -- order 2: Gaussian closure (sections 4.3, 4.4, 6) ------------------------------------------
def closure_moments(n: int, P: int) -> tuple[list, list[ArrayStatement]]:
    r"""At the current :math:`(m,S)`: :math:`a_i=J_i^\top+H_im`, :math:`(H_iS)`,
    :math:`\rho_i=r_{0i}+J_im+\tfrac12m^\top H_im+\tfrac12\mathrm{tr}H_iS`,
    :math:`\bar g=\sum_i[\rho_ia_i+H_iSa_i]`,
    :math:`\bar K=\sum_i[a_ia_i^\top+\rho_iH_i+H_iSH_i]` (training rows k < n)."""
    k, p, q, r = K_, P_, Q_, R_
    arrays = [("grad", (n, P)), ("HS", (n, P, P)), ("rho", (n,)), ("g", (P,)),
              ("K", (P, P))]
    return arrays, [
        st(E("grad", k, p), E("Jac", k, p), [(k, n), (p, P)]),
        st(E("grad", k, p), E("Hes", k, p, q) * E("m", q), [(k, n), (p, P), (q, P)], True,
           "a_i = J_i + H_i m"),
        st(E("HS", k, p, r), 0, [(k, n), (p, P), (r, P)]),
        st(E("HS", k, p, r), E("Hes", k, p, q) * E("S", q, r), [(k, n), (p, P), (r, P), (q, P)],
           True, "H_i S"),
        st(E("rho", k), E("F", k) - E("Y", k), [(k, n)]),
        st(E("rho", k), E("Jac", k, p) * E("m", p), [(k, n), (p, P)], True),
        st(E("rho", k), E("m", p) * E("Hes", k, p, q) * E("m", q) / 2,
           [(k, n), (p, P), (q, P)], True),
        st(E("rho", k), E("HS", k, p, p) / 2, [(k, n), (p, P)], True,
           "rho_i = E r_i = r_i(m) + tr(H_i S)/2"),
        st(E("g", p), 0, [(p, P)]),
        st(E("g", p), E("rho", k) * E("grad", k, p), [(p, P), (k, n)], True),
        st(E("g", p), E("HS", k, p, r) * E("grad", k, r), [(p, P), (k, n), (r, P)], True,
           "E grad L"),
        st(E("K", p, q), 0, [(p, P), (q, P)]),
        st(E("K", p, q), E("grad", k, p) * E("grad", k, q) + E("rho", k) * E("Hes", k, p, q),
           [(p, P), (q, P), (k, n)], True),
        st(E("K", p, q), E("HS", k, p, r) * E("Hes", k, r, q), [(p, P), (q, P), (k, n), (r, P)],
           True, "K-bar = E Hessian of L"),
    ]


def order2_step(P: int) -> tuple[list, list[ArrayStatement]]:
    r""":math:`m_{t+1}=m_t-\eta\bar g`, :math:`S_{t+1}=(I-\eta\bar K)S_t(I-\eta\bar K)+s^2I`
    (symmetrised)."""
    p, q, r = P_, Q_, R_
    arrays = [("B", (P, P)), ("BS", (P, P)), ("S_new", (P, P))]
    return arrays, [
        st(E("B", p, q), -ETA * E("K", p, q), [(p, P), (q, P)]),
        st(E("B", p, p), 1, [(p, P)], True, "B = I - eta K-bar"),
        st(E("m", p), -ETA * E("g", p), [(p, P)], True, "m_{t+1} = m_t - eta E grad L"),
        st(E("BS", p, q), 0, [(p, P), (q, P)]),
        st(E("BS", p, q), E("B", p, r) * E("S", r, q), [(p, P), (q, P), (r, P)], True),
        st(E("S_new", p, q), 0, [(p, P), (q, P)]),
        st(E("S_new", p, q), E("BS", p, r) * E("B", q, r), [(p, P), (q, P), (r, P)], True),
        st(E("S_new", p, p), NOISE**2, [(p, P)], True, "S_{t+1} = B S_t B^T + s^2 I"),
        st(E("S", p, q), (E("S_new", p, q) + E("S_new", q, p)) / 2, [(p, P), (q, P)],
           meaning="symmetrised"),
    ]


def cubic_coefficients(rows: int, P: int, row, tag: str) -> tuple[list, list[ArrayStatement]]:
    r"""Coefficients of the order-3 model around the mean, :math:`d = m + e`:
    :math:`r(m+e)=c_0+c_1\cdot e+\tfrac12e^\top C_2e+\tfrac16T[e,e,e]` with
    :math:`c_0=r(m)`, :math:`c_1=J+Hm+\tfrac12T[m,m]`, :math:`C_2=H+T[m]`, and
    :math:`\tau=T:S`, :math:`C_2S`, :math:`\mathrm{tr}\,C_2S` (section 5) for ``rows`` rows
    (training: ``row(k) = k`` and the residual; a test input: ``row(k) = n + x``, the output)."""
    k, p, q, r = K_, P_, Q_, R_
    n = f"_{tag}"
    arrays = [(f"Tm{n}", (rows, P, P)), (f"Tmm{n}", (rows, P)), (f"c0{n}", (rows,)),
              (f"c1{n}", (rows, P)), (f"C2{n}", (rows, P, P)), (f"tau{n}", (rows, P)),
              (f"C2S{n}", (rows, P, P)), (f"tr{n}", (rows,))]
    R = [(k, rows)]
    c0 = E("F", row(k)) - (E("Y", k) if tag == "train" else 0)
    return arrays, [
        st(E(f"Tm{n}", k, p, q), 0, [*R, (p, P), (q, P)]),
        st(E(f"Tm{n}", k, p, q), E("Tes", row(k), p, q, r) * E("m", r),
           [*R, (p, P), (q, P), (r, P)], True, "T[m]"),
        st(E(f"Tmm{n}", k, p), 0, [*R, (p, P)]),
        st(E(f"Tmm{n}", k, p), E(f"Tm{n}", k, p, q) * E("m", q), [*R, (p, P), (q, P)], True),
        st(E(f"c1{n}", k, p), E("Jac", row(k), p) + E(f"Tmm{n}", k, p) / 2, [*R, (p, P)]),
        st(E(f"c1{n}", k, p), E("Hes", row(k), p, q) * E("m", q), [*R, (p, P), (q, P)], True,
           "c_1 = J + H m + T[m, m]/2"),
        st(E(f"C2{n}", k, p, q), E("Hes", row(k), p, q) + E(f"Tm{n}", k, p, q),
           [*R, (p, P), (q, P)], meaning="C_2 = H + T[m]"),
        st(E(f"c0{n}", k), c0, R),
        st(E(f"c0{n}", k), E("Jac", row(k), p) * E("m", p) + E("m", p) * E(f"Tmm{n}", k, p) / 6,
           [*R, (p, P)], True),
        st(E(f"c0{n}", k), E("m", p) * E("Hes", row(k), p, q) * E("m", q) / 2,
           [*R, (p, P), (q, P)], True, "c_0 = value at the mean"),
        st(E(f"tau{n}", k, p), 0, [*R, (p, P)]),
        st(E(f"tau{n}", k, p), E("Tes", row(k), p, q, r) * E("S", q, r),
           [*R, (p, P), (q, P), (r, P)], True, "tau = T : S"),
        st(E(f"C2S{n}", k, p, r), 0, [*R, (p, P), (r, P)]),
        st(E(f"C2S{n}", k, p, r), E(f"C2{n}", k, p, q) * E("S", q, r),
           [*R, (p, P), (r, P), (q, P)], True),
        st(E(f"tr{n}", k), 0, R),
        st(E(f"tr{n}", k), E(f"C2S{n}", k, p, p), [*R, (p, P)], True),
    ]


def cubic_variance(rows: int, P: int, row, tag: str) -> tuple[list, list[ArrayStatement]]:
    r""":math:`\mathrm{Var}=(c_1+\tfrac12\tau)^\top S(c_1+\tfrac12\tau)
    +\tfrac12\mathrm{tr}(C_2SC_2S)+\tfrac16\sum T_{abc}T_{def}S_{ad}S_{be}S_{cf}`
    (Isserlis: 9 + 6 pairings of the sixth moment) per row."""
    k, p, q, r, a = K_, P_, Q_, R_, A_
    n = f"_{tag}"
    arrays = [(f"u{n}", (rows, P)), (f"Su{n}", (rows, P)), (f"Z1{n}", (rows, P, P, P)),
              (f"Z2{n}", (rows, P, P, P)), (f"Z3{n}", (rows, P, P, P)), (f"var{n}", (rows,))]
    R = [(k, rows)]
    return arrays, [
        st(E(f"u{n}", k, p), E(f"c1{n}", k, p) + E(f"tau{n}", k, p) / 2, [*R, (p, P)]),
        st(E(f"Su{n}", k, p), 0, [*R, (p, P)]),
        st(E(f"Su{n}", k, p), E("S", p, q) * E(f"u{n}", k, q), [*R, (p, P), (q, P)], True),
        st(E(f"var{n}", k), 0, R),
        st(E(f"var{n}", k), E(f"u{n}", k, p) * E(f"Su{n}", k, p), [*R, (p, P)], True),
        st(E(f"var{n}", k), E(f"C2S{n}", k, p, q) * E(f"C2S{n}", k, q, p) / 2,
           [*R, (p, P), (q, P)], True),
        st(E(f"Z1{n}", k, p, q, r), 0, [*R, (p, P), (q, P), (r, P)]),
        st(E(f"Z1{n}", k, p, q, r), E("Tes", row(k), p, q, a) * E("S", a, r),
           [*R, (p, P), (q, P), (r, P), (a, P)], True),
        st(E(f"Z2{n}", k, p, q, r), 0, [*R, (p, P), (q, P), (r, P)]),
        st(E(f"Z2{n}", k, p, q, r), E(f"Z1{n}", k, p, a, r) * E("S", a, q),
           [*R, (p, P), (q, P), (r, P), (a, P)], True),
        st(E(f"Z3{n}", k, p, q, r), 0, [*R, (p, P), (q, P), (r, P)]),
        st(E(f"Z3{n}", k, p, q, r), E("S", p, a) * E(f"Z2{n}", k, a, q, r),
           [*R, (p, P), (q, P), (r, P), (a, P)], True, "T transformed by S on every index"),
        st(E(f"var{n}", k), E(f"Z3{n}", k, p, q, r) * E("Tes", row(k), p, q, r) / 6,
           [*R, (p, P), (q, P), (r, P)], True, "Var of the cubic model"),
    ]


def cubic_moments(n: int, P: int) -> tuple[list, list[ArrayStatement]]:
    r""":math:`\mathbb E\nabla L^{(3)}` and :math:`\bar K=\mathbb E\nabla^2L^{(3)}` at
    :math:`(m,S)` (section 5, Isserlis), summed over the training rows:

    .. math::
        \bar g = \sum_i\big[(c_0+\tfrac12\mathrm{tr}C_2S)(c_1+\tfrac12\tau)+C_2S(c_1+
        \tfrac12\tau)+\tfrac12\textstyle\sum_{cd}(SC_2S)_{cd}T_{\cdot cd}\big],

        \bar K = \sum_i\big[uu^\top+C_2SC_2+\tfrac12\textstyle\sum T_{pab}T_{qcd}S_{ac}S_{bd}
        +(c_0+\tfrac12\mathrm{tr}C_2S)C_2+T[S u]\big],\quad u=c_1+\tfrac12\tau.
    """
    k, p, q, r, a, b = K_, P_, Q_, R_, A_, J_
    coeff_arrays, coeff = cubic_coefficients(n, P, lambda kk: kk, "train")
    arrays = coeff_arrays + [("u3", (n, P)), ("Su3", (n, P)), ("SC2S", (n, P, P)),
                             ("STp", (n, P, P, P)), ("STpS", (n, P, P, P)), ("rho", (n,)),
                             ("g", (P,)), ("K", (P, P))]
    R = [(k, n)]
    return arrays, coeff + [
        st(E("rho", k), E("c0_train", k) + E("tr_train", k) / 2, R, meaning="E r_i"),
        st(E("u3", k, p), E("c1_train", k, p) + E("tau_train", k, p) / 2, [*R, (p, P)]),
        st(E("Su3", k, p), 0, [*R, (p, P)]),
        st(E("Su3", k, p), E("S", p, q) * E("u3", k, q), [*R, (p, P), (q, P)], True),
        st(E("SC2S", k, p, q), 0, [*R, (p, P), (q, P)]),
        st(E("SC2S", k, p, q), E("S", p, r) * E("C2S_train", k, r, q),
           [*R, (p, P), (q, P), (r, P)], True),
        st(E("g", p), 0, [(p, P)]),
        st(E("g", p), E("rho", k) * E("u3", k, p), [(p, P), *R], True),
        st(E("g", p), E("C2_train", k, p, q) * E("Su3", k, q), [(p, P), *R, (q, P)], True),
        st(E("g", p), E("SC2S", k, q, r) * E("Tes", k, p, q, r) / 2,
           [(p, P), *R, (q, P), (r, P)], True, "E grad L (order 3)"),
        st(E("STp", k, p, a, b), 0, [*R, (p, P), (a, P), (b, P)]),
        st(E("STp", k, p, a, b), E("S", a, r) * E("Tes", k, p, r, b),
           [*R, (p, P), (a, P), (b, P), (r, P)], True),
        st(E("STpS", k, p, a, b), 0, [*R, (p, P), (a, P), (b, P)]),
        st(E("STpS", k, p, a, b), E("STp", k, p, a, r) * E("S", r, b),
           [*R, (p, P), (a, P), (b, P), (r, P)], True, "S T_p S"),
        st(E("K", p, q), 0, [(p, P), (q, P)]),
        st(E("K", p, q), E("u3", k, p) * E("u3", k, q) + E("rho", k) * E("C2_train", k, p, q),
           [(p, P), (q, P), *R], True),
        st(E("K", p, q), E("C2S_train", k, p, r) * E("C2_train", k, r, q),
           [(p, P), (q, P), *R, (r, P)], True),
        st(E("K", p, q), E("Tes", k, p, q, r) * E("Su3", k, r), [(p, P), (q, P), *R, (r, P)],
           True),
        st(E("K", p, q), E("STpS", k, p, a, b) * E("Tes", k, q, a, b) / 2,
           [(p, P), (q, P), *R, (a, P), (b, P)], True, "K-bar (order 3)"),
    ]


def test_point_statements(n: int, P: int) -> tuple[list, list[ArrayStatement]]:
    r"""At test input :math:`x`: :math:`\mathbb Ef=f_0+Jm+\tfrac12m^\top Hm+\tfrac12\mathrm{tr}HS`
    and :math:`\mathrm{Var}f=a^\top Sa+\tfrac12\mathrm{tr}(HSHS)`, :math:`a=J^\top+Hm`
    (section 4.4)."""
    p, q, r = P_, Q_, R_
    x = n + TEST_POINT
    arrays = [("at", (P,)), ("HSt", (P, P)), ("Ef", (1,)), ("Varf", (1,))]
    zero = sp.Integer(0)
    return arrays, [
        st(E("at", p), E("Jac", x, p), [(p, P)]),
        st(E("at", p), E("Hes", x, p, q) * E("m", q), [(p, P), (q, P)], True),
        st(E("HSt", p, r), E("Hes", x, p, q) * E("S", q, r), [(p, P), (r, P), (q, P)], True),
        st(E("Ef", zero), E("F", x), []),
        st(E("Ef", zero), E("Jac", x, p) * E("m", p) + E("HSt", p, p) / 2, [(p, P)], True),
        st(E("Ef", zero), E("m", p) * E("Hes", x, p, q) * E("m", q) / 2, [(p, P), (q, P)], True,
           "E f_t(x)"),
        st(E("Varf", zero), E("at", p) * E("S", p, q) * E("at", q)
           + E("HSt", p, q) * E("HSt", q, p) / 2, [(p, P), (q, P)], True, "Var f_t(x)"),
    ]


# -- stability (section 8.3) ----------------------------------------------------------------------
def stability_statements(matrix: str, size: int) -> tuple[list, list, list]:
    r"""Arrays, set-up and update statements of the stability margin
    :math:`\min_s[2-\eta\lambda_{\max}(A_s)]` over the visited states :math:`s` of the
    symmetric ``matrix`` A (its leading ``size`` x ``size`` block).  The update lowers the
    margin by the current state's value; the set-up starts it at :math:`+\infty`.  Gradient
    descent on the (expected) loss is stable while it is >= 0 (:math:`\lambda_{\max}` exact
    to rounding up to a few hundred weights, a Lanczos estimate from above beyond)."""
    zero = sp.Integer(0)
    arrays = [("lam", (1,)), ("margin", (1,))]
    setup = [st(E("margin", zero), sp.oo, [], meaning="no state visited yet")]
    update = [LargestEigenvalue(E("lam", zero), matrix, size, f"lambda_max of {matrix}"),
              st(E("margin", zero), sp.Min(E("margin", zero), 2 - ETA * E("lam", zero)), [],
                 meaning="min over visited states of 2 - eta lambda_max")]
    return arrays, setup, update


def order3_items(program, n: int, points: int, P: int) -> list[Item]:
    """The order-3 quantities: the order-2 map shape with the cubic model's expectations
    (section 5); outputs, expected loss and Hessian traces from the same coefficients."""
    k, p = K_, P_
    zero = sp.Integer(0)
    state = [("m", (P,)), ("S", (P, P))]
    mom_arrays, moments = cubic_moments(n, P)
    step_arrays, step = order2_step(P)
    s_arrays, s_setup, s_body = stability_statements("K", P)

    def at_test(kk):
        return n + TEST_POINT

    t_arrays, t_coeff = cubic_coefficients(1, P, at_test, "test")
    tv_arrays, t_var = cubic_variance(1, P, at_test, "test")
    v_arrays, train_var = cubic_variance(n, P, lambda kk: kk, "train")
    stat_arrays, stats = weight_statistics(P)
    arrays = (state + mom_arrays + step_arrays + s_arrays + t_arrays + tv_arrays + v_arrays
              + stat_arrays
              + [("Ef", (1,)), ("loss", (1,)), ("trace", (1,)), ("trace_mean", (1,))])
    # the moments (and lambda_max) of the state are computed where the state is made: in the
    # set-up for step 0 and after every step, so that the finishes read them
    setup, body = s_setup + moments + s_body, step + moments + s_body
    outputs = t_coeff + t_var + [
        st(E("Ef", zero), E("c0_test", zero) + E("tr_test", zero) / 2, [],
           meaning="E f = c_0 + tr(C_2 S)/2")]
    loss = train_var + [
        st(E("loss", zero), (E("rho", k)**2 + E("var_train", k)) / 2, [(k, n)], True,
           "E L = 1/2 sum_i [(E r_i)^2 + Var r_i]")]
    trace = [st(E("trace", zero), E("K", p, p), [(p, P)], True, "tr K-bar")]
    at_mean = [
        st(E("trace_mean", zero), E("c1_train", k, p)**2
           + E("c0_train", k) * E("C2_train", k, p, p), [(k, n), (p, P)], True,
           "tr Hessian of L^(3) at m = sum_i [|c_1|^2 + c_0 tr C_2]")]
    order = "order 3, Gaussian closure of the cubic model"
    return [
        program("mean_output", arrays, setup, body, outputs, E("Ef", zero),
                f"E f_t(x) at test input test_point after step updates ({order})", "5"),
        program("output_variance", arrays, setup, body, outputs, E("var_test", zero),
                f"Var f_t(x) at test input test_point after step updates ({order})", "5"),
        program("stability_margin", arrays, setup, body, [], E("margin", zero),
                "min over the states s = 0..t of 2 - eta lambda_max(K-bar_s): the order-3 map "
                "is stable while >= 0", "8.3"),
        program("expected_loss", arrays, setup, body, loss, E("loss", zero),
                f"E L_t, the expected training loss after step updates ({order})", "5"),
        program("loss_hessian_trace", arrays, setup, body, trace, E("trace", zero),
                "tr K-bar_t, the trace of the expected loss Hessian (order 3)", "5"),
        program("mean_weights_hessian_trace", arrays, setup, body, at_mean,
                E("trace_mean", zero),
                "trace of the loss Hessian of the order-3 model at the mean weights m_t", "5"),
        program("weight_mean_norm", arrays, setup, body, stats, sp.sqrt(E("mnorm", zero)),
                "|m_t|, the norm of the mean weight displacement (order 3)", "5"),
        program("weight_variance_trace", arrays, setup, body, stats, E("trS", zero),
                "tr S_t, the total variance of the weight displacement (order 3)", "5"),
    ]


def order1_items(program, n: int, points: int, P: int) -> list[Item]:
    """The order-1 quantities (section 3): the exact moment map of the linearised network in
    output space (its stability margin from the constant Theta), and the weight-space map of
    section 3.1 for the weight statistics."""
    zero = sp.Integer(0)
    x_row = n + TEST_POINT
    arrays, setup, body = order1_program(n, points)
    setup = ntk_statements(points, P) + setup
    s_arrays, s_setup, s_update = stability_statements("ThetaZZ", n)
    # Theta is constant along the order-1 map: its lambda_max is taken once
    arrays, setup = arrays + s_arrays, setup + s_setup + s_update
    k = K_
    arrays += [("loss", (1,)), ("trace", (1,))]
    loss = [st(E("loss", zero), ((E("mu", k) - E("Y", k))**2 + E("C", k, k)) / 2,
               [(k, n)], True, "E L_t = 1/2 sum_i [(mu_i - y_i)^2 + C_ii]")]
    items = [
        program("mean_output", arrays, setup, body, [], E("mu", x_row),
                "E f_t(x) at test input test_point after step updates (order 1: the "
                "linearised network, exact moments)", "3.3"),
        program("output_variance", arrays, setup, body, [], E("C", x_row, x_row),
                "Var f_t(x) at test input test_point after step updates (order 1)", "3.3"),
        program("expected_loss", arrays, setup, body, loss, E("loss", zero),
                "E L_t, the expected training loss after step updates (order 1)", "3.3"),
    ]
    items.append(program(
        "stability_margin", arrays, setup, body, [], E("margin", zero),
        "2 - eta lambda_max(Theta(X, X)) (Theta is constant at order 1): the order-1 map "
        "is stable while >= 0", "3.4, 8.3"))
    w_arrays, w_setup, w_body = order1_weight_space(n, P)
    stat_arrays, stats = weight_statistics(P)
    w_all = w_arrays + stat_arrays
    items += [
        program("weight_mean_norm", w_all, w_setup, w_body, stats,
                sp.sqrt(E("mnorm", zero)), "|E d_t|, the norm of the mean weight "
                "displacement (order 1, weight space)", "3.1"),
        program("weight_variance_trace", w_all, w_setup, w_body, stats, E("trS", zero),
                "tr Cov d_t, the total variance of the weight displacement (order 1, "
                "weight space)", "3.1"),
    ]
    p = P_
    items.append(program(
        "loss_hessian_trace", arrays, setup, body,
        [st(E("trace", zero), E("Jac", k, p)**2, [(k, n), (p, P)], True,
            "tr Theta = tr J^T J (Gauss-Newton)")], E("trace", zero),
        "trace of the expected loss Hessian (order 1: tr Theta, constant in t)", "4.4"))
    items.append(program(
        "mean_weights_hessian_trace", arrays, setup, body,
        [st(E("trace", zero), E("Jac", k, p)**2, [(k, n), (p, P)], True,
            "tr Theta")], E("trace", zero),
        "trace of the loss Hessian at the mean weights (order 1: tr Theta)", "3.4"))
    return items


def order2_items(program, n: int, points: int, P: int) -> list[Item]:
    """The order-2 quantities (sections 4.3-4.4, 6, 8.5): the Gaussian-closure map of the weight
    mean and covariance, the outputs, the expected loss, the Hessian traces and the closure
    indicator."""
    zero = sp.Integer(0)
    state = [("m", (P,)), ("S", (P, P))]
    moment_arrays, moments = closure_moments(n, P)
    step_arrays, step = order2_step(P)
    out_arrays, at_test = test_point_statements(n, P)
    arrays = state + moment_arrays + step_arrays + out_arrays + [
        ("loss", (1,)), ("trace", (1,)), ("closure", (n,)), ("linear", (n,)),
        ("rbar", (n,)), ("trace_mean", (1,))]
    s_arrays, s_setup, s_body = stability_statements("K", P)
    stat_arrays, stats = weight_statistics(P)
    arrays += s_arrays + stat_arrays
    # moments and lambda_max of the state where it is made (set-up, after every step)
    setup, body = s_setup + moments + s_body, step + moments + s_body
    k, p, q = K_, P_, Q_
    items = [
        program("mean_output", arrays, setup, body, at_test, E("Ef", zero),
                "E f_t(x) at test input test_point after step updates (order 2, Gaussian "
                "closure)", "4.3-4.4"),
        program("stability_margin", arrays, setup, body, [], E("margin", zero),
                "min over the states s = 0..t of 2 - eta lambda_max(K-bar_s): the order-2 "
                "map is stable while >= 0", "8.3"),
        program("output_variance", arrays, setup, body, at_test, E("Varf", zero),
                "Var f_t(x) at test input test_point after step updates (order 2, "
                "Gaussian closure)", "4.3-4.4"),
    ]
    final = [
        st(E("loss", zero), E("rho", k)**2 / 2, [(k, n)], True),
        st(E("loss", zero), E("grad", k, p) * E("S", p, q) * E("grad", k, q) / 2
           + E("HS", k, p, q) * E("HS", k, q, p) / 4, [(k, n), (p, P), (q, P)], True,
           "E L = 1/2 sum_i [rho_i^2 + a_i^T S a_i + tr(H_i S H_i S)/2]"),
        st(E("trace", zero), E("K", p, p), [(p, P)], True, "tr K-bar"),
        st(E("closure", k), E("HS", k, p, q) * E("HS", k, q, p) / 2,
           [(k, n), (p, P), (q, P)], True),
        st(E("linear", k), E("grad", k, p) * E("S", p, q) * E("grad", k, q),
           [(k, n), (p, P), (q, P)], True),
        st(E("rbar", k), E("rho", k), [(k, n)]),
        st(E("rbar", k), -E("HS", k, p, p) / 2, [(k, n), (p, P)], True,
           "residual at the mean weights r_i(m) = rho_i - tr(H_i S)/2"),
        st(E("trace_mean", zero), E("grad", k, p)**2 + E("rbar", k) * E("Hes", k, p, p),
           [(k, n), (p, P)], True,
           "tr Hessian of L^(2) at m = sum_i [|a_i|^2 + r_i(m) tr H_i]"),
    ]
    # c_t -> 0 as S_t -> 0 (quadratic over linear in S): 0 where the closure term is 0
    ratio = [sp.Piecewise((E("closure", kk) / E("linear", kk), E("closure", kk) > 0),
                          (0, True)) for kk in range(n)]
    items += [
        program("expected_loss", arrays, setup, body, final, E("loss", zero),
                "E L_t, the expected training loss after step updates (order 2)", "4.4"),
        program("loss_hessian_trace", arrays, setup, body, final, E("trace", zero),
                "tr K-bar_t, the trace of the expected loss Hessian (order 2)", "4.4"),
        program("mean_weights_hessian_trace", arrays, setup, body, final,
                E("trace_mean", zero),
                "trace of the loss Hessian of the order-2 model at the mean weights m_t "
                "(the noise flattens it, section 4.5)", "4.4"),
        program("weight_mean_norm", arrays, setup, body, stats,
                sp.sqrt(E("mnorm", zero)), "|m_t|, the norm of the mean weight "
                "displacement (order 2)", "4.3"),
        program("weight_variance_trace", arrays, setup, body, stats,
                E("trS", zero), "tr S_t, the total variance of the weight displacement "
                "(order 2)", "4.3"),
        program("closure_indicator", arrays, setup, body, final,
                sp.Max(*ratio) if n > 1 else ratio[0],
                "c_t = max_i tr(H_i S H_i S)/2 / (a_i^T S a_i), a diagnostic: above 0.1 "
                "the Gaussian closure over-spreads the training outputs; 0 where "
                "tr(H_i S H_i S) = 0, e.g. at step 0 (S_0 = 0: c_t -> 0 as S_t -> 0)",
                "8.5"),
    ]
    return items


#: The builder of each order's items: ``(program, n, points, P) -> items``, where ``program``
#: makes an ArrayProgram on the model's data and jets, ``n`` training rows of ``points``, and
#: ``P`` weights.
ITEMS_BY_ORDER = {1: order1_items, 2: order2_items, 3: order3_items}


# -- the FormulaSet -----------------------------------------------------------------------------
def initial_weights(spec: ModelSpec, input_dim: int) -> tuple[list[np.ndarray], list[np.ndarray],
                                                               np.ndarray]:
    r"""The initial weights: explicit from ``[init]``, or drawn from ``seed``:
    :math:`W_{l,ij}\sim\mathcal N(0,1/n_{l-1})`, :math:`b=0`, :math:`v_i\sim\mathcal N(0,1/n_L)`."""
    init = spec["init"]
    widths = spec["widths"]
    if "hidden_weights" in init:
        ws = [np.array(w, dtype=float) for w in init["hidden_weights"]]
        bs = [np.array(b, dtype=float) for b in init["hidden_biases"]]
        return ws, bs, np.array(init["output_weights"], dtype=float)
    rng = np.random.default_rng(int(init["seed"]))
    dims = [input_dim, *widths]
    ws = [rng.standard_normal((dims[k + 1], dims[k])) / np.sqrt(dims[k])
          for k in range(len(widths))]
    bs = [np.zeros(w) for w in widths]
    v = rng.standard_normal(widths[-1]) / np.sqrt(widths[-1])
    return ws, bs, v


def _constant(name: str, values: np.ndarray, meaning: str) -> ArrayConstant:
    values = np.asarray(values, dtype=float)
    return ArrayConstant(name, tuple(int(n) for n in values.shape),
                         tuple(float(v) for v in values.ravel()), meaning)


def derive(spec: ModelSpec) -> FormulaSet:
    """The expectation FormulaSet of a model (see the module docstring)."""
    phi = parse_activation(spec["activation"], spec.source)
    order = int(spec["order"])
    if order not in ITEMS_BY_ORDER:
        raise DerivationError(f"{spec.source}: order {order} is not implemented (orders "
                              f"{', '.join(map(str, ITEMS_BY_ORDER))})")
    data = spec["data"]
    train = np.array(data["train_inputs"], dtype=float)
    test = np.array(data["test_inputs"], dtype=float)
    targets = np.array(data["train_targets"], dtype=float)
    n, n_test, d = train.shape[0], test.shape[0], train.shape[1]
    points = n + n_test
    net = Network(d, tuple(int(w) for w in spec["widths"]))
    P = net.size
    ws, bs, v = initial_weights(spec, d)
    constants = [_constant("X", np.vstack([train, test]), "inputs: training rows, then test"),
                 _constant("Y", targets, "training targets")]
    for layer, (w, b) in enumerate(zip(ws, bs, strict=True), start=1):
        constants += [_constant(f"W{layer}", w, f"initial W_{layer}"),
                      _constant(f"b{layer}", b, f"initial b_{layer}")]
    constants.append(_constant("v", v, "initial output weights"))
    constants = tuple(constants)

    jet_arrays, jet_statements = jet_program(net, phi, order, points)
    scaling = spec["noise_scaling"]
    noise = ETA * SIGMA if scaling == "eta" else sp.sqrt(ETA) * SIGMA
    params = [
        Parameter(STEP, "number of completed noisy gradient steps t", STEP_DOMAIN,
                  float(spec["steps"]), "t"),
        Parameter(TEST_POINT, "test input number (0-based)", Domain(0.0, n_test - 1.0,
                  integer=True), 0.0, "x_*"),
        Parameter(ETA, "learning rate eta", POSITIVE, spec["learning_rate"], r"\eta"),
        Parameter(SIGMA, "noise standard deviation sigma", NONNEGATIVE, spec["noise_std"],
                  r"\sigma"),
    ]
    scale_text = "eta sigma" if scaling == "eta" else "sqrt(eta) sigma"
    items: list[Item] = [Formula("noise_step", noise, f"per-step noise scale s = {scale_text}",
                                 f"{REF}, section 2")]

    def program(name: str, arrays, setup, body, finish, output, meaning, section,
                internal=False) -> ArrayProgram:
        return ArrayProgram(name, constants, tuple(jet_arrays) + tuple(arrays),
                            tuple(jet_statements) + tuple(setup),
                            STEP if body else sp.Integer(0), tuple(body),
                            tuple(finish), output, meaning, f"{REF}, section {section}",
                            internal)

    items += ITEMS_BY_ORDER[order](program, n, points, P)
    notes = [
        f"Network: input dimension {d}, hidden widths {list(net.widths)}, activation "
        f"phi(x) = {sp.sstr(phi)}; P = {P} weights; {n} training and {n_test} test inputs.",
        f"Noisy gradient descent, sum loss, noise scaling s = "
        f"{'eta sigma' if scaling == 'eta' else 'sqrt(eta) sigma'}; order {order} "
        f"Taylor expansion around w_0 "
        f"({'linearised network, exact moments' if order == 1 else 'Gaussian closure'}).",
        "Standard parametrisation; w = (W_1 row-major, b_1, ..., W_L, b_L, v).",
        "Order-1 closed forms (section 3.2; Theta invertible): E f_t(X) = Y + A^t r_0, "
        "Cov f_t(X) = s^2 (I - A^{2t}) [eta (2I - eta Theta)]^{-1}, A = I - eta Theta; at a test "
        "input E f_t(x) = f_0(x) - Theta(x,X) Theta^{-1} (I - A^t) r_0.  The kernels run the "
        "one-step maps (exact for the linearised network); the closed forms, by one "
        "eigendecomposition, are the independent oracle of the tests "
        "(runtime/families/expectation/reference.py).",
    ]
    latex = [("noise_step", "s"), ("mean_output", r"\mathbb{E}f_t(x_*)"),
             ("output_variance", r"\mathrm{Var}\,f_t(x_*)"), ("expected_loss",
             r"\mathbb{E}L_t"), ("loss_hessian_trace", r"\mathrm{tr}\,\bar K_t"),
             ("closure_indicator", "c_t"),
             ("mean_weights_hessian_trace", r"\mathrm{tr}\,\nabla^2L^{(2)}(m_t)"),
             ("Jac", "J"), ("Hes", "H"), ("ThetaZZ", r"\Theta"),
             ("mu", r"\mu"), ("grad", r"\mathsf{a}"), ("rho", r"\rho"), ("K", r"\bar K")]
    return FormulaSet(name=spec.stem, family="expectation", source=spec.source,
                      params=tuple(params), items=tuple(items), latex_names=tuple(latex),
                      notes=tuple(notes),
                      constraints=(("stability_margin", "eta lambda_max must stay below 2 "
                                    "at each state s up to the step asked (lambda_max of Theta "
                                    "at order 1, of the expected loss Hessian K-bar_s at orders "
                                    "2 and 3): use a smaller learning_rate (at orders 2 and 3 "
                                    "also a smaller noise_std)"),))
