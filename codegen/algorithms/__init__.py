"""Fixed numerical algorithms that generated kernel modules import (real Python, ruff-checked
and unit-tested on toy problems; no sympy, no network family).

What lives here: the root search of a ``Root`` (``root.py``: bracket scan, safeguarded
Newton-bisection, selection), the dynamic programming of a ``MinPlusRecursion``
(``min_plus.py``: O(G^2) with a tabulated rate, the lower envelope of lines, interpolation
on the grid), the banded LU solve with partial pivoting and the sign of the determinant
(``banded.py``), the Newton continuation of a ``PathSaddle`` (``continuation.py``) and the
largest eigenvalue of a symmetric block (``eigenvalue.py``).

Two kinds of algorithm (numba):

- on numbers and arrays alone (:data:`cached_jit`): compiled once per signature and kept in
  numba's on-disk cache; generated modules import them;
- on a generated module's own compiled functions (the equation of a root, the one-stage rate
  of a dynamic programming, the stage function of a path saddle): *templates*, plain Python
  functions that call those functions through placeholders, which ``templates.py`` splices
  into the generated module (see there why: caching and ``prange``).

Generated modules call the algorithms only from compiled kernels (never from Python).  All
use numpy's error model: a division by zero gives inf or NaN (the algorithms test for them)
instead of raising.

May import: numba, numpy, the standard library.  Never imports ``netderive.derivations``,
the rest of ``netderive.codegen`` or ``netderive.runtime``.
"""

import numba as nb

#: Compile once per signature, keep in numba's on-disk cache.
cached_jit = nb.njit(cache=True, error_model="numpy")
