"""Print any FormulaSet as a standalone LaTeX document and as Markdown.

Each item becomes one numbered equation with its meaning and reference; recurrences
show the one-step map (never an unrolled product), roots their equation and bracket, path
saddles their Lagrangian, stage function and saddle-point equations.
"""

from __future__ import annotations

import sympy as sp

from netderive.derivations.ir import (
    ITEM_KINDS,
    ArrayProgram,
    Expectation,
    Formula,
    FormulaSet,
    Item,
    LargestEigenvalue,
    MinPlusRecursion,
    PathSaddle,
    Recurrence,
    Root,
    Statement,
    item_symbol,
)

from .expressions import CodegenError


def _escape(text: str) -> str:
    """Escape LaTeX specials in running text (meanings, references, notes)."""
    out = text
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                 ("^", r"\textasciicircum{}"), ("<", "$<$"), (">", "$>$"), ("|", "$|$")):
        out = out.replace(a, b)
    return out


class LatexPrinter:
    """One ``_emit_<Kind>`` per IR item kind (``derivations.ir.ITEM_KINDS``), returning the
    math of one display."""

    def __init__(self, fs: FormulaSet) -> None:
        self.fs = fs
        names: dict[sp.Symbol, str] = {}
        for p in fs.params:
            if p.latex:
                names[p.symbol] = p.latex
        latex_names = dict(fs.latex_names)
        for item in fs.items:
            names[item_symbol(item.name)] = latex_names.get(
                item.name, r"\mathrm{" + item.name.replace("_", r"\_") + "}")
            for s in item.bound_symbols():
                if s.name in latex_names:
                    names[s] = latex_names[s.name]
        for p in fs.params:
            if p.name in latex_names:
                names[p.symbol] = latex_names[p.name]
        self.symbol_names = names

    def tex(self, expr: sp.Expr) -> str:
        return sp.latex(sp.sympify(expr), symbol_names=self.symbol_names)

    def lhs(self, item: Item) -> str:
        return self.symbol_names[item_symbol(item.name)]

    def emit(self, item: Item) -> str:
        meth = getattr(self, f"_emit_{type(item).__name__}", None)
        if meth is None or type(item) not in ITEM_KINDS:
            raise CodegenError(f"{type(self).__name__} has no rule for {type(item).__name__}")
        return meth(item)

    def _emit_Formula(self, item: Formula) -> str:
        return f"{self.lhs(item)} = {self.tex(item.expr)}"

    def _emit_Recurrence(self, item: Recurrence) -> str:
        k = self.tex(item.index) if item.index is not None else "k"
        steps = self.tex(item.steps)
        if item.steps == 0 and tuple(item.step) == tuple(item.state):
            # zero steps of the identity: the output evaluated at the initial state
            at = ",\\ ".join(f"{self.tex(s)} = {self.tex(v)}"
                              for s, v in zip(item.state, item.init, strict=True))
            return f"{self.lhs(item)} = \\left.{self.tex(item.output)}\\right|_{{{at}}}"

        def at(index: str) -> dict:
            return {s: sp.Symbol(f"{{{self.tex(s)}}}_{{{index}}}") for s in item.state}

        now, last = at(k), at(steps)
        rows = []
        for s, f, s0 in zip(item.state, item.step, item.init, strict=True):
            name = self.tex(s)
            rows.append(f"{{{name}}}_{{{k}+1}} &= {self.tex(sp.sympify(f).xreplace(now))}"
                        f", \\qquad {{{name}}}_0 = {self.tex(s0)}")
        rows.append(f"{self.lhs(item)} &= {self.tex(sp.sympify(item.output).xreplace(last))}"
                    f", \\qquad {k} = 0, \\dots, {steps}-1")
        return "\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}"

    def _emit_Root(self, item: Root) -> str:
        x = self.tex(item.variable)
        lo, hi = (self.tex(b) for b in item.bracket)
        choice = {
            "first": r"\text{the smallest zero}",
            "last": r"\text{the largest zero}",
            "min_objective": r"\text{the zero minimising } "
            + (self.tex(item.objective) if item.objective is not None else ""),
        }[item.select]
        among = ""
        if item.candidates:
            among = r"\ \text{(or } " + ", ".join(self.tex(c) for c in item.candidates) + ")"
        return (rf"\begin{{gathered}}{self.lhs(item)} = {choice}{among} \\ \text{{zeros: }}"
                rf"{self.tex(item.equation)} = 0,\qquad {x}\in[{lo},\, {hi}]\end{{gathered}}")

    def _emit_Expectation(self, item: Expectation) -> str:
        zs = ", ".join(self.tex(z) for z in item.variables)
        lhs = (f"{self.lhs(item)} = \\mathbb{{E}}_{{{zs}\\sim\\mathcal{{N}}(0,1)}}"
               f"\\left[{self.tex(item.integrand)}\\right]")
        if item.closed_form is not None:
            lhs += f" = {self.tex(item.closed_form)}"
        if item.quadrature_order is not None:
            lhs += rf" \approx \text{{Gauss-Hermite, {item.quadrature_order} nodes}}"
        return lhs

    def _emit_MinPlusRecursion(self, item: MinPlusRecursion) -> str:
        x, xp = self.tex(item.variable), self.tex(item.previous)
        k = self.tex(item.index) if item.index is not None else "k"
        steps, size = self.tex(item.steps), self.tex(item.grid_size)
        lo, hi = self.tex(item.lower), self.tex(item.upper)
        rate = self.tex(item.step_rate)
        start = self.tex(item.start)
        rows = [
            rf"J_{{{k}}}({x} \mid {xp}) &= {rate}",
            rf"\mathcal I_1({x}) &= J_1({x} \mid {start})",
            rf"\mathcal I_{{{k}+1}}({x}) &= \min_{{{xp}\in[{lo},\,{hi}]}}\big[\mathcal I_{{{k}}}"
            rf"({xp}) + J_{{{k}+1}}({x} \mid {xp})\big],\qquad {k} = 1,\dots,{steps}-1",
            rf"{self.lhs(item)} &= \mathcal I_{{{steps}}}({x})\quad\text{{on }}{size}"
            r"\text{ grid points}",
        ]
        if item.envelope is not None:
            offset, abscissa, slope, intercept = (self.tex(e) for e in item.envelope)
            rows.append(rf"J({x}\mid {xp}) &= \underbrace{{{offset}}}_{{A({x})}} + "
                        rf"\underbrace{{{abscissa}}}_{{X({x})}}\,\underbrace{{{slope}}}_"
                        rf"{{m({xp})}} + \underbrace{{{intercept}}}_{{c({xp})}}"
                        r"\quad\text{(lower envelope of lines)}")
        return "\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}"

    def _array_tex(self, expr: sp.Expr, shapes: dict[str, tuple[int, ...]]) -> str:
        latex_names = dict(self.fs.latex_names)
        names = dict(self.symbol_names)

        def indexed(el: sp.Expr) -> sp.Expr:
            name = el.func.__name__
            label = sp.Symbol(f"array_{name}")
            names[label] = latex_names.get(name, r"\mathrm{" + name.replace("_", r"\_") + "}")
            return sp.Indexed(sp.IndexedBase(label), *el.args)

        replaced = sp.sympify(expr).replace(
            lambda e: isinstance(e, sp.core.function.AppliedUndef) and e.func.__name__ in shapes,
            indexed)
        return sp.latex(replaced, symbol_names=names)

    def _array_statement(self, st: Statement, shapes: dict[str, tuple[int, ...]]) -> str:
        target = self._array_tex(st.target, shapes)
        if isinstance(st, LargestEigenvalue):
            matrix = dict(self.fs.latex_names).get(
                st.matrix, r"\mathrm{" + st.matrix.replace("_", r"\_") + "}")
            block = "" if (st.size,) * 2 == shapes[st.matrix] else \
                rf"_{{[1..{st.size}]\times[1..{st.size}]}}"
            note = rf"\quad\text{{{_escape(st.meaning)}}}" if st.meaning else ""
            return rf"{target} &= \lambda_{{\max}}\big({matrix}{block}\big){note}"
        value = self._array_tex(st.value, shapes)
        loops = {s for s, _ in st.loops}
        summed = sorted((sp.sympify(st.value).free_symbols & loops) - st.target.free_symbols,
                        key=lambda s: s.name)
        sigma = ""
        if st.accumulate and summed:
            sigma = r"\sum_{" + ",".join(self.tex(s) for s in summed) + "} "
        op = r"\mathrel{+}=" if st.accumulate else "="
        if st.accumulate and sigma and isinstance(sp.sympify(st.value), sp.Add):
            value = rf"\left({value}\right)"
        note = rf"\quad\text{{{_escape(st.meaning)}}}" if st.meaning else ""
        return f"{target} &{op} {sigma}{value}{note}"

    def _emit_ArrayProgram(self, item: ArrayProgram) -> str:
        shapes = item.shapes()
        latex_names = dict(self.fs.latex_names)
        declared = []
        for name, shape in shapes.items():
            tex = latex_names.get(name, r"\mathrm{" + name.replace("_", r"\_") + "}")
            dims = r"\times ".join(str(d) for d in shape) or "1"
            declared.append(rf"{tex}\in\mathbb{{R}}^{{{dims}}}")
        rows = [(r"&\text{arrays: } " if start == 0 else "&")
                + ",\\ ".join(declared[start:start + 6]) for start in range(0, len(declared), 6)]
        rows += [self._array_statement(st, shapes) for st in item.setup]
        if item.body:
            rows.append(rf"&\text{{repeat }}{self.tex(item.steps)}\text{{ times (one step }}"
                        r"t \to t+1\text{; every right-hand side at step }t\text{):}")
            rows += [self._array_statement(st, shapes) for st in item.body]
        rows += [self._array_statement(st, shapes) for st in item.finish]
        rows.append(f"{self.lhs(item)} &= {self._array_tex(item.output, shapes)}")
        return "\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}"

    def _emit_PathSaddle(self, item: PathSaddle) -> str:
        steps = self.tex(item.steps)
        end = rf"m_{{{steps}}}"
        tilt = item.mode == "tilt"
        names = {**self.symbol_names, item.action: "S", item.multiplier: r"\lambda",
                 item.endpoint: rf"g({end})"}

        def tex(expr: sp.Expr) -> str:
            return sp.latex(sp.sympify(expr), symbol_names=names)

        def group(symbols: tuple[sp.Symbol, ...]) -> str:
            return ", ".join(tex(s) for s in symbols)

        def vector(exprs: tuple[sp.Expr, ...]) -> str:
            inner = ",\\ ".join(tex(e) for e in exprs)
            return inner if len(exprs) == 1 else rf"\big({inner}\big)"

        theta, m, prev = group(item.conjugate), group(item.state), group(item.previous)
        at = prev if len(item.previous) == 1 else f"({prev})"
        goal = tex(item.goal)
        lagrangian = (rf"S + \lambda\,g({end})" if tilt
                      else rf"S + \lambda\,\big(g({end}) - {goal}\big)")
        if tilt and goal != r"\lambda":
            lagrangian += rf",\quad \lambda = {goal}"
        terminal = rf"\partial_{{m_{{{steps}}}}}\ell_{{{steps}}} + \lambda\,\nabla g({end}) = 0"
        if not tilt:
            terminal += rf",\quad g({end}) = {goal}"
        moved = (r"\lambda\text{ from }0" if tilt
                 else rf"\text{{the goal from }}g(\bar m_{{{steps}}})")
        dim = "" if len(item.state) == 1 else rf"\in\mathbb R^{{{len(item.state)}}}"
        rows = [
            rf"{self.lhs(item)} &= {tex(item.output)},\qquad \mathcal L = {lagrangian}",
            rf"S &= \sum_{{l=1}}^{{{steps}}} \ell_l,\quad \ell_l = \ell(\theta_l, m_l, "
            rf"m_{{l-1}}),\quad \theta_l, m_l{dim},\quad m_0 = {vector(item.start)}",
            rf"\ell({theta}; {m}; {prev}) &= {tex(item.stage)}",
            rf"g({m}) &= {tex(item.observable)}",
            r"&\partial_{\theta_l}\ell_l = 0\ \text{(forward)},\quad "
            rf"\partial_{{m_l}}[\ell_l + \ell_{{l+1}}] = 0\ (l < {steps})\ \text{{(backward)}}",
            rf"&{terminal}\quad\text{{(terminal)}}",
            rf"\bar m_l &= {vector(item.typical_step)}\big|_{{{at} = \bar m_{{l-1}}}},"
            r"\quad \bar m_0 = m_0\quad\text{(typical path, }\theta_l = 0\text{)}",
            rf"&\text{{Newton continuation from the typical path: }}{moved}\text{{ to }}{goal}"
            rf"\text{{ in {item.continuation} steps}}",
        ]
        return "\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}"

    def parameter_rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for p in self.fs.params:
            default = "" if p.default is None else f"{p.default:.10g}"
            rows.append((self.tex(p.symbol), p.name, str(p.domain), default))
        return rows


