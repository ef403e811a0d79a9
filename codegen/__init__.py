"""Printers: any FormulaSet to LaTeX/Markdown and to a cached module of numba kernels."""

from .cache import compile_formulas, ensure_built, load_kernels, lookup
from .expressions import CodegenError
from .latex import to_latex, to_markdown
from .numba_backend import kernel_source

__all__ = ["CodegenError", "compile_formulas", "ensure_built", "kernel_source", "load_kernels",
           "lookup", "to_latex", "to_markdown"]
