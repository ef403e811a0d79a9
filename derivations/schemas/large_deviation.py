"""Model-file schema of the large-deviation family (Li and Saad 2020)."""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from ..schema import (
    LARGEST,
    Key,
    Schema,
    activation,
    choice,
    integer,
    number,
    text,
)


def _validate_large_deviation(source: str, values: dict[str, Any]) -> None:
    if values["perturbation"] == "dilution" and "p" not in values:
        raise ModelError(source, "p", "missing (dilution needs the fraction of weights removed)",
                         "a number in [0, 1)", show_value=False)


SCHEMA = Schema(
    keys={
        "description": Key(text(), "free text"),
        "activation": Key(activation(), 'activation: "sign", "relu" or an expression in x',
                          required=True),
        "perturbation": Key(choice("dilution", "binarization"),
                            "how the copy's weights are perturbed", required=True),
        "p": Key(number(0.0, 1.0, upper_open=True),
                 "dilution probability: the fraction of weights set to zero"),
        "depth": Key(integer(1, 1000), "number of layers L", required=True),
        "input_overlap": Key(number(-1.0, 1.0), "overlap q_0 of the two inputs", default=1.0),
        "grid_size": Key(integer(3, 20001),
                         "points of the dynamic-programming grid (odd keeps q = 0 on it)"),
        "weight_variance": Key(number(0.0, LARGEST, lower_open=True),
                               "sigma_w^2 = N Var W (matters only for non-homogeneous "
                               "activations)", default=1.0),
    },
    validate=_validate_large_deviation,
)
