"""The logistic function σ(x) = 1 / (1 + e^−x), numpy only.

``arena.ratings`` imports nothing from scipy, so that ``manage.py compute_ratings`` (a one-shot
command, ~1.3 s on 1.67M battles) does not spend ~0.2 s importing scipy's submodules for one
ufunc. :func:`sigmoid` matches ``scipy.special.expit`` to a few ulps over the whole real line (subnormals aside, which expit flushes to 0)
(no overflow: e^−|x| only), which ``arena/tests/test_ratings_logistic.py`` checks.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """σ(x), elementwise, as float64; exact in the tails (σ(−800) is e^−800's 0.0 as in expit)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)
