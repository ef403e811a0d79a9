"""Model-file schema of the expectation family (Borovykh 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ModelError
from ..schema import (
    LARGEST,
    POSITIVE_NUMBER,
    Key,
    Schema,
    activation,
    choice,
    integer,
    number,
    number_list,
    text,
)

#: Largest number of gradient steps (the model's ``steps``, the ``step`` parameter).
MAX_STEPS = 1_000_000


def _rows(source: str, key: str, value: Any, spec: dict) -> tuple:
    """A rectangular list of lists of numbers (one row per input vector / unit)."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise ModelError(source, key, "expected a non-empty list of lists", _rows.allowed, value)
    rows = tuple(number_list(number(-LARGEST, LARGEST))(source, f"{key}[{i}]", r, spec)
                 for i, r in enumerate(value))
    if len({len(r) for r in rows}) != 1:
        raise ModelError(source, key, f"rows of different lengths {sorted({len(r) for r in rows})}",
                         _rows.allowed, value)
    return rows


_rows.allowed = "a list of equally long lists of numbers"


def _matrices(source: str, key: str, value: Any, spec: dict) -> tuple:
    if not isinstance(value, list) or not value:
        raise ModelError(source, key, "expected a non-empty list of matrices", _matrices.allowed,
                         value)
    return tuple(_rows(source, f"{key}[{i}]", m, spec) for i, m in enumerate(value))


_matrices.allowed = "a list of matrices (lists of rows); matrix l maps layer l-1 to layer l"


def _validate_expectation(source: str, values: dict[str, Any]) -> None:
    data, init, widths = values["data"], values["init"], values["widths"]
    train, test = data["train_inputs"], data["test_inputs"]
    d = len(train[0])
    if len(test[0]) != d:
        raise ModelError(source, "data.test_inputs", f"inputs of length {len(test[0])}, the "
                         f"training inputs have {d}", f"lists of {d} numbers", show_value=False)
    if len(data["train_targets"]) != len(train):
        raise ModelError(source, "data.train_targets", f"{len(data['train_targets'])} targets "
                         f"for {len(train)} training inputs", f"a list of {len(train)} numbers",
                         show_value=False)
    explicit = [k for k in ("hidden_weights", "hidden_biases", "output_weights") if k in init]
    if ("seed" in init) == bool(explicit) or (explicit and len(explicit) != 3):
        raise ModelError(source, "[init]", "give either seed or all of hidden_weights, "
                         "hidden_biases and output_weights",
                         "seed = <integer>, or the three explicit keys", show_value=False)
    if not explicit:
        return
    dims = [d, *widths]
    weights, biases = init["hidden_weights"], init["hidden_biases"]
    if len(weights) != len(widths) or len(biases) != len(widths):
        raise ModelError(source, "init.hidden_weights", f"{len(weights)} weight matrices and "
                         f"{len(biases)} bias vectors for {len(widths)} hidden layers",
                         f"{len(widths)} of each", show_value=False)
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        shape = (len(w), len(w[0]))
        if shape != (dims[layer + 1], dims[layer]):
            raise ModelError(source, f"init.hidden_weights[{layer}]", f"shape {shape[0]} x "
                             f"{shape[1]}", f"{dims[layer + 1]} x {dims[layer]} (rows = units of "
                             f"layer {layer + 1}, columns = inputs from below)", show_value=False)
        if len(b) != dims[layer + 1]:
            raise ModelError(source, f"init.hidden_biases[{layer}]", f"{len(b)} entries",
                             f"{dims[layer + 1]} numbers", show_value=False)
    if len(init["output_weights"]) != widths[-1]:
        raise ModelError(source, "init.output_weights", f"{len(init['output_weights'])} "
                         "entries", f"{widths[-1]} numbers (the last hidden width)",
                         show_value=False)


def _complete_expectation(source: str, values: Mapping[str, Any],
                          overrides: dict[str, Any]) -> dict[str, Any]:
    """Explicit initial weights fix the widths: a change of widths needs ``[init] seed``."""
    if "widths" in overrides and "hidden_weights" in values["init"] and tuple(
            overrides["widths"]) != tuple(values["widths"]):
        raise ModelError(source, "widths", "the model's [init] gives explicit weights for "
                         f"widths {list(values['widths'])}", "a model file with [init] seed = "
                         "N (random initial weights of any widths)", list(overrides["widths"]))
    return dict(overrides)


SCHEMA = Schema(
    keys={
        "description": Key(text(), "free text"),
        "activation": Key(activation(), "activation: an expression in x", required=True),
        "widths": Key(number_list(integer(1, 4096)), "hidden widths n_1..n_L", required=True),
        "learning_rate": Key(POSITIVE_NUMBER, "learning rate eta", required=True),
        "noise_std": Key(number(0.0, LARGEST), "noise standard deviation sigma", required=True),
        "noise_scaling": Key(choice("eta", "sqrt_eta"),
                             "per-step noise s = eta sigma (\"eta\") or sqrt(eta) sigma",
                             default="eta"),
        "order": Key(integer(1, 3), "order of the Taylor expansion in the weights", default=1),
        "steps": Key(integer(0, MAX_STEPS), "default number of gradient steps", default=100),
    },
    tables={
        "data": {
            "train_inputs": Key(_rows, "training inputs (one list per input)", required=True),
            "train_targets": Key(number_list(number(-LARGEST, LARGEST)), "training targets",
                                 required=True),
            "test_inputs": Key(_rows, "test inputs (one list per input)", required=True),
        },
        "init": {
            "seed": Key(integer(0, 2**63 - 1), "seed of the initial weights (N(0, 1/fan-in))"),
            "hidden_weights": Key(_matrices, "hidden weight matrices"),
            "hidden_biases": Key(number_list(number_list(number(-LARGEST, LARGEST))),
                                 "hidden bias vectors"),
            "output_weights": Key(number_list(number(-LARGEST, LARGEST)), "output weights v"),
        },
    },
    validate=_validate_expectation,
    complete=_complete_expectation,
)
