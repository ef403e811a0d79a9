"""Expectation recursions against Monte Carlo of noisy gradient descent on the network.

The Monte Carlo (``reference.py`` beside this module) is plain numpy: it runs
noisy gradient descent on the actual network, never the Taylor expansion.  This module
evaluates the generated kernels of both orders on the same steps and reports where each
order leaves the simulation (its *horizon*).

Tolerance of the horizon (stated in every table): the prediction is off at step t when
``|E f_pred - E f_MC| > 3 SE + MEAN_TOLERANCE * sd_MC`` (sd = the output's standard
deviation) or ``|Var_pred - Var_MC| > 3 SE + VARIANCE_TOLERANCE * Var_MC``, at any test input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from netderive.derivations.model import ModelSpec
from netderive.runtime.activation import activation_functions
from netderive.runtime.session import Build, apply_structural, build

from . import reference as ref

#: Allowed mean error, as a fraction of the simulated output's standard deviation.
MEAN_TOLERANCE = 0.02
#: Allowed relative variance error.
VARIANCE_TOLERANCE = 0.05
#: Derivatives of the activation the reference's jets use (phi, phi', phi'').
JET_ORDER = 2


@dataclass(frozen=True)
class ReferenceNetwork:
    """The model's network and data as plain arrays, as the reference sees them: initial
    weights from ``[init]`` by the reference's own rule, phi and its derivatives by the
    whitelisted evaluator (:mod:`netderive.runtime.activation`)."""

    params: ref.NetworkParams
    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]
    d2phi: Callable[[np.ndarray], np.ndarray]
    train_inputs: np.ndarray
    train_targets: np.ndarray
    test_inputs: np.ndarray
    noise_scaling: str


def reference_network(b: Build) -> ReferenceNetwork:
    """The network and data of ``b``'s model (nothing taken from the derivation)."""
    spec = b.spec
    data = spec["data"]
    train = np.array(data["train_inputs"], dtype=float)
    params = ref.initial_weights(spec["init"], spec["widths"], train.shape[1])
    phi, dphi, d2phi = activation_functions(spec["activation"], JET_ORDER)
    return ReferenceNetwork(params, phi, dphi, d2phi, train,
                            np.array(data["train_targets"], dtype=float),
                            np.array(data["test_inputs"], dtype=float), spec["noise_scaling"])


def monte_carlo(b: Build, values: Mapping[str, float], steps: Sequence[int], pairs: int,
                seed: int = 0):
    """Antithetic Monte Carlo of noisy GD on the model's network at ``values``."""
    net = reference_network(b)
    eta, sigma = float(values["learning_rate"]), float(values["noise_std"])
    return ref.simulate_noisy_gd(net.params, net.phi, net.dphi, net.train_inputs,
                                 net.train_targets, net.test_inputs, eta,
                                 ref.noise_scale(eta, sigma, net.noise_scaling), list(steps),
                                 pairs, seed)


def noiseless_outputs(b: Build, values: Mapping[str, float], steps: Sequence[int]
                      ) -> np.ndarray:
    """f_t at the test inputs under gradient descent without noise on the network itself."""
    net = reference_network(b)
    return ref.noiseless_gd(net.params, net.phi, net.dphi, net.train_inputs, net.train_targets,
                        net.test_inputs, float(values["learning_rate"]), list(steps)).outputs


def loss_hessian_trace_at(b: Build, displacement: np.ndarray) -> float:
    r""":math:`\mathrm{tr}\,\nabla^2L(w_0 + d) = \sum_i[|J_i|^2 + r_i\,\mathrm{tr}H_i]` of the
    network itself (jets by the numpy oracle)."""
    net = reference_network(b)
    w = ref.flatten_params(net.params) + np.asarray(displacement, dtype=float)
    f, jac, hes = ref.network_jets(ref.unflatten_params(w, net.params), net.phi, net.dphi,
                                   net.d2phi, net.train_inputs)
    r = f - net.train_targets
    return float(np.sum(jac**2) + np.sum(r * np.trace(hes, axis1=1, axis2=2)))


