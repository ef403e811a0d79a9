"""The core of the numba printer: what every kind's emitter shares, and the module around them.

:class:`KernelPrinter` walks the items of a FormulaSet and hands each to the emitter of its
kind (``emit(printer, item, args) -> str`` in ``codegen/kernels/<kind>.py``, found by
:func:`emitter_for`); the emitters use the printer for names, calls of earlier items,
headers, grid kernels, imports of the fixed algorithms and module-level tables.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable
from importlib import import_module
from types import ModuleType

import numba
import sympy as sp

from netderive.codegen.algorithms.templates import splice
from netderive.codegen.expressions import CodegenError
from netderive.codegen.version import GENERATOR_VERSION
from netderive.derivations.ir import ITEM_KINDS, FormulaSet, Item

#: Names a parameter or item may not take in generated code.
RESERVED = frozenset({"math", "nb", "np", "numba", "numpy", "CONTENT_HASH", "BUILD_KEY",
                      "KERNEL_ARGUMENTS", "QUANTITIES"})
#: Suffixes of the kernels generated besides ``name`` (an item or parameter may not be named
#: like one of them).
KERNEL_SUFFIXES = ("_grid", "_grid_serial", "_trajectory", "_curves", "_curves_dp", "_path")

#: numpy's error model: a division by zero gives inf/nan (the root scan skips those) instead of
#: raising inside a kernel; measured ~15% faster on the b* scan.
NJIT = '@nb.njit(cache=True, error_model="numpy")'
NJIT_PARALLEL = '@nb.njit(cache=True, parallel=True, error_model="numpy")'
#: Between two top-level definitions of the generated module.
SEPARATOR = "\n\n\n"
#: Package of the fixed algorithms that generated modules import.
ALGORITHMS = "netderive.codegen.algorithms"


def kind_module_name(kind: type) -> str:
    """The emitter module of an item kind: its class name in snake case
    (``MinPlusRecursion`` -> ``min_plus_recursion``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()


def emitter_for(kind: type) -> ModuleType:
    """The emitter module of ``kind`` (``codegen/kernels/<kind>.py`` with ``emit``)."""
    module = None
    if kind in ITEM_KINDS:
        try:
            module = import_module(f"{__package__}.{kind_module_name(kind)}")
        except ModuleNotFoundError:
            module = None
    if module is None or not callable(getattr(module, "emit", None)):
        raise CodegenError(f"KernelPrinter has no rule for {kind.__name__}")
    return module


def local(name: str) -> str:
    """Local variable holding the value of item ``name`` inside another kernel."""
    return f"_v_{name}"


def params_tuple(args: Iterable[str]) -> str:
    """A tuple of the arguments ``args`` as written in the call of an algorithm."""
    args = list(args)
    return f"({args[0]},)" if len(args) == 1 else f"({', '.join(args)})"


def unpack_params(args: Iterable[str], indent: str, tuple_name: str = "_p") -> list[str]:
    """Lines that unpack ``tuple_name`` (see :func:`params_tuple`) into the names ``args``."""
    args = list(args)
    if not args:
        return []
    return [f"{indent}{', '.join(args)}{',' if len(args) == 1 else ''} = {tuple_name}"]


class KernelPrinter:
    """Turns a FormulaSet into module source: one emitter per IR item kind."""

    def __init__(self, fs: FormulaSet) -> None:
        self.fs = fs
        #: (module, name) of each imported algorithm -> its name in the generated module
        self._imports: dict[tuple[str, str], str] = {}
        #: module-level tables: name -> assignment line
        self._constants: dict[str, str] = {}
        #: items whose grid function serves several items at once: item -> that function
        #: (``SHARED_GRIDS`` of the module: the runtime evaluates them in one call)
        self.shared_grids: dict[str, str] = {}
        #: spliced algorithms: name -> source
        self._spliced: dict[str, str] = {}
        #: compiled pieces shared by several items: prefix -> key -> name
        self._shared: dict[str, dict[object, str]] = {}
        generated = {f"{i.name}{s}" for i in fs.items for s in KERNEL_SUFFIXES}
        for name in [p.name for p in fs.params] + [i.name for i in fs.items]:
            if name in RESERVED or keyword.iskeyword(name):
                raise CodegenError(f"{fs.name}: name {name!r} is reserved in generated code")
            if name in generated:
                raise CodegenError(f"{fs.name}: name {name!r} is also a generated kernel name")

    # -- what emitters record ----------------------------------------------------------
    def use(self, module: str, name: str) -> str:
        """Import ``name`` from ``netderive.codegen.<module>``; returns its name in the
        generated module (``_name``: item and parameter names never start with ``_``)."""
        return self._imports.setdefault((f"netderive.codegen.{module}", name), f"_{name}")

    def algorithm(self, module: str, name: str) -> str:
        """Import a fixed algorithm (``netderive.codegen.algorithms.<module>``)."""
        return self.use(f"algorithms.{module}", name)

    def splice(self, template: Callable, prefix: str, callbacks: dict[str, str]
               ) -> tuple[str, str]:
        """A fixed algorithm that calls this module's functions: the template ``template``
        (``codegen/algorithms/templates.py``) spliced as ``{prefix}_<name>`` with
        ``callbacks`` (placeholder -> function of this module), the constants and cached
        algorithms it reads imported.  Returns its name and its source (with the templates
        it calls, once per prefix)."""
        spliced = splice(template, prefix, callbacks,
                         lambda module, name: self.use(module.removeprefix("netderive.codegen."),
                                                       name))
        blocks = [f"{NJIT}\n{source}" for name, source in spliced.functions
                  if self._spliced.setdefault(name, source) is source]
        return spliced.functions[-1][0], SEPARATOR.join(blocks)

    def constant(self, name: str, line: str) -> str:
        """A module-level table ``name`` (assignment ``line``), written once."""
        self._constants.setdefault(name, line)
        return name

    def shared(self, prefix: str, key: object) -> tuple[str, bool]:
        """The name of compiled pieces shared by the items with this ``key`` (``prefix_N``),
        and whether it is new (then the caller emits them)."""
        names = self._shared.setdefault(prefix, {})
        if key in names:
            return names[key], False
        names[key] = f"{prefix}_{len(names)}"
        return names[key], True

    # -- shared pieces ---------------------------------------------------------------
    def names(self) -> dict[str, str]:
        """Symbol name -> local variable: item symbols get ``_v_`` prefixes."""
        return {i.name: local(i.name) for i in self.fs.items}

    @staticmethod
    def dependencies_in(exprs: Iterable, deps: tuple[str, ...]) -> tuple[str, ...]:
        """The items of ``deps`` that ``exprs`` use, in definition order."""
        found = {s.name for e in exprs for s in sp.sympify(e).free_symbols}
        return tuple(d for d in deps if d in found)

    def dependency_lines(self, deps: tuple[str, ...], indent: str) -> list[str]:
        """Calls of the kernels of earlier items ``deps`` into their local variables."""
        return [f"{indent}{local(dep)} = {dep}({', '.join(self.fs.arguments(dep))})"
                for dep in deps]

    @staticmethod
    def docstring(item: Item, args: tuple[str, ...], extra: str = "") -> str:
        """Meaning, reference and argument order of a kernel."""
        doc = f"{item.meaning}\n\n    Reference: {item.ref}\n    Arguments: ({', '.join(args)})"
        return f'    """{doc}{extra}"""'

    def header(self, item: Item, args: tuple[str, ...]) -> list[str]:
        """Decorator, signature and docstring of the scalar kernel of ``item``."""
        return [NJIT, f"def {item.name}({', '.join(args)}):", self.docstring(item, args)]

    @staticmethod
    def pointwise_grids(item: Item, args: tuple[str, ...]) -> str:
        """``name_grid`` (``prange``) and ``name_grid_serial``: the scalar kernel at every
        point of 1-D arrays of equal length (``(_n)`` for a kernel without arguments)."""
        out = []
        for suffix, decorator, loop in (("_grid", NJIT_PARALLEL, "nb.prange"),
                                        ("_grid_serial", NJIT, "range")):
            if args:
                call = ", ".join(f"{a}[_i]" for a in args)
                signature = ", ".join(args)
                size = f"{args[0]}.shape[0]"
            else:
                call, signature, size = "", "_n", "_n"
            out.append("\n".join([
                decorator,
                f"def {item.name}{suffix}({signature}):",
                f'    """{item.name} at every grid point (1-D arrays of equal length)."""',
                f"    _out = np.empty({size})",
                f"    for _i in {loop}({size}):",
                f"        _out[_i] = {item.name}({call})",
                "    return _out",
            ]))
        return SEPARATOR.join(out)

    @staticmethod
    def python_grid(item: Item, args: tuple[str, ...], doc: str, body: list[str]) -> str:
        """``name_grid`` in plain Python (``body`` computes it from the argument arrays, or
        from ``_n`` without arguments), and ``name_grid_serial`` the same function: items
        whose kernels are Python around compiled pieces have one grid function."""
        return "\n".join([
            f"def {item.name}_grid({', '.join(args) if args else '_n'}):",
            f'    """{doc}"""',
            *body,
            "",
            "",
            f"{item.name}_grid_serial = {item.name}_grid",
        ])

    # -- dispatch ------------------------------------------------------------------
    def emit(self, item: Item) -> str:
        """The kernels of ``item``, by the emitter of its kind."""
        if type(item) not in ITEM_KINDS:
            raise CodegenError(f"{type(self).__name__} has no rule for {type(item).__name__}")
        return emitter_for(type(item)).emit(self, item, self.fs.arguments(item.name))

    # -- module --------------------------------------------------------------------
    def module(self, content_hash: str, build_key: str, source: str) -> str:
        """The whole generated module: header, imports, hashes, tables, kernels."""
        bodies = [self.emit(item) for item in self.fs.items]
        imports: dict[str, list[str]] = {}
        for (module, name), alias in sorted(self._imports.items()):
            imports.setdefault(module, []).append(f"{name} as {alias}")
        kernel_args = {i.name: self.fs.arguments(i.name) for i in self.fs.items}
        head = [
            f"# Generated by netderive (generator {GENERATOR_VERSION}) from {source}",
            f"# sympy {sp.__version__}, numba {numba.__version__}. Do not edit: rebuilt on any "
            "change.",
            f"# FormulaSet {self.fs.name} ({self.fs.family}): {len(self.fs.items)} items.",
            "import math",
            "",
            "import numba as nb",
            "import numpy as np",
            *([""] if imports else []),
            *(f"from {module} import {names[0]}" if len(names) == 1 else
              f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
              for module, names in imports.items()),
            "",
            f'CONTENT_HASH = "{content_hash}"',
            f'BUILD_KEY = "{build_key}"',
            f"KERNEL_ARGUMENTS = {kernel_args!r}",
            f"QUANTITIES = {self.fs.quantities!r}",
            f"SHARED_GRIDS = {self.shared_grids!r}",
            *self._constants.values(),
        ]
        return "\n".join(head) + SEPARATOR + SEPARATOR.join(bodies) + "\n"


def kernel_source(fs: FormulaSet, content_hash: str, build_key: str = "",
                  source: str = "") -> str:
    """The numba module for ``fs`` as text (see ``codegen.kernels`` for its contents)."""
    return KernelPrinter(fs).module(content_hash, build_key, source or fs.source)
