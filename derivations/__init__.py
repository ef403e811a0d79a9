"""Mathematics only: model files in, FormulaSets (the IR) out.

What lives here: the IR (``ir.py``, with the parameter domains of ``domain.py``), the model
files (``model.py``: loading and validation; ``schema.py``: keys and checkers; ``errors.py``),
the family registry (``families.py``) with each family's schema (``schemas/<family>.py``) and
derivation (``<family>.py``), and shared mathematics (``activation.py``: whitelisted
activation expressions; ``gaussian.py``: Gaussian expectations).

May import: sympy, numpy, the standard library.  Never imports ``netderive.codegen`` or
``netderive.runtime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .families import FAMILIES, derivation_of
from .model import ModelError, ModelSpec, family_names, load_model, parse_model

if TYPE_CHECKING:
    from .ir import FormulaSet


def derive(spec: ModelSpec) -> FormulaSet:
    """The FormulaSet of a validated model (its family's ``derive``)."""
    if spec.family not in FAMILIES:
        raise ModelError(spec.source, "family", "unknown family",
                         ", ".join(f'"{f}"' for f in sorted(FAMILIES)), spec.family)
    return derivation_of(spec.family)(spec)


__all__ = ["ModelError", "ModelSpec", "derive", "family_names", "load_model", "parse_model"]
