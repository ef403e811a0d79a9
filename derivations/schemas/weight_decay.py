"""Model-file schema of the weight-decay family (Ziyin, Li, Meng 2022)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ModelError
from ..schema import (
    LARGEST,
    POSITIVE_NUMBER,
    Key,
    Schema,
    either,
    integer,
    number,
    number_list,
    text,
)


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


SCHEMA = Schema(
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
