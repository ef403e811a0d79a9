"""The largest eigenvalue of codegen/algorithms/eigenvalue.py on its own, against LAPACK."""

from __future__ import annotations

import numpy as np
import pytest

from netderive.codegen.algorithms.eigenvalue import (
    EIGVALSH_MAX_SIZE,
    LANCZOS_MAX_ITERATIONS,
    LANCZOS_TOLERANCE,
    lanczos_largest_eigenvalue,
    largest_symmetric_eigenvalue,
)


def spectrum_matrix(eigenvalues: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((eigenvalues.size, eigenvalues.size)))
    return (q * eigenvalues) @ q.T


@pytest.mark.parametrize("kind", ["gauss_newton", "clustered_top", "indefinite"])
def test_lanczos_is_exact_to_its_tolerance_and_never_below(kind: str) -> None:
    rng = np.random.default_rng(3)
    n = EIGVALSH_MAX_SIZE + 50
    if kind == "gauss_newton":
        jac = rng.standard_normal((6, n))
        a = jac.T @ jac
    elif kind == "clustered_top":  # the top five within 1e-3 of each other
        a = spectrum_matrix(np.concatenate([rng.uniform(0, 1, n - 5),
                                            10 + 1e-3 * rng.uniform(0, 1, 5)]), rng)
    else:
        a = spectrum_matrix(rng.uniform(-3, 2, n), rng)
    exact = np.linalg.eigvalsh(a)[-1]
    value, converged = lanczos_largest_eigenvalue(a, LANCZOS_TOLERANCE, LANCZOS_MAX_ITERATIONS)
    assert converged
    assert exact * (1 - 1e-13) <= value <= exact + 1e-8 * max(abs(exact), 1.0)
    assert largest_symmetric_eigenvalue(a, n) == pytest.approx(exact, rel=1e-8)


def test_leading_block_is_symmetrised_and_nan_propagates() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((7, 7))
    block = (a[:5, :5] + a[:5, :5].T) / 2
    assert largest_symmetric_eigenvalue(a, 5) == pytest.approx(np.linalg.eigvalsh(block)[-1],
                                                               rel=1e-13)
    a[6, 6] = np.nan  # outside the block: ignored
    assert np.isfinite(largest_symmetric_eigenvalue(a, 5))
    a[0, 1] = np.inf
    assert np.isnan(largest_symmetric_eigenvalue(a, 5))
