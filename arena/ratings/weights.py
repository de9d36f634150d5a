"""Inverse-pair-frequency reweighting (LMArena's ``arena-rank``): every battle of the unordered pair
{i, j} weighs ``1 / max(n_ij, min_pair_count)`` in the fit and the intervals, so that heavily
sampled pairs no longer dominate the board (see :mod:`arena.ratings.sandwich` for the reference).
"""

from __future__ import annotations

import numpy as np

#: arena-rank's default floor on the pair count in the inverse-frequency weight.
DEFAULT_MIN_PAIR_COUNT = 50

#: Appended to the intervals' text when the fit is reweighted.
ABOUT_REWEIGHTED = (
    " Votes are reweighted by inverse pair frequency: every pair of models with at least {floor} "
    "votes counts the same, however often it was sampled."
)


def pair_weights(total: np.ndarray, min_pair_count: float = DEFAULT_MIN_PAIR_COUNT) -> np.ndarray:
    """Weight of each battle of a pair: ``1 / max(n_pair, min_pair_count)`` (``total``: battles per pair)."""
    if min_pair_count < 1:
        raise ValueError("min_pair_count must be at least 1")
    return 1.0 / np.maximum(np.asarray(total, dtype=np.float64), float(min_pair_count))
