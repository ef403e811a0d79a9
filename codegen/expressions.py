"""Printing sympy expressions as numba-compatible Python (``math.*``), strictly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.pycode import PythonCodePrinter

#: Integer powers up to this are printed as a product of factors (larger ones with an integer
#: exponent, which numba also turns into multiplications).
MAX_PRODUCT_POWER = 4


class CodegenError(Exception):
    """The printer met something it has no rule for (the message names it)."""


class NumbaExpressionPrinter(PythonCodePrinter):
    """``PythonCodePrinter`` with ``strict=True``, renamed symbols and a checked Piecewise.

    ``names`` maps a symbol name to the local variable that holds its value.
    """

    printmethod = "_numbacode"

    def __init__(self, names: Mapping[str, str] | None = None,
                 arrays: Mapping[str, str] | None = None,
                 integers: frozenset[str] = frozenset()) -> None:
        super().__init__({"strict": True, "fully_qualified_modules": True})
        self._names = dict(names or {})
        self._arrays = dict(arrays or {})
        self._integers = integers

    def array_element(self, expr: sp.Expr) -> str:
        """``name[i, j]`` for an element of an array of an ArrayProgram."""
        indices = ", ".join(self._index(a) for a in expr.args)
        return f"{self._arrays[expr.func.__name__]}[{indices}]"

    def _index(self, expr: sp.Expr) -> str:
        """An integer index: loop indices as they are, parameters truncated by ``int``."""
        if expr.is_Integer:
            return str(int(expr))
        if expr.is_Symbol:
            name = self._print_Symbol(expr)
            return name if expr.name in self._integers else f"int({name})"
        if expr.is_Add:
            return "(" + " + ".join(self._index(a) for a in expr.args) + ")"
        if expr.is_Mul:
            return "(" + "*".join(self._index(a) for a in expr.args) + ")"
        return f"int({self._print(expr)})"

    def _print_Function(self, expr: sp.Expr) -> str:
        if isinstance(expr, sp.core.function.AppliedUndef):
            if expr.func.__name__ in self._arrays:
                return self.array_element(expr)
            raise CodegenError(f"undefined function {expr.func.__name__} in {expr}")
        return super()._print_Function(expr)

    def doprint(self, expr: sp.Expr, assign_to: str | None = None) -> str:
        try:
            return super().doprint(expr, assign_to)
        except PrintMethodNotImplementedError as exc:
            node = str(exc).splitlines()[0].rpartition(": ")[2]
            raise CodegenError(f"{type(self).__name__} has no rule for {node} in {expr}") from None

    def _print_not_supported(self, expr: sp.Basic) -> str:
        raise CodegenError(f"{type(self).__name__} has no rule for {type(expr).__name__}: {expr}")

    def _print_MatrixBase(self, expr: sp.Basic) -> str:
        raise CodegenError(f"a matrix cannot be printed as a numba scalar: {expr}")

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._names.get(expr.name, expr.name)

    def _print_Dummy(self, expr: sp.Dummy) -> str:
        raise CodegenError(f"unnamed dummy symbol {expr} in an expression")

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        if expr.args[-1].cond != sp.true:
            raise CodegenError(
                "Piecewise without a final True branch cannot be printed for numba: "
                f"{expr}"
            )
        return super()._print_Piecewise(expr)

    def _print_NaN(self, expr: sp.Expr) -> str:
        return "math.nan"

    def _print_Infinity(self, expr: sp.Expr) -> str:
        return "math.inf"

    def _print_NegativeInfinity(self, expr: sp.Expr) -> str:
        return "(-math.inf)"

    def _print_ComplexInfinity(self, expr: sp.Expr) -> str:
        raise CodegenError("complex infinity (zoo) in an expression: a division by zero?")

    def _print_ImaginaryUnit(self, expr: sp.Expr) -> str:
        raise CodegenError("the imaginary unit I appears in an expression; kernels are real")

    def _print_Integer(self, expr: sp.Integer) -> str:
        # floats throughout: numba must never infer an integer-only expression
        return f"{float(expr.p)!r}"

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"({float(expr.p)!r}/{float(expr.q)!r})"

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        """Integer powers as products (small) or with an integer literal exponent (numba
        multiplies by squaring; a float exponent would call ``pow``: 3.4x slower, measured),
        half-integer powers through ``math.sqrt``, other powers with ``**``."""
        base, exp = expr.args
        b = self._print(base)
        if exp.is_Integer and 1 < abs(int(exp)) <= MAX_PRODUCT_POWER:
            prod = "*".join([f"({b})"] * abs(int(exp)))
            return f"({prod})" if exp > 0 else f"(1.0/({prod}))"
        if exp == -1:
            return f"(1.0/({b}))"
        if exp.is_Integer:
            return f"(({b})**{int(exp)})"
        if exp.is_Rational and exp.q == 2:  # x^(k/2) = x^((|k|-1)/2) sqrt(x)
            whole = (abs(int(exp.p)) - 1) // 2
            root = f"math.sqrt({b})"
            term = root if whole == 0 else f"({self._print(sp.Pow(base, whole))}*{root})"
            return term if exp > 0 else f"(1.0/{term})"
        return f"(({b})**({self._print(exp)}))"

    def _print_sign(self, expr: sp.Expr) -> str:
        a = self._print(expr.args[0])
        return f"(0.0 if ({a}) == 0.0 else math.copysign(1.0, {a}))"

    def _print_Heaviside(self, expr: sp.Expr) -> str:
        a = self._print(expr.args[0])
        half = self._print(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"(1.0 if ({a}) > 0.0 else (0.0 if ({a}) < 0.0 else {half}))"


def print_assignments(
    exprs: Sequence[sp.Expr],
    names: Mapping[str, str],
    indent: str,
    temp_prefix: str = "_t",
    arrays: Mapping[str, str] | None = None,
    integers: frozenset[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    """CSE over ``exprs`` (one ``sympy.cse`` call), printed as assignment lines.

    ``arrays`` maps the array names of an ArrayProgram to variables; their elements are
    read as ``var[i, j]`` (kept out of the CSE, so index arithmetic stays integer) and
    ``integers`` are the names of the loop indices.  Returns (lines of temporaries,
    printed reduced expressions).
    """
    exprs = [sp.sympify(e) for e in exprs]
    names = dict(names)
    if arrays:
        element_printer = NumbaExpressionPrinter(names, arrays, integers)
        elements = sorted({el for e in exprs for el in e.atoms(sp.Function)
                           if isinstance(el, sp.core.function.AppliedUndef)}, key=sp.srepr)
        placeholders = {}
        for k, el in enumerate(elements):
            symbol = sp.Symbol(f"{temp_prefix}_el{k}", real=True)
            placeholders[el] = symbol
            names[symbol.name] = element_printer.array_element(el)
        exprs = [e.xreplace(placeholders) for e in exprs]
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(temp_prefix),
                                   order="none")
    printer = NumbaExpressionPrinter(names, arrays, integers)
    lines = [f"{indent}{sym.name} = {printer.doprint(val)}" for sym, val in replacements]
    return lines, [printer.doprint(e) for e in reduced]
