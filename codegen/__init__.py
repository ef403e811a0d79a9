"""Printers: any FormulaSet to LaTeX/Markdown and to a cached module of numba kernels.

What lives here: ``latex.py`` (LaTeX and Markdown, one rule per IR kind), ``kernels/`` (the
numba printer: a shared core and one emitter module per IR kind), ``expressions.py``
(sympy expressions as numba-safe Python), ``algorithms/`` (the fixed numerical algorithms
that generated modules import: root search, min-plus dynamic programming, banded solve,
path-saddle continuation, largest eigenvalue), ``drivers.py`` (plain-Python drivers that
generated modules import), ``cache.py`` (content-addressed, atomic builds and their
manifest) and ``version.py`` (``GENERATOR_VERSION``).  The IR kinds are listed once, in
``netderive.derivations.ir`` (``ITEM_KINDS``); every printer finds its rule by kind.

May import: sympy, numpy, numba, ``netderive.derivations`` (the IR).  Never imports
``netderive.runtime``.  Submodules are imported on first use, so that looking up a cached
build does not pay for importing sympy and numba.
"""

from importlib import import_module

_EXPORTS = {
    "CodegenError": "expressions",
    "compile_formulas": "cache",
    "ensure_built": "cache",
    "load_kernels": "cache",
    "lookup": "cache",
    "kernel_source": "kernels",
    "to_latex": "latex",
    "to_markdown": "latex",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'codegen' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
