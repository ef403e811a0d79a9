"""Printers: any FormulaSet to LaTeX/Markdown and to a cached module of numba kernels.

Submodules are imported on first use, so that looking up a cached build does not pay
for importing sympy and numba.
"""

from importlib import import_module

_EXPORTS = {
    "CodegenError": "expressions",
    "compile_formulas": "cache",
    "ensure_built": "cache",
    "load_kernels": "cache",
    "lookup": "cache",
    "kernel_source": "numba_backend",
    "to_latex": "latex",
    "to_markdown": "latex",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'codegen' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
