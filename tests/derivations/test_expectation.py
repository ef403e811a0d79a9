"""The expectation family's derivation: model validation, structure and size of the IR.

No kernels are compiled here (the values are tested in tests/reference/ and the generated
code against the IR interpreter in tests/codegen/).
"""

from __future__ import annotations

import time

import pytest
import sympy as sp

from netderive.derivations import ModelError, derive, parse_model
from netderive.derivations.activation import ACTIVATION_VARIABLE, parse_activation
from netderive.derivations.expectation import Network, activation_derivatives
from netderive.derivations.ir import ArrayProgram

DATA = {"train_inputs": [[1.0, 0.5], [-0.5, 1.0]], "train_targets": [0.3, -0.2],
        "test_inputs": [[0.2, 0.1]]}


def model(**overrides) -> dict:
    raw = {"family": "expectation", "activation": "tanh(x)", "widths": [3],
           "learning_rate": 0.1, "noise_std": 0.2, "order": 2, "steps": 10,
           "data": DATA, "init": {"seed": 1}}
    raw.update(overrides)
    return raw


def statement_count(fs) -> int:
    program = next(i for i in fs.items if isinstance(i, ArrayProgram))
    return len(program.statements())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_derivation_size_grows_with_layers_not_with_weights(order) -> None:
    sizes, times = {}, {}
    for widths in ([4], [64], [4, 4], [64, 64], [4, 4, 4]):
        start = time.perf_counter()
        fs = derive(parse_model(model(widths=widths, order=order), "m.toml"))
        times[tuple(widths)] = time.perf_counter() - start
        sizes[tuple(widths)] = statement_count(fs)
    assert sizes[(4,)] == sizes[(64,)]
    assert sizes[(4, 4)] == sizes[(64, 64)]
    assert sizes[(4,)] < sizes[(4, 4)] < sizes[(4, 4, 4)]
    # P = 16 vs P = 4352 weights: the derivation time does not follow P
    assert times[(64, 64)] < 5 * times[(4, 4)] + 1.0


def test_network_offsets_flatten_w_as_the_notes_do() -> None:
    net = Network(2, (4,))  # case A: W1 (8), b1 (4), v (4)
    assert (net.weight_offset(1), net.bias_offset(1), net.output_offset, net.size) == \
        (0, 8, 12, 16)
    deep = Network(3, (5, 2))
    assert deep.bias_offset(2) == 15 + 5 + 10 and deep.size == 15 + 5 + 10 + 2 + 2


def test_kinked_activation_derivatives_drop_the_dirac_delta() -> None:
    x = ACTIVATION_VARIABLE
    phi, d1, d2 = activation_derivatives(parse_activation("relu"), 2)
    assert d1 == sp.Heaviside(x) and d2 == 0
    _, t1, t2 = activation_derivatives(parse_activation("tanh(x)"), 2)
    assert sp.simplify(t1 - (1 - sp.tanh(x) ** 2)) == 0
    assert not t2.has(sp.cosh), "tanh derivatives stay polynomials in tanh (no overflow)"


def test_quantities_and_parameters_of_the_contract() -> None:
    fs = derive(parse_model(model(), "m.toml"))
    assert {"mean_output", "output_variance"} <= set(fs.quantities)
    assert {p.name for p in fs.params} >= {"step", "test_point", "learning_rate", "noise_std"}
    assert fs.param("test_point").domain.contains(0) and not fs.param("test_point").domain \
        .contains(1)  # one test input
    order1 = derive(parse_model(model(order=1), "m.toml"))
    assert "closure_indicator" not in order1.quantities


def test_noise_scaling_enters_the_noise_step() -> None:
    eta, sigma = sp.symbols("learning_rate noise_std", positive=True)
    for scaling, want in (("eta", 0.1 * 0.2), ("sqrt_eta", 0.1**0.5 * 0.2)):
        fs = derive(parse_model(model(noise_scaling=scaling), "m.toml"))
        expr = fs.item("noise_step").expr
        value = float(expr.subs({s: v for s, v in zip(sorted(expr.free_symbols,
                                 key=lambda s: s.name), (0.1, 0.2), strict=True)}))
        assert value == pytest.approx(want)


