"""The model-file schema of every family (keys, types, domains, cross-key checks)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .model import (
    Key,
    ModelError,
    Schema,
    activation,
    choice,
    either,
    integer,
    number,
    number_list,
    text,
)

#: Largest number of gradient steps of the expectation family (its ``step`` parameter).
MAX_STEPS = 1_000_000
#: Beyond this, s^2 and gamma overflow double precision in the reduced formulas.
LARGEST = 1e8
POSITIVE_NUMBER = number(0.0, LARGEST, lower_open=True)


def _matrix(source: str, key: str, value: Any, spec: dict) -> tuple:
    allowed = "a square list of lists of numbers (d x d), symmetric positive definite"
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise ModelError(source, key, "expected a list of lists", allowed, value)
    rows = tuple(number_list(number())(source, f"{key}[{i}]", r, spec)
                 for i, r in enumerate(value))
    if any(len(r) != len(rows) for r in rows):
        raise ModelError(source, key, f"not square ({len(rows)} rows of lengths "
                         f"{sorted({len(r) for r in rows})})", allowed, value)
    return rows


_matrix.allowed = "a square list of lists of numbers (d x d), symmetric positive definite"


def _validate_weight_decay(source: str, values: dict[str, Any]) -> None:
    import numpy as np

    data = values["data"]
    a0 = np.array(data["input_covariance"], dtype=float)
    exy = np.array(data["input_output_covariance"], dtype=float)
    d = a0.shape[0]
    if exy.shape != (d,):
        raise ModelError(source, "data.input_output_covariance",
                         f"has {exy.size} entries but input_covariance is {d} x {d}",
                         f"a list of {d} numbers", list(exy))
    scale = max(1.0, float(np.abs(a0).max()))
    if not np.allclose(a0, a0.T, rtol=0.0, atol=1e-12 * scale):
        raise ModelError(source, "data.input_covariance", "not symmetric",
                         "a symmetric positive definite d x d matrix", show_value=False)
    smallest = float(np.linalg.eigvalsh(a0).min())
    if smallest <= 1e-12 * scale:
        raise ModelError(source, "data.input_covariance",
                         f"not positive definite (smallest eigenvalue {smallest:.3g})",
                         "a symmetric positive definite d x d matrix", show_value=False)
    with np.errstate(all="ignore"):
        explained = float(exy @ np.linalg.solve(a0, exy))
    if not math.isfinite(explained):
        raise ModelError(source, "data.input_output_covariance",
                         "too large: E[xy]^T A0^-1 E[xy] overflows",
                         "moments whose E[xy]^T A0^-1 E[xy] is a finite number",
                         show_value=False)
    if data["output_variance"] < explained * (1 - 1e-12):
        raise ModelError(source, "data.output_variance",
                         "inconsistent moments: E[y^2] < E[xy]^T A0^-1 E[xy] = "
                         f"{explained:.6g}", f"a number >= {explained:.6g}",
                         data["output_variance"])
    if not np.any(exy):
        raise ModelError(source, "data.input_output_covariance", "all zero: nothing to learn",
                         "a list of d numbers, not all zero", show_value=False)


def _complete_weight_decay(source: str, values: Mapping[str, Any],
                           overrides: dict[str, Any]) -> dict[str, Any]:
    """A new ``depth`` repeats equal ``widths`` (and an equal per-layer ``weight_decay``)."""
    out = dict(overrides)
    depth = out.get("depth")
    if isinstance(depth, float) and depth.is_integer():
        depth = int(depth)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        return out  # no depth given, or one that validation refuses with its own message
    widths, decay = values["widths"], values["weight_decay"]
    if "widths" not in out:
        if len(set(widths)) != 1:
            raise ModelError(source, "depth", f"the model's widths {list(widths)} are not all "
                             "equal", f"give widths too (a list of {depth}), e.g. --set "
                             f"widths={','.join(str(widths[0]) for _ in range(depth))}", depth)
        out["widths"] = [widths[0]] * depth
    if isinstance(decay, tuple) and "weight_decay" not in out:
        if len(set(decay)) != 1:
            raise ModelError(source, "depth", "the model has per-layer weight decays",
                             f"give weight_decay too (a list of {depth + 1})", depth)
        out["weight_decay"] = [decay[0]] * (depth + 1)
    return out


WEIGHT_DECAY = Schema(
    keys={
        "description": Key(text(), "free text"),
        "depth": Key(integer(1, 64), "number of hidden layers D", required=True),
        "widths": Key(number_list(integer(1, 100000), "depth"), "hidden widths d_1..d_D",
                      required=True),
        "noise_variance": Key(number(0.0, LARGEST),
                              "variance sigma^2 of the multiplicative noise",
                              default=0.0),
        "weight_decay": Key(
            either(POSITIVE_NUMBER, number_list(POSITIVE_NUMBER, "depth", offset=1),
                   allowed="a number in (0, 1e8], or a list of depth+1 such numbers"),
            "weight decay gamma (one for all layers, or per layer W1..WD, U)",
            required=True),
    },
    tables={
        "data": {
            "input_covariance": Key(_matrix, "A0 = E[x x^T]", required=True),
            "input_output_covariance": Key(number_list(number()), "E[x y]", required=True),
            "output_variance": Key(number(0.0), "E[y^2]", required=True),
        }
    },
    validate=_validate_weight_decay,
    complete=_complete_weight_decay,
)

def _validate_large_deviation(source: str, values: dict[str, Any]) -> None:
    if values["perturbation"] == "dilution" and "p" not in values:
        raise ModelError(source, "p", "missing (dilution needs the fraction of weights removed)",
                         "a number in [0, 1)", show_value=False)


LARGE_DEVIATION = Schema(
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


EXPECTATION = Schema(
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

SCHEMAS: dict[str, Schema] = {
    "weight_decay": WEIGHT_DECAY,
    "large_deviation": LARGE_DEVIATION,
    "expectation": EXPECTATION,
}
