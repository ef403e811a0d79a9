"""The Python interface: ``netderive.load(MODEL, **overrides)`` and :class:`Model`.

::

    import numpy as np
    import netderive

    model = netderive.load(MODEL, depth=5)       # a bundled name or a path; model keys
    model.quantities                              # the names eval accepts
    model.parameters                              # {name: default, ...}
    values = model.eval(QUANTITY, q=np.linspace(0.5, 1, 101))     # numpy broadcasting
    text = model.latex()                                       # the derived formulas
    report = model.check(draws=20_000)                         # kernels vs references

Bad input raises :class:`netderive.ModelError` with the one-line message the command line
prints.  Nothing here does algebra: a model is derived, printed and compiled by its build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from netderive.derivations.model import ModelError, did_you_mean

from .check import DEFAULT_DRAWS
from .session import Build, UsageError, apply_structural, build, resolve_model

#: Keyword options of :meth:`Model.check` (the rest are parameter values).
CHECK_OPTIONS = {"draws": DEFAULT_DRAWS, "starts": None, "seed": 0}


def load(model: str | Path, **overrides: Any) -> Model:
    """The model ``model`` (a bundled name, as ``netderive models`` lists them, or a path to
    a model file) with top-level model keys replaced by ``overrides`` (e.g. ``depth=4``,
    ``widths=[4, 2, 2]``): derived and generated unless cached, as ``netderive build`` does."""
    spec = resolve_model(str(model))
    if overrides:
        values = {k: list(v) if isinstance(v, tuple | list | np.ndarray) else v
                  for k, v in overrides.items()}
        spec = apply_structural(spec, values, "load")
    return Model(build(spec))


class Model:
    """A derived model: its quantities, parameters, kernels, formulas and checks."""

    def __init__(self, build_: Build) -> None:
        self.build = build_

    def __repr__(self) -> str:
        return (f"<netderive model {self.build.spec.stem} ({self.build.spec.family}): "
                f"{len(self.quantities)} quantities>")

    @property
    def name(self) -> str:
        return self.build.spec.stem

    @property
    def quantities(self) -> tuple[str, ...]:
        """The names :meth:`eval` accepts."""
        return tuple(self.build.quantities)

    @property
    def parameters(self) -> dict[str, float | None]:
        """Parameter name -> default (None: no default, give it to :meth:`eval`)."""
        params = self.build.params
        return {n: params[n]["default"] for n in self.build.inputs}

    def eval(self, quantity: str, **parameters: Any) -> float | np.ndarray:
        """``quantity`` at the given parameter values (the others at their defaults).

        Scalars give a float; arrays broadcast against each other as numpy's do and give an
        array of the broadcast shape.  Evaluated by the grid kernels (on both cores for
        large arrays); parameters out of their domain, unknown names and violated constraints
        (e.g. an unstable learning rate) raise :class:`netderive.ModelError`."""
        from .evaluate import evaluate, make_request

        self._check_name(quantity)
        for name in parameters:
            if name not in self.build.inputs:
                raise UsageError(f"parameter {name!r}: unknown for {self.build.spec.source}"
                                 f"{did_you_mean(name, self.build.inputs)}; allowed: "
                                 + ", ".join(self.build.inputs))
        arrays = {n: np.asarray(v, dtype=float) for n, v in parameters.items()}
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else ()
        if not shape:
            fixed = {n: float(a) for n, a in arrays.items()}
            request = make_request(self.build, [quantity], fixed, {})
            return float(evaluate(self.build, request)[1][quantity][0])
        columns = {n: np.broadcast_to(a, shape).ravel() for n, a in arrays.items()}
        request = make_request(self.build, [quantity], {}, {}, columns=columns)
        return evaluate(self.build, request)[1][quantity].reshape(shape)

    def latex(self) -> str:
        """The derived formulas as a standalone LaTeX document."""
        return self.build.latex_path.read_text()

    def markdown(self) -> str:
        """The derived formulas as Markdown with ``$$`` blocks."""
        return self.build.markdown_path.read_text()

    def check(self, **options: Any):
        """The kernels against the family's independent references (a ``CheckReport``:
        ``rows``, ``all_agree``, ``table()``).  Options: ``draws``, ``starts``, ``seed`` (as
        ``netderive check``; ``starts`` only for a family whose check minimises); other keywords
        are parameter values."""
        from .check import run_check

        settings = {k: options.pop(k, default) for k, default in CHECK_OPTIONS.items()}
        for name in options:
            if name not in self.build.inputs:
                raise UsageError(f"parameter {name!r}: unknown for {self.build.spec.source}"
                                 f"{did_you_mean(name, self.build.inputs)}; allowed: "
                                 + ", ".join([*self.build.inputs, *CHECK_OPTIONS]))
        return run_check(self.build, {k: float(v) for k, v in options.items()}, **settings)

    def _check_name(self, quantity: str) -> None:
        if quantity not in self.quantities:
            raise UsageError(f"quantity {quantity!r}: unknown for {self.build.spec.source}"
                             f"{did_you_mean(quantity, self.quantities)}; allowed: "
                             + ", ".join(self.quantities))


__all__ = ["Model", "ModelError", "load"]

