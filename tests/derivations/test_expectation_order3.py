"""The order-3 expectations of the expectation family (notes section 5) against exact
Gaussian quadrature.

The statements that ``derivations.expectation`` emits for the cubic model (its coefficients
around the mean, E grad L, K-bar = E Hessian of L, the variance) are run by the IR
interpreter on random jets with P = 2 weights and 2 training rows, and compared with
tensor-product Gauss-Hermite quadrature over d ~ N(m, S) of the cubic Taylor polynomial
r(d) = r0 + J d + d^T H d / 2 + T[d, d, d] / 6 itself (4 nodes per dimension are exact
for the degree-6 integrands): no shared algebra.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp
from ir_interpreter import evaluate

from netderive.derivations import expectation as ex
from netderive.derivations.ir import ArrayConstant, ArrayProgram, FormulaSet, Parameter

P, N = 2, 2


def random_jets(seed: int):
    rng = np.random.default_rng(seed)
    r0 = rng.normal(size=N)
    jac = rng.normal(size=(N, P))
    hes = rng.normal(size=(N, P, P))
    hes = (hes + hes.transpose(0, 2, 1)) / 2
    tes = rng.normal(size=(N, P, P, P))
    tes = sum(tes.transpose(0, *perm) for perm in itertools.permutations((1, 2, 3))) / 6
    m = rng.normal(size=P) * 0.5
    a = rng.normal(size=(P, P)) * 0.4
    s = a @ a.T + 0.1 * np.eye(P)
    return r0, jac, hes, tes, m, s


def program_values(jets) -> dict[str, float]:
    """Run the emitted statements (interpreter) and read g, K, E r, Var r."""
    r0, jac, hes, tes, m, s = jets

    def const(name, value):
        value = np.asarray(value, dtype=float)
        return ArrayConstant(name, value.shape, tuple(value.ravel()), name)

    constants = (const("F", r0), const("Y", np.zeros(N)), const("Jac", jac), const("Hes", hes),
                 const("Tes", tes), const("m", m), const("S", s))
    arrays, moments = ex.cubic_moments(N, P)
    var_arrays, variance = ex.cubic_variance(N, P, lambda k: k, "train")
    eta = Parameter(ex.ETA, "unused", default=0.1)
    outputs = {}
    for name, output in [(f"g{p}", sp.Function("g")(p)) for p in range(P)] + [
            (f"K{p}{q}", sp.Function("K")(p, q)) for p in range(P) for q in range(P)] + [
            (f"rho{k}", sp.Function("rho")(k)) for k in range(N)] + [
            (f"var{k}", sp.Function("var_train")(k)) for k in range(N)]:
        outputs[name] = output
    items = tuple(ArrayProgram(name, constants, tuple(arrays + var_arrays),
                               tuple(moments + variance), sp.Integer(0), (), (), output,
                               name, "test") for name, output in outputs.items())
    fs = FormulaSet("order3", "test", "test", (eta,), items)
    return {name: float(evaluate(fs, name, {"learning_rate": 0.1})) for name in outputs}


def quadrature_values(jets) -> dict[str, float]:
    r0, jac, hes, tes, m, s = jets
    z, w = np.polynomial.hermite_e.hermegauss(4)
    w = w / np.sqrt(2 * np.pi)
    chol = np.linalg.cholesky(s)
    g, K = np.zeros(P), np.zeros((P, P))
    er, er2 = np.zeros(N), np.zeros(N)
    for (z1, w1), (z2, w2) in itertools.product(zip(z, w, strict=True), repeat=2):
        d = m + chol @ np.array([z1, z2])
        weight = w1 * w2
        for k in range(N):
            r = (r0[k] + jac[k] @ d + d @ hes[k] @ d / 2
                 + np.einsum("abc,a,b,c->", tes[k], d, d, d) / 6)
            grad = jac[k] + hes[k] @ d + np.einsum("pab,a,b->p", tes[k], d, d) / 2
            hess = hes[k] + np.einsum("pqa,a->pq", tes[k], d)
            g += weight * r * grad
            K += weight * (np.outer(grad, grad) + r * hess)
            er[k] += weight * r
            er2[k] += weight * r * r
    out = {f"g{p}": g[p] for p in range(P)}
    out.update({f"K{p}{q}": K[p, q] for p in range(P) for q in range(P)})
    out.update({f"rho{k}": er[k] for k in range(N)})
    out.update({f"var{k}": er2[k] - er[k] ** 2 for k in range(N)})
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cubic_model_expectations_match_gauss_hermite(seed) -> None:
    jets = random_jets(seed)
    got, want = program_values(jets), quadrature_values(jets)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-10, abs=1e-12), (seed, name)


def test_third_derivative_jets_match_finite_differences_of_the_oracle_hessian() -> None:
    """Tes (the IR's forward propagation of third derivatives through two tanh layers, run
    by the interpreter) against central differences of the numpy oracle's exact Hessian
    (runtime/families/expectation/reference.py, forward-over-reverse)."""
    from netderive.derivations import parse_model
    from netderive.runtime.families.expectation.reference import (
        flatten_params,
        network_jets,
        unflatten_params,
    )

    raw = {"family": "expectation", "activation": "tanh(x)", "widths": [3, 2],
           "learning_rate": 0.1, "noise_std": 0.1, "order": 3, "steps": 1,
           "data": {"train_inputs": [[0.4, -0.7]], "train_targets": [0.2],
                    "test_inputs": [[-0.3, 0.9]]}, "init": {"seed": 4}}
    spec = parse_model(raw, "jets.toml")
    fs = ex.derive(spec)
    program = fs.item("mean_output")
    items = tuple(ArrayProgram(f"T{k}", program.constants, program.arrays, program.setup,
                               sp.Integer(0), (), (), sp.Function("Tes")(1, *idx), "t", "t")
                  for k, idx in enumerate([(0, 0, 0), (3, 7, 12), (5, 5, 14), (9, 11, 13),
                                           (1, 16, 16), (2, 8, 17)]))
    tiny = FormulaSet("jets", "test", "test", (Parameter(ex.ETA, "unused", default=0.1),), items)
    ws, bs, v = ex.initial_weights(spec, 2)
    w0 = flatten_params((ws, bs, v))
    x = np.array([[-0.3, 0.9]])

    def hessian(w):
        return network_jets(unflatten_params(w, (ws, bs, v)), np.tanh,
                            lambda t: 1 - np.tanh(t) ** 2,
                            lambda t: -2 * np.tanh(t) * (1 - np.tanh(t) ** 2), x)[2][0]

    h = 1e-5
    for k, (p, q, r) in enumerate([(0, 0, 0), (3, 7, 12), (5, 5, 14), (9, 11, 13), (1, 16, 16),
                                   (2, 8, 17)]):
        step = np.zeros(w0.size)
        step[r] = h
        want = (hessian(w0 + step)[p, q] - hessian(w0 - step)[p, q]) / (2 * h)
        got = float(evaluate(tiny, f"T{k}", {"learning_rate": 0.1}))
        assert got == pytest.approx(want, rel=1e-6, abs=1e-8), (p, q, r)
