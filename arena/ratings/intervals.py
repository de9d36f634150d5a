"""The interval methods of the board, side by side behind one interface.

An interval method turns a fitted board (:class:`IntervalInputs`) into the 95% bounds of every
rating, in Elo points, and says in plain words how (``about``, shown beside the intervals).
:data:`INTERVAL_METHODS` is the one list: ``compute_board(ci=...)``, the ``ARENA_LEADERBOARD_CI``
setting, ``compute_ratings --ci`` and the leaderboard's About text all read it, so a new method
is one entry here plus its own module.

* ``bootstrap`` (:mod:`arena.ratings.bootstrap`): percentiles of ``rounds`` refits on resampled
  votes, seeded.
* ``sandwich`` (:mod:`arena.ratings.sandwich`): ``rating ± 1.96`` Huber–White standard errors,
  as LMArena's board; ``rounds`` and ``seed`` are unused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from arena.ratings.bootstrap import ABOUT_INTERVALS, _bootstrap_betas
from arena.ratings.bt import _to_points
from arena.ratings.counts import PairCounts
from arena.ratings.sandwich import ABOUT_SANDWICH, sandwich_half_widths
from arena.ratings.scale import POINTS_PER_LOGIT


@dataclass(frozen=True, eq=False)
class IntervalInputs:
    """A fitted board as the interval methods see it (arrays follow ``counts.models``).

    ``beta``: the fitted ratings in logits; ``rating``: the same in points, anchored; ``offset``:
    the anchor's shift in points; ``hess``: the fit's Hessian; ``labels``: component labels;
    ``lam``: the ridge in logit units; ``weight``: per-pair weights (None: unweighted).
    """

    counts: PairCounts
    i: np.ndarray
    j: np.ndarray
    beta: np.ndarray
    rating: np.ndarray
    offset: float
    hess: np.ndarray
    labels: np.ndarray
    lam: float
    weight: np.ndarray | None
    rounds: int
    seed: int


def _bootstrap(x: IntervalInputs) -> tuple[np.ndarray, np.ndarray] | None:
    if x.rounds <= 0:
        return None
    boot = _to_points(_bootstrap_betas(x.counts, x.beta, x.hess, x.labels, x.lam, x.rounds, x.seed, x.weight))
    low, high = np.percentile(boot + x.offset, [2.5, 97.5], axis=0)
    return low, high


def _sandwich(x: IntervalInputs) -> tuple[np.ndarray, np.ndarray]:
    half = POINTS_PER_LOGIT * sandwich_half_widths(x.i, x.j, x.counts.counts, x.beta, weight=x.weight, lam=x.lam)
    return x.rating - half, x.rating + half


@dataclass(frozen=True)
class IntervalMethod:
    """``bounds`` returns ``(low, high)``, or None when the method has nothing to say (no rounds)."""

    name: str
    about: str
    bounds: Callable[[IntervalInputs], tuple[np.ndarray, np.ndarray] | None]


INTERVAL_METHODS: dict[str, IntervalMethod] = {
    method.name: method
    for method in (
        IntervalMethod("bootstrap", ABOUT_INTERVALS, _bootstrap),
        IntervalMethod("sandwich", ABOUT_SANDWICH, _sandwich),
    )
}
#: The names, in the order they are offered.
CI_METHODS: tuple[str, ...] = tuple(INTERVAL_METHODS)


def interval_bounds(method: str, inputs: IntervalInputs) -> tuple[np.ndarray, np.ndarray]:
    """The 95% bounds of every rating by ``method``; zero-width intervals on an empty or one-model
    board, or when the method has nothing to say (bootstrap with 0 rounds)."""
    if len(inputs.beta) > 1 and int(round(inputs.counts.n_battles)) > 0:
        bounds = INTERVAL_METHODS[method].bounds(inputs)
        if bounds is not None:
            return bounds
    return inputs.rating.copy(), inputs.rating.copy()