@pytest.mark.parametrize("change, key", [
    ({"data": {**DATA, "train_targets": [0.3]}}, "data.train_targets"),
    ({"data": {**DATA, "test_inputs": [[0.2, 0.1, 0.0]]}}, "data.test_inputs"),
    ({"data": {**DATA, "train_inputs": [[1.0, 0.5], [1.0]]}}, "data.train_inputs"),
    ({"init": {}}, "[init]"),
    ({"init": {"seed": 1, "output_weights": [1.0, 2.0, 3.0]}}, "[init]"),
    ({"init": {"hidden_weights": [[[1.0, 2.0]]], "hidden_biases": [[0.0, 0.0, 0.0]],
               "output_weights": [1.0, 2.0, 3.0]}}, "init.hidden_weights[0]"),
    ({"init": {"hidden_weights": [[[1.0, 2.0]] * 3], "hidden_biases": [[0.0, 0.0]],
               "output_weights": [1.0, 2.0, 3.0]}}, "init.hidden_biases[0]"),
    ({"init": {"hidden_weights": [[[1.0, 2.0]] * 3], "hidden_biases": [[0.0] * 3],
               "output_weights": [1.0]}}, "init.output_weights"),
    ({"noise_scaling": "sqrt"}, "noise_scaling"),
    ({"order": 4}, "order"),
    ({"order": 0}, "order"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"widths": []}, "widths"),
])
def test_bad_models_name_the_key(change, key) -> None:
    with pytest.raises(ModelError) as info:
        parse_model(model(**change), "bad.toml")
    assert key in str(info.value) and "bad.toml" in str(info.value)


def test_explicit_weights_are_used_as_given() -> None:
    init = {"hidden_weights": [[[0.9, -0.6], [-0.4, 1.1], [1.3, 0.5]]],
            "hidden_biases": [[0.1, -0.2, 0.3]], "output_weights": [0.8, -0.5, 0.6]}
    fs = derive(parse_model(model(init=init), "m.toml"))
    program = fs.item("mean_output")
    constants = {c.name: c for c in program.constants}
    assert constants["W1"].shape == (3, 2) and constants["W1"].values[:2] == (0.9, -0.6)
    assert constants["v"].values == (0.8, -0.5, 0.6)


def test_editing_activation_widths_or_order_changes_the_build_key() -> None:
    """The build key (codegen.cache) hashes the model's canonical content: a changed
    activation, width or order is a new build (``netderive build`` regenerates), an
    unchanged model is the same build."""
    from netderive.codegen.cache import build_key

    base = parse_model(model(), "m.toml")
    keys = {build_key(base.canonical())}
    for change in ({"activation": "log(1 + exp(x))"}, {"widths": [4]}, {"order": 1},
                   {"order": 3}):
        keys.add(build_key(parse_model(model(**change), "m.toml").canonical()))
    assert len(keys) == 5
    assert build_key(parse_model(model(), "m.toml").canonical()) == build_key(base.canonical())


# the interpreter's numpy Piecewise evaluates both branches (0/0 in the unused one)
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_closure_indicator_is_defined_at_step_0() -> None:
    """c_t -> 0 as S_t -> 0 (quadratic over linear in S): 0 at step 0 (S_0 = 0), not 0/0."""
    from ir_interpreter import evaluate

    fs = derive(parse_model(model(), "m.toml"))
    values = {"learning_rate": 0.1, "noise_std": 0.2}
    assert float(evaluate(fs, "closure_indicator", {**values, "step": 0})) == 0.0
    first = float(evaluate(fs, "closure_indicator", {**values, "step": 1}))
    assert 0.0 < first < 1.0
    # no noise: S stays 0 and so does c_t
    assert float(evaluate(fs, "closure_indicator", {**values, "noise_std": 0.0, "step": 3})) \
        == 0.0
