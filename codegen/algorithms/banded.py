r"""Banded linear systems: Gaussian elimination with partial pivoting, and the sign of the
determinant (the Newton systems of a ``PathSaddle``).

A banded matrix :math:`A` (n x n, :math:`A_{ij} = 0` for :math:`|i - j| > k_l`) is stored by
rows of its diagonals: ``rows[i, j - i + kl]`` = :math:`A_{ij}`, ``rows`` of shape
(n, 3 kl + 1): the columns up to 2 kl right of the diagonal hold the fill-in of the row
swaps.  Cost :math:`O(n\,k_l^2)` instead of :math:`O(n^3)`.
"""

from __future__ import annotations

import numpy as np

from . import cached_jit


def band_storage(matrix: np.ndarray, kl: int) -> np.ndarray:
    """``rows`` of a dense (n x n) matrix of half-bandwidth ``kl`` (entries outside the band
    are dropped): the layout :func:`band_solve` reads (for tests and callers in Python)."""
    n = matrix.shape[0]
    rows = np.zeros((n, 3 * kl + 1))
    for i in range(n):
        for j in range(max(0, i - kl), min(n, i + kl + 1)):
            rows[i, j - i + kl] = matrix[i, j]
    return rows


@cached_jit
def band_solve(rows: np.ndarray, rhs: np.ndarray, kl: int) -> tuple[np.ndarray, float]:
    """:math:`x = A^{-1} b` and :math:`\\operatorname{sign}\\det A` for the banded :math:`A` in
    ``rows`` (half-bandwidth ``kl``, see the module docstring); ``rows`` and ``rhs`` are not
    changed.  A zero pivot column (singular :math:`A`) gives NaNs and sign 0."""
    n = rhs.shape[0]
    a = rows.copy()
    y = rhs.copy()
    sign = 1.0
    for k in range(n):
        p = k
        big = abs(a[k, kl])
        for i in range(k + 1, min(n, k + kl + 1)):
            if abs(a[i, k - i + kl]) > big:
                p, big = i, abs(a[i, k - i + kl])
        if big == 0.0:
            return np.full(n, np.nan), 0.0
        top = min(n, k + 2 * kl + 1)
        if p != k:  # swap rows k and p (columns k..top-1: the rest is zero in both)
            for j in range(k, top):
                t = a[k, j - k + kl]
                a[k, j - k + kl] = a[p, j - p + kl]
                a[p, j - p + kl] = t
            y[k], y[p] = y[p], y[k]
            sign = -sign
        pivot = a[k, kl]
        if pivot < 0.0:
            sign = -sign
        for i in range(k + 1, min(n, k + kl + 1)):
            m = a[i, k - i + kl] / pivot
            if m != 0.0:
                for j in range(k, top):
                    a[i, j - i + kl] -= m * a[k, j - k + kl]
                y[i] -= m * y[k]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        t = y[i]
        for j in range(i + 1, min(n, i + 2 * kl + 1)):
            t -= a[i, j - i + kl] * x[j]
        x[i] = t / a[i, kl]
    return x, sign
