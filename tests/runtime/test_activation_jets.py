"""The references' activation evaluator (plain numpy, forward-mode derivatives) against the
derivation's sympy derivatives, for every whitelisted function."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from netderive.derivations.activation import ACTIVATION_VARIABLE, parse_activation
from netderive.derivations.expectation import activation_derivatives
from netderive.derivations.schema import ACTIVATION_FUNCTIONS
from netderive.runtime.activation import (
    FUNCTIONS,
    MAX_ORDER,
    ActivationSyntaxError,
    activation_derivative,
    activation_functions,
    activation_jet,
)

#: Every whitelisted function (at least once each, nested and combined), the bundled
#: activations and expressions whose derivatives need the product, quotient and power rules.
EXPRESSIONS = (
    "abs(x)", "exp(-x**2/2)", "log(1+x**2)", "sqrt(1+x**2)", "tanh(x)", "sinh(x)", "cosh(x/2)",
    "sin(x)", "cos(2*x)", "atan(x)", "erf(x/sqrt(2))", "sigmoid(x)", "softplus(x)",
    "max(x, 0.1*x)", "min(x, 1)", "sign", "relu", "sign(x)", "relu(x)", "x/(1+abs(x))",
    "max(x**2, x)", "min(tanh(x), x**3)", "2**x", "x**3 - 3*x", "e**(x/3) + pi*x",
    "relu(x)*tanh(x)", "sign(x)*x**2", "1/(1+x**2)", "+x - -x", "log(cosh(x))",
    "x*sigmoid(1.702*x)", "softplus(-abs(x))", "exp(sin(x))*atan(x**2)/(2+cos(x))",
    "sqrt(abs(x))", "x**0.5", "(1+x**2)**-1.5", "erf(tanh(x))",
)
#: Points: random, and the kinks of the expressions above (0, 1, where max/min tie).
POINTS = np.concatenate([np.random.default_rng(7).normal(0.0, 2.0, 400),
                         [0.0, 1.0, -1.0, 0.5, -0.5, 3.0, 1e-8, -1e-8]])
RTOL, ATOL = 1e-10, 1e-12


def sympy_jet(text: str, x: np.ndarray) -> list[np.ndarray]:
    """phi, phi', phi'', phi''' as the derivation has them (Dirac deltas dropped)."""
    exprs = activation_derivatives(parse_activation(text), MAX_ORDER)
    out = []
    with np.errstate(all="ignore"):
        for e in exprs:
            f = sp.lambdify(ACTIVATION_VARIABLE, e, modules=["scipy", "numpy"])
            out.append(np.broadcast_to(np.asarray(f(x), dtype=float), x.shape))
    return out


def test_the_whitelist_is_the_model_files() -> None:
    assert set(FUNCTIONS) == set(ACTIVATION_FUNCTIONS)
    called = {name for text in EXPRESSIONS for name in FUNCTIONS if name in text}
    assert called == set(FUNCTIONS)


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_jets_equal_the_derivations_derivatives(text: str) -> None:
    """Where sympy's value is finite the jets agree to 1e-10; where it is not, so are they."""
    ours = activation_jet(text, POINTS, MAX_ORDER)
    for k, (got, want) in enumerate(zip(ours, sympy_jet(text, POINTS), strict=True)):
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{text}, derivative {k}")
        assert not np.isfinite(got[~finite]).any(), (text, k, POINTS[~finite])


def test_kinks_are_differentiated_as_the_derivation_does() -> None:
    """At the kink: sign' = 0, |x|' = sign(0) = 0, max(x, 0)' = H(0) = 1/2 (sympy's
    Heaviside), second derivatives 0 (Dirac deltas dropped)."""
    zero = np.array([0.0])
    assert [float(v[0]) for v in activation_jet("sign", zero, 2)] == [0.0, 0.0, 0.0]
    assert [float(v[0]) for v in activation_jet("abs(x)", zero, 2)] == [0.0, 0.0, 0.0]
    assert [float(v[0]) for v in activation_jet("relu", zero, 2)] == [0.0, 0.5, 0.0]
    assert [float(v[0]) for v in activation_jet("relu", np.array([2.0]), 1)] == [2.0, 1.0]


def test_functions_keep_the_shape_of_their_argument() -> None:
    phi, dphi, d2phi = activation_functions("tanh(x)", 2)
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    for f in (phi, dphi, d2phi):
        assert f(x).shape == (3, 4)
    np.testing.assert_array_equal(phi(x), np.tanh(x))
    assert activation_derivative("relu", 2)(x).shape == (3, 4)  # a constant derivative too
    assert activation_derivative("x**2 + 1", 0)(np.float64(2.0)).shape == ()


@pytest.mark.parametrize("text", ["__import__('os')", "x.real", "lambda: x", "tanh", "foo(x)",
                                  "x if x else 1", "tanh(x, 1)", "max(x)", "x[0]", "'x'",
                                  "tanh(x", "x @ x", "x % 2", "tanh(x=1)"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ActivationSyntaxError, match="activation"):
        activation_jet(text, POINTS, 1)
