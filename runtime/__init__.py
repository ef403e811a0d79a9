"""Run time: load and drive the kernels of a build; evaluate, sweep, plot, check, the demo
and the command line.  It does no algebra.

What lives here: ``session.py`` (model -> cached build -> kernels, called by name:
``Build.call``, ``Build.grid``, ``Build.curves``), ``evaluate.py`` (grids, sweeps, CSV,
plots), ``check.py`` (the generic check report), ``demo.py`` (the report of every bundled
model), ``cli.py``, ``api.py`` (``netderive.load``), ``info.py``, ``compile.py``,
``progress.py``, ``figures.py`` (drawing helpers), ``activation.py`` (the whitelisted
activation text evaluated with numpy, with derivatives by forward-mode differentiation, for
the references), and ``families/``: the run-time part of each family (its independent
reference, its check, its demo figures), found through the registry of
:mod:`netderive.derivations.families`.  The generic modules name no family.

May import: ``netderive.derivations`` (model files, the registry; no sympy is loaded
through it) and ``netderive.codegen`` (the cache), numpy, scipy, numba (through the
generated kernels), matplotlib.  Never sympy.
"""
