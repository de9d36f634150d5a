"""Which raters vote against the board: a likelihood test of each rater's votes (numpy only, no Django).

Method: under the fitted Bradley–Terry ratings, a decisive vote for A on a pair where A wins
with probability ``p`` has log-likelihood ``log p`` (``log(1 - p)`` for B). If the rater voted
as the board predicts, the sum ``L`` of their votes' log-likelihoods has mean
``Σ p log p + (1-p) log(1-p)`` and variance ``Σ p(1-p) log²(p/(1-p))``. The rater's score is
``z = (L - mean) / sqrt(variance)``; a rater with at least ``min_votes`` decisive votes and
``z < -threshold`` is an outlier. Ties are left out (the board predicts no tie rate).

Why this rather than FastChat's sequential test (per-vote p-values against the history of
that one model pair, combined over the rater's votes): a small or new arena has few votes per
pair, so pair histories are noise; the BT fit pools every pair, and the test is one vectorised
pass over all votes. Its blind spot is the same as any board-based test: where the board
predicts 50/50 (``p = 0.5``) a vote carries no evidence, so it is a backstop to the rate
limits and the minimum voting time, not a replacement.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def rater_scores(
    rater: np.ndarray, p_a: np.ndarray, a_won: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per rater index ``0..max(rater)``: (decisive votes, z score, log-likelihood ratio sum).

    ``rater``: int array, one rater index per decisive vote; ``p_a``: the board's P(A beats B)
    for that vote's pair; ``a_won``: bool array. A rater with zero variance gets ``z = 0``.
    """
    rater = np.asarray(rater, dtype=np.int64)
    p = np.clip(np.asarray(p_a, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(a_won, dtype=bool)
    size = int(rater.max()) + 1 if len(rater) else 0
    loglik = np.where(y, np.log(p), np.log1p(-p))
    mean = p * np.log(p) + (1 - p) * np.log1p(-p)
    var = p * (1 - p) * np.log(p / (1 - p)) ** 2
    n = np.bincount(rater, minlength=size)
    dev = np.bincount(rater, weights=loglik - mean, minlength=size)
    total_var = np.bincount(rater, weights=var, minlength=size)
    z = np.divide(dev, np.sqrt(total_var), out=np.zeros(size), where=total_var > 1e-12)
    return n, z, dev


def outliers(rater: np.ndarray, p_a: np.ndarray, a_won: np.ndarray, *, threshold: float, min_votes: int) -> np.ndarray:
    """Indices of the raters whose votes are outliers (see the module docstring)."""
    n, z, _ = rater_scores(rater, p_a, a_won)
    return np.flatnonzero((n >= min_votes) & (z < -threshold))
