"""Sandwich (Huber–White) intervals for Bradley–Terry, and the reweighting they are used with.

Pure module: numpy only, no Django, no I/O. It works on the per-pair arrays that module fits on: ``i``, ``j``
(model indices of each pair), ``counts`` (``(n_pairs, 4)``: ``[i_wins, j_wins, tie,
tie_bothbad]``) and the fitted ``beta`` (logits).

Both follow LMArena's ``arena-rank`` library (the code behind its board since 2025), so that the
numbers agree with it (``arena/tests/test_ratings_robust.py`` checks this on the 1.67M public
battles against outputs it recorded):

* **Reweighting** (:func:`arena.ratings.weights.pair_weights`): every battle of the unordered pair {i, j} gets weight
  ``1 / max(n_ij, min_pair_count)``, so that each pair with at least ``min_pair_count`` battles
  weighs the same in the fit however often it was sampled: heavily sampled pairs (the
  "Leaderboard Illusion" critique, Singh et al. 2025) no longer dominate. The floor keeps a
  pair with a handful of battles from weighing as much as a well-measured one.
* **Sandwich covariance** (:func:`sandwich_half_widths`): ``Cov(β) = H⁻¹ B H⁻¹`` with ``H`` the
  (weighted) Hessian of the negative log-likelihood and ``B = Σ_cells n·w²·(y − p)² x xᵀ`` the
  empirical covariance of the per-battle scores, ``y ∈ {1, 0, ½}`` the outcome of the cell
  (both tie kinds are ½), ``p = σ(β_i − β_j)``, ``x = e_i − e_j``. It stays valid when the
  weights are not inverse variances (reweighting) or the model is misspecified (ties). ``H``
  gets ``hessian_reg`` on its diagonal, as arena-rank does: ``1e-5`` times the number of
  battles when unweighted, ``1e-5`` when reweighted; besides fixing the free shift of all
  ratings (B has no component along it, so it drops out), it slightly narrows the intervals of
  models with few battles, exactly as on LMArena's board. The interval is
  ``β ± z·√Cov_kk`` with ``z`` the normal quantile of the level.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from arena.ratings.linalg import _chol, _chol_solve
from arena.ratings.logistic import sigmoid

#: arena-rank's default ``hessian_reg`` (per battle when unweighted).
HESSIAN_REG = 1e-5

#: Shown on the leaderboard page next to sandwich intervals.
ABOUT_SANDWICH = (
    "The 95% interval of a rating is a sandwich (Huber–White) interval, as on LMArena's board: "
    "the rating ± 1.96 standard errors, where the standard error comes from the curvature of "
    "the Bradley–Terry likelihood and the observed spread of the votes around the fitted win "
    "probabilities, which keeps it honest when ties or reweighting make the plain likelihood "
    "interval too narrow. Rank is 1 plus the number of models whose interval lies entirely "
    "above this model's interval."
)


def _laplacian(n: int, i: np.ndarray, j: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``Σ_k values_k (e_i − e_j)(e_i − e_j)ᵀ`` (pairs are unique, so assignment is safe)."""
    mat = np.zeros((n, n))
    mat[i, j] = -values
    mat[j, i] = -values
    mat[np.diag_indices(n)] = np.bincount(i, values, n) + np.bincount(j, values, n)
    return mat


def sandwich_half_widths(
    i: np.ndarray,
    j: np.ndarray,
    counts: np.ndarray,
    beta: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    lam: float = 0.0,
    level: float = 0.95,
    hessian_reg: float = HESSIAN_REG,
) -> np.ndarray:
    """Half-widths (logits) of the sandwich intervals ``β ± z·se`` of every model, shape ``(n,)``.

    ``weight``: per-pair weight of each battle (None: unweighted); ``lam``: the ridge of the
    fit (part of the Hessian of the objective). ``hessian_reg`` is scaled by the number of
    battles when unweighted, as arena-rank does.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be between 0 and 1")
    n = len(beta)
    c = np.asarray(counts, dtype=np.float64).reshape(-1, 4)
    w = np.ones(len(c)) if weight is None else np.asarray(weight, dtype=np.float64)
    p = sigmoid(beta[i] - beta[j])
    total = c.sum(axis=1)
    hess = _laplacian(n, i, j, p * (1.0 - p) * w * total)
    # Score of one battle: (y − p)·x; its square per cell, times the cell count and w².
    meat_vals = w * w * (c[:, 0] * (1.0 - p) ** 2 + c[:, 1] * p**2 + (c[:, 2] + c[:, 3]) * (0.5 - p) ** 2)
    meat = _laplacian(n, i, j, meat_vals)
    reg = hessian_reg * (float(total.sum()) if weight is None else 1.0)
    hess[np.diag_indices(n)] += reg + lam
    # The prior counts as pseudo-data whose score variance equals its information (λ): a model
    # with no votes gets the prior's variance, and where the model is right the sandwich
    # becomes the posterior covariance (H_data + λ)⁻¹.
    meat[np.diag_indices(n)] += lam
    low = _chol(hess)
    if low is None:  # no battles and no regulariser: nothing is known
        return np.zeros(n)
    cov = _chol_solve(low, _chol_solve(low, meat).T)
    # Ratings are shown centred (mean 1000): the covariance of β − mean(β).
    cov -= cov.mean(axis=0, keepdims=True)
    cov -= cov.mean(axis=1, keepdims=True)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    return z * np.sqrt(np.clip(np.diag(cov), 0.0, None))
