"""The rating scale and the vote outcome codes shared by every rating module.

Ratings are on the Elo scale: 400 points per factor 10 in odds, i.e. ``400 / ln 10`` points per
logit; the outcome codes order :data:`WINNERS`.
"""

from __future__ import annotations

import math

import numpy as np

#: Vote values, in the order of the outcome codes used by the array functions.
WINNERS: tuple[str, str, str, str] = ("model_a", "model_b", "tie", "tie (bothbad)")
A_WINS, B_WINS, TIE, TIE_BOTHBAD = 0, 1, 2, 3
_WINNER_CODE = {w: c for c, w in enumerate(WINNERS)}
#: Code of the same vote seen from the other side (model_a and model_b swapped).
_MIRROR = np.array([B_WINS, A_WINS, TIE, TIE_BOTHBAD], dtype=np.int64)

INITIAL_RATING = 1000.0
ELO_K = 4.0
ELO_BASE = 10.0
ELO_SCALE = 400.0
#: Elo points per logit (natural-log odds): 400 / ln 10 ≈ 173.72.
POINTS_PER_LOGIT = ELO_SCALE / math.log(ELO_BASE)

#: The public board's anchor: this model is shifted to this rating.
LMSYS_ANCHOR: tuple[str, float] = ("mixtral-8x7b-instruct-v0.1", 1114.0)


def parse_anchor(raw: str) -> tuple[str, float]:
    """``MODEL=RATING`` (an anchor: MODEL is shifted to RATING) → ``(model, rating)``; the model may
    contain "=" (the last one splits). Raises ValueError naming the expected syntax."""
    model, sep, value = raw.rpartition("=")
    try:
        rating = float(value)
    except ValueError:
        rating = math.nan
    if not sep or not model.strip() or not math.isfinite(rating):
        raise ValueError(f"must be MODEL=RATING, e.g. {LMSYS_ANCHOR[0]}={LMSYS_ANCHOR[1]:.0f}; got {raw!r}")
    return model.strip(), rating
