"""Kernels of an ``Expectation``: the closed form, or a tensor-product Gauss-Hermite sum whose
nodes and weights (for the standard normal) are module tables."""

from __future__ import annotations

import numpy as np

from netderive.codegen.expressions import CodegenError, print_assignments
from netderive.derivations.ir import Expectation

from .printer import SEPARATOR, KernelPrinter


def gauss_hermite_tables(p: KernelPrinter, order: int) -> tuple[str, str]:
    r"""Module tables of the ``order``-node rule for :math:`\mathbb E f(z)`, z ~ N(0, 1):
    nodes of the probabilists' Hermite polynomial, weights divided by :math:`\sqrt{2\pi}`."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    weights = weights / np.sqrt(2.0 * np.pi)
    node_name, weight_name = f"_GH_NODES_{order}", f"_GH_WEIGHTS_{order}"
    p.constant(node_name, f"{node_name} = np.array({[float(v) for v in nodes]!r})")
    p.constant(weight_name, f"{weight_name} = np.array({[float(v) for v in weights]!r})")
    return node_name, weight_name


def emit(p: KernelPrinter, item: Expectation, args: tuple[str, ...]) -> str:
    """``name(*args)``: the closed form, or one loop per variable over the quadrature nodes."""
    names = p.names()
    lines = p.header(item, args) + p.dependency_lines(p.fs.dependencies(item), "    ")
    if item.quadrature_order is None:
        temps, (value,) = print_assignments([item.closed_form], names, "    ")
        return "\n".join(lines + temps + [f"    return {value}"]) + SEPARATOR + \
            p.pointwise_grids(item, args)
    order = item.quadrature_order
    in_use = {q.name for q in p.fs.params} | set(names)
    for z in item.variables:
        if z.name in in_use:
            raise CodegenError(f"expectation {item.name}: variable {z.name} shadows a name "
                               "in use")
    nodes, weights = gauss_hermite_tables(p, order)
    depth = len(item.variables)
    lines.append("    _acc = 0.0")
    for level, z in enumerate(item.variables):
        ind = "    " * (level + 1)
        lines += [f"{ind}for _j{level} in range({order}):",
                  f"{ind}    {z.name} = {nodes}[_j{level}]",
                  f"{ind}    _w{level} = {weights}[_j{level}]"]
    inner = "    " * (depth + 1)
    temps, (value,) = print_assignments([item.integrand], names, inner, "_q")
    weight = " * ".join(f"_w{level}" for level in range(depth))
    lines += temps + [f"{inner}_acc += {weight} * ({value})", "    return _acc"]
    return "\n".join(lines) + SEPARATOR + p.pointwise_grids(item, args)
