"""Mathematics only: model files in, FormulaSets (the IR) out.

Never imports ``codegen`` or ``runtime``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .model import ModelError, ModelSpec, family_names, load_model, parse_model

if TYPE_CHECKING:
    from .ir import FormulaSet


def _families() -> dict[str, Callable[[ModelSpec], FormulaSet]]:
    from . import expectation, large_deviation, weight_decay

    return {
        "expectation": expectation.derive,
        "weight_decay": weight_decay.derive,
        "large_deviation": large_deviation.derive,
    }


def derive(spec: ModelSpec) -> FormulaSet:
    """The FormulaSet of a validated model (dispatch on ``spec.family``)."""
    families = _families()
    if spec.family not in families:
        raise ModelError(spec.source, "family", "unknown family",
                         ", ".join(f'"{f}"' for f in sorted(families)), spec.family)
    return families[spec.family](spec)


__all__ = ["ModelError", "ModelSpec", "derive", "family_names", "load_model", "parse_model"]