def noiseless_displacements(b: Build, values: Mapping[str, float], steps: Sequence[int]
                            ) -> np.ndarray:
    """w_t - w_0 of gradient descent without noise on the network, one row per step."""
    net = reference_network(b)
    run = ref.noiseless_gd(net.params, net.phi, net.dphi, net.train_inputs, net.train_targets,
                           net.test_inputs, float(values["learning_rate"]), list(steps))
    return np.asarray(run.weights) - ref.flatten_params(net.params)


def order_specs(spec: ModelSpec) -> dict[int, ModelSpec]:
    """The same model at orders 1 and 2, and 3 if the model's order is 3 (``spec`` itself at
    its own order)."""
    own = int(spec["order"])
    return {order: spec if own == order else apply_structural(spec, {"order": order},
                                                              "expectation report")
            for order in ((1, 2, 3) if own == 3 else (1, 2))}


def order_builds(b: Build) -> dict[int, Build]:
    """Builds of :func:`order_specs` (the given one reused)."""
    return {order: b if spec is b.spec else build(spec)
            for order, spec in order_specs(b.spec).items()}


def predictions(b: Build, values: Mapping[str, float], steps: Sequence[int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """E f_t and Var f_t, shape (len(steps), test inputs), from the generated kernels."""
    n_test = len(b.spec["data"]["test_inputs"])
    points = {"step": np.repeat(np.asarray(steps, dtype=float), n_test),
              "test_point": np.tile(np.arange(n_test, dtype=float), len(steps))}
    shape = (len(steps), n_test)
    mean = b.grid("mean_output", points, values, parallel=True).reshape(shape)
    var = b.grid("output_variance", points, values, parallel=True).reshape(shape)
    return mean, var


def off(mean, var, mc) -> np.ndarray:
    """Per step: is the prediction outside the tolerance of the module docstring?"""
    sd = np.sqrt(np.maximum(mc.var, 0.0))
    bad_mean = np.abs(mean - mc.mean) > 3 * mc.mean_se + MEAN_TOLERANCE * sd
    bad_var = np.abs(var - mc.var) > 3 * mc.var_se + VARIANCE_TOLERANCE * mc.var
    return np.any(bad_mean | bad_var, axis=1)


def horizon(steps: Sequence[int], flags: np.ndarray) -> str:
    """The first step whose prediction is off, or '> last step'."""
    bad = np.nonzero(flags)[0]
    return str(int(steps[bad[0]])) if bad.size else f"> {int(steps[-1])}"


def horizon_steps(last: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to ``last`` (and ``last`` itself)."""
    out, k = [], 0
    while True:
        for m in (1, 2, 5):
            t = m * 10**k
            if t > last:
                return sorted(set(out + [last])) if last >= 1 else [1]
            out.append(t)
        k += 1


def horizon_table(b: Build, settings: Sequence[tuple[float, float]], last: int, pairs: int,
                  seed: int = 0) -> str:
    """For each (eta, sigma): the first step at which order 1 and order 2 leave the Monte
    Carlo, as a Markdown table."""
    builds = order_builds(b)
    steps = horizon_steps(last)
    lines = [f"Horizon: first step t (of {', '.join(map(str, steps))}) at which the "
             f"prediction leaves the Monte Carlo ({2 * pairs} paths): |mean error| > 3 SE + "
             f"{MEAN_TOLERANCE:g} sd or |variance error| > 3 SE + {VARIANCE_TOLERANCE:g} Var, "
             "at any test input.", "",
             "| eta | sigma | order 1 | order 2 |", "|---|---|---|---|"]
    base = dict(b.defaults)
    for k, (eta, sigma) in enumerate(settings):
        values = {**base, "learning_rate": eta, "noise_std": sigma}
        mc = monte_carlo(b, values, steps, pairs, seed + k)
        cells = [horizon(steps, off(*predictions(builds[o], values, steps), mc))
                 for o in (1, 2)]
        lines.append(f"| {eta:g} | {sigma:g} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
