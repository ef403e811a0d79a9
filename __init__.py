"""netderive: formulas of deep-network theory derived symbolically, printed as LaTeX and
compiled to numba kernels.

The one import name of the project.  Its subpackages are the repository's folders:
``netderive.derivations`` (mathematics: model files to FormulaSets), ``netderive.codegen``
(printers: FormulaSets to LaTeX and cached kernel modules), ``netderive.runtime`` (loading,
evaluating, checking, the command line) and ``netderive.models`` (the bundled model files).

Python interface (``netderive.load``, :class:`netderive.Model`, ``netderive.ModelError``)::

    import numpy as np
    import netderive

    model = netderive.load("ld_sign_dilution", depth=5)       # bundled name or a path
    rate = model.eval("rate_function", q=np.linspace(0.5, 1, 101), p=0.1)

Importing ``netderive`` is cheap: the interface loads on first use.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netderive")
except PackageNotFoundError:  # a checkout used without installing it
    __version__ = "0+unknown"

_EXPORTS = {"load": "runtime.api", "Model": "runtime.api", "ModelError": "derivations.model"}

__all__ = ["Model", "ModelError", "__version__", "load"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'netderive' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
