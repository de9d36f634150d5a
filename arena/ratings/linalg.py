"""Small dense linear algebra that stays on the calling thread (see the comment below).
"""

from __future__ import annotations

import math

import numpy as np

# -- small dense linear algebra ---------------------------------------------------------------
#
# The systems here are n×n with n = number of models (~100). OpenBLAS runs LAPACK and BLAS
# calls of that size on several threads; on a busy machine (a web/Celery host, CI, this
# 2-core box) each such call then waits for a descheduled worker thread, and a 0.1 ms solve
# takes 5–150 ms. Up to _SMALL models the factorisation and products below use numpy loops
# and einsum, which stay on the calling thread: a few ms at worst, and the same every time.
_SMALL = 300


def _chol(a: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a symmetric positive definite matrix (None if it is not)."""
    n = len(a)
    if n > _SMALL:
        try:
            return np.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            return None
    low = np.zeros_like(a)
    for k in range(n):
        row = low[k, :k]
        d = a[k, k] - np.einsum("i,i->", row, row)
        if not d > 0.0:
            return None
        low[k, k] = dk = math.sqrt(d)
        low[k + 1 :, k] = (a[k + 1 :, k] - np.einsum("ij,j->i", low[k + 1 :, :k], row)) / dk
    return low


def _chol_solve(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``(L Lᵀ) x = b`` for ``b`` of shape (n,) or (n, R)."""
    n = len(low)
    if n > _SMALL:
        return np.linalg.solve(low.T, np.linalg.solve(low, b))  # LAPACK's LU on a triangle: O(n³), still fast
    y = np.array(b, dtype=np.float64)
    for k in range(n):
        y[k] = (y[k] - np.einsum("i,i...->...", low[k, :k], y[:k])) / low[k, k]
    for k in range(n - 1, -1, -1):
        y[k] = (y[k] - np.einsum("i,i...->...", low[k + 1 :, k], y[k + 1 :])) / low[k, k]
    return y


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    low = _chol(a)
    if low is None:  # numerically singular: let LAPACK do its best
        return np.linalg.lstsq(a, b, rcond=None)[0]
    return _chol_solve(low, b)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for an (n, n) ``a``, single-threaded for small n (see above)."""
    return np.einsum("ij,j...->i...", a, b) if len(a) <= _SMALL else a @ b
