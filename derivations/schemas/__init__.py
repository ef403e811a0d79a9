"""The model-file schema of each family, one module per family (``SCHEMA``, a
:class:`netderive.derivations.schema.Schema`); found through
:mod:`netderive.derivations.families`.

May import: ``netderive.derivations.schema`` and ``errors`` and the standard library.  No
sympy: loading a model stays fast.
"""
