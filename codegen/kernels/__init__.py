"""The numba printer: any FormulaSet as a Python module of ``@njit(cache=True)`` kernels.

What lives here: ``printer.py`` (:class:`KernelPrinter`, the shared core: names, calls of
earlier items, headers, grid kernels, imports of the fixed algorithms, module tables and the
module itself; the dispatch by kind) and one emitter per IR item kind, a module named after
the kind with ``emit(printer, item, args) -> str``: ``formula.py``, ``recurrence.py``,
``root.py``, ``expectation.py``, ``min_plus_recursion.py``, ``array_program.py``,
``path_saddle.py``.  The kinds are listed once, in ``derivations/ir.py`` (``ITEM_KINDS``);
:func:`emitter_for` finds a kind's module by its name, and a test fails when a kind has none.
A new kind is a new module here (and a LaTeX rule, an interpreter rule, toy items).

For every item ``name`` the generated module has

- ``name(*args)``: the scalar kernel (arguments: the parameters it needs, in the order of
  ``KERNEL_ARGUMENTS[name]``);
- ``name_grid(*arrays)``: the same over 1-D float arrays of equal length, ``prange`` over
  both cores; ``name_grid_serial(*arrays)`` on one core (faster for small grids, or when both
  cores are busy);
- for a Recurrence also ``name_trajectory(*args)``: the states ``s_0..s_K`` as rows;
- for a MinPlusRecursion also ``name_curves(*args_but_variable)``: the grid and the rows
  ``I_1..I_K`` on it, and ``name_curves_dp`` (the plain ``O(G^2)`` dynamic programming, also
  when the item has a line envelope).  Its grid kernels compute one set of curves per run of
  consecutive points that share every argument but the variable;
- for an ArrayProgram, ``name`` and ``name_grid`` (= ``name_grid_serial``) are plain Python
  around compiled pieces (see ``array_program.py``);
- for a PathSaddle also ``name_path(*args)``: the stationary path, one row
  ``(theta_l, m_l)`` per stage, and a last row holding ``(lambda, S, g(m_K))``; ``name``,
  ``name_path`` and ``name_grid`` (= ``name_grid_serial``) are plain Python around compiled
  pieces (see ``path_saddle.py``).

Earlier items are called, never inlined; recurrences are loops; Gauss-Hermite tables are
module constants.  The fixed algorithms (root search, dynamic programming, banded solve,
continuation, largest eigenvalue) are imported from ``netderive.codegen.algorithms`` and
called from compiled kernels with the module's own compiled functions as arguments.

May import: sympy, numpy, numba, ``netderive.derivations.ir``, ``netderive.codegen``
(``expressions``, ``version``, ``algorithms``).  Never imports ``netderive.runtime``.
"""

from .printer import KernelPrinter, emitter_for, kernel_source, kind_module_name

__all__ = ["KernelPrinter", "emitter_for", "kernel_source", "kind_module_name"]
