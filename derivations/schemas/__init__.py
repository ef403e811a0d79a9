"""The model-file schema of each family, one module per family (``SCHEMA``); found through
:mod:`netderive.derivations.families`.  No sympy: loading a model stays fast."""