def to_latex(fs: FormulaSet) -> str:
    """A standalone ``.tex`` document: parameters, then one numbered equation per item."""
    pr = LatexPrinter(fs)
    out = [
        r"\documentclass[11pt]{article}",
        r"\usepackage{amsmath,amssymb}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\allowdisplaybreaks",
        rf"\title{{{_escape(fs.name)}: {_escape(fs.family)}}}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        rf"Derived by netderive from \texttt{{{_escape(fs.source)}}}.",
        r"\section*{Parameters}",
        r"\begin{tabular}{llll}",
        r"symbol & name & domain & default \\ \hline",
    ]
    for sym, name, domain, default in pr.parameter_rows():
        out.append(rf"${sym}$ & \texttt{{{_escape(name)}}} & {_escape(domain)} & "
                   rf"{_escape(default)} \\")
    out += [r"\end{tabular}", r"\section*{Derived items}"]
    for item in fs.items:
        out += [
            rf"\paragraph{{\texttt{{{_escape(item.name)}}}}} {_escape(item.meaning)} "
            rf"({_escape(type(item).__name__)}; {_escape(item.ref)})",
            r"\begin{equation}",
            pr.emit(item),
            rf"\label{{eq:{item.name}}}",
            r"\end{equation}",
        ]
    if fs.notes:
        out.append(r"\section*{Notes}")
        out.append(r"\begin{itemize}")
        out += [rf"\item {_escape(n)}" for n in fs.notes]
        out.append(r"\end{itemize}")
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def to_markdown(fs: FormulaSet) -> str:
    """The same content as :func:`to_latex`, as Markdown with ``$$`` blocks."""
    pr = LatexPrinter(fs)
    out = [f"# {fs.name} ({fs.family})", "", f"Derived by netderive from `{fs.source}`.", "",
           "## Parameters", "", "| symbol | name | domain | default |", "|---|---|---|---|"]
    for sym, name, domain, default in pr.parameter_rows():
        out.append(f"| ${sym}$ | `{name}` | {domain} | {default} |")
    out += ["", "## Derived items", ""]
    for number, item in enumerate(fs.items, start=1):
        out += [f"**({number}) `{item.name}`**: {item.meaning} "
                f"({type(item).__name__}; {item.ref})", "", "$$", pr.emit(item), "$$", ""]
    if fs.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in fs.notes] + [""]
    return "\n".join(out)
