"""The largest eigenvalue of a symmetric block (the ``LargestEigenvalue`` statement of an
``ArrayProgram``): LAPACK up to a size, Lanczos beyond (compiled once, cached).
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Blocks up to this size get every eigenvalue from LAPACK (``eigvalsh``, exact to rounding);
#: larger ones use Lanczos iteration, whose cost grows as size^2 per iteration instead of
#: size^3.  Measured (benchmarks/bench_eigenvalue.py, idle 2-core machine): eigvalsh takes
#: 5.0 ms at 400 rows, under a tenth of an order-2 expectation step of that size (~70 ms);
#: Lanczos is faster from ~100 rows (0.27 ms at 400) but only an estimate (from above).
EIGVALSH_MAX_SIZE = 400
#: Lanczos stops when the residual ``|A y - theta y|`` of its largest Ritz pair is at most this
#: times ``max(|theta|, 1)``; the result is ``theta`` plus that residual (rounded up).
LANCZOS_TOLERANCE = 1e-10
#: Lanczos iterations before it falls back to ``eigvalsh``.
LANCZOS_MAX_ITERATIONS = 120
#: Seed of Lanczos' start vector (deterministic results; a random start is almost surely not
#: orthogonal to the top eigenvector).
LANCZOS_SEED = 20191208


@nb.njit(cache=True)
def _symmetric_block(matrix: np.ndarray, size: int) -> np.ndarray:
    """The leading ``size`` x ``size`` block of ``matrix``, symmetrised: (A + A^T)/2."""
    block = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            block[i, j] = 0.5 * (matrix[i, j] + matrix[j, i])
    return block


@nb.njit(cache=True)
def _tridiagonal_largest(alpha: np.ndarray, beta: np.ndarray, k: int) -> tuple[float, float]:
    """Largest eigenvalue of the k x k Lanczos matrix and the last entry of its eigenvector."""
    t = np.zeros((k, k))
    for i in range(k):
        t[i, i] = alpha[i]
        if i + 1 < k:
            t[i, i + 1] = beta[i]
            t[i + 1, i] = beta[i]
    values, vectors = np.linalg.eigh(t)
    return values[k - 1], vectors[k - 1, k - 1]


@nb.njit(cache=True)
def lanczos_largest_eigenvalue(block: np.ndarray, tolerance: float, max_iterations: int
                               ) -> tuple[float, bool]:
    r"""Largest eigenvalue of the symmetric ``block`` by Lanczos with full reorthogonalisation.

    Returns :math:`(\theta + \|r\|, \text{converged})` where :math:`\theta` is the largest Ritz
    value and :math:`\|r\| = \beta_k |s_k|` its residual; converged when
    :math:`\|r\| \le` ``tolerance`` :math:`\max(|\theta|, 1)`.
    """
    n = block.shape[0]
    steps = min(n, max_iterations)
    basis = np.zeros((steps + 1, n))
    alpha = np.zeros(steps)
    beta = np.zeros(steps)
    np.random.seed(LANCZOS_SEED)
    start = np.random.standard_normal(n)
    basis[0] = start / np.sqrt(np.dot(start, start))
    theta = 0.0
    for k in range(steps):
        w = block @ basis[k]
        alpha[k] = np.dot(w, basis[k])
        for j in range(k + 1):  # full reorthogonalisation (twice is enough)
            w -= np.dot(w, basis[j]) * basis[j]
        for j in range(k + 1):
            w -= np.dot(w, basis[j]) * basis[j]
        beta[k] = np.sqrt(np.dot(w, w))
        theta, last = _tridiagonal_largest(alpha, beta, k + 1)
        residual = beta[k] * abs(last)
        if residual <= tolerance * max(abs(theta), 1.0) or k + 1 == n:
            return theta + residual, True
        basis[k + 1] = w / beta[k]
    return theta, False


@nb.njit(cache=True)
def largest_symmetric_eigenvalue(matrix: np.ndarray, size: int) -> float:
    r""":math:`\lambda_{\max}` of the symmetrised leading ``size`` x ``size`` block of ``matrix``.

    Exact to rounding (``eigvalsh``) up to :data:`EIGVALSH_MAX_SIZE`; beyond, Lanczos to
    :data:`LANCZOS_TOLERANCE` with the residual added (an estimate from above), or
    ``eigvalsh`` when Lanczos does not converge.  NaN if the block holds a NaN.
    """
    block = _symmetric_block(matrix, size)
    if not np.all(np.isfinite(block)):
        return np.nan
    if size > EIGVALSH_MAX_SIZE:
        value, converged = lanczos_largest_eigenvalue(block, LANCZOS_TOLERANCE,
                                                      LANCZOS_MAX_ITERATIONS)
        if converged:
            return value
    return np.linalg.eigvalsh(block)[size - 1]
