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
  numba's on-disk cache (every model shares that code);
- on a generated module's own compiled functions (the equation of a root, the one-stage rate
  of a dynamic programming, the stage function of a path saddle): a factory takes those
  functions and returns the algorithm compiled for them (:data:`callback_jit`, a closure
  that calls them as constants, as a hand-written loop would).  The generated module makes
  it once at import, and its ``@njit(cache=True)`` kernels call it: the algorithm's machine
  code is linked into theirs and kept in their on-disk cache, so a warm run compiles
  nothing.  Passing the functions as arguments instead would leave the address of the
  Python function object in the machine code wherever the call is not inlined (numba's
  "dynamic globals"), and numba refuses to cache such a kernel (measured with numba 0.68:
  every Root kernel compiled anew in every process; a parallel grid over a kernel with two
  such calls crashed the compiler).  The closures are not cached themselves: they are
  compiled only as part of a cached kernel.

Generated modules call the algorithms only from compiled kernels (never from Python).  All
use numpy's error model: a division by zero gives inf or NaN (the algorithms test for them)
instead of raising.

May import: numba, numpy, the standard library.  Never imports ``netderive.derivations``,
the rest of ``netderive.codegen`` or ``netderive.runtime``.
"""

import numba as nb

#: Compile once per signature, keep in numba's on-disk cache.
cached_jit = nb.njit(cache=True, error_model="numpy")
#: The closures that factories make for a module's own functions: compiled into the calling
#: kernel's cached code (see above).
callback_jit = nb.njit(cache=False, error_model="numpy")
