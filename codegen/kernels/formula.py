"""Kernels of a ``Formula``: its closed form, earlier items called (never inlined)."""

from __future__ import annotations

from netderive.codegen.expressions import print_assignments
from netderive.derivations.ir import Formula

from .printer import SEPARATOR, KernelPrinter


def emit(p: KernelPrinter, item: Formula, args: tuple[str, ...]) -> str:
    """``name(*args)`` = the expression (CSE temporaries first), and its grid kernels."""
    lines = p.header(item, args)
    lines += p.dependency_lines(p.fs.dependencies(item), "    ")
    temps, (value,) = print_assignments([item.expr], p.names(), "    ")
    return "\n".join(lines + temps + [f"    return {value}"]) + SEPARATOR + p.pointwise_grids(
        item, args)
