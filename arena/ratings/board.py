"""The whole leaderboard from aggregated counts: :func:`compute_board` fits the ratings
(:mod:`arena.ratings.bt`), asks the chosen interval method (:mod:`arena.ratings.intervals`) for
the 95% intervals, and adds ranks, pair matrices and predicted win rates (:class:`Board`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arena.ratings.bt import (
    DEFAULT_REG,
    _anchor_offset,
    _bt_inputs,
    _components,
    _newton,
    _reg_logit,
    _to_points,
    predicted_win_rate,
)
from arena.ratings.counts import PairCounts
from arena.ratings.fragility import adjacent_flips, bt_cells
from arena.ratings.intervals import CI_METHODS, IntervalInputs, interval_bounds
from arena.ratings.scale import POINTS_PER_LOGIT
from arena.ratings.ties import TIE_MODELS, tie_board_fit, tie_cells
from arena.ratings.weights import DEFAULT_MIN_PAIR_COUNT, pair_weights


def rank_upper_bound(ci_low: np.ndarray, ci_high: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Public-board rank: 1 + the number of models whose lower bound is above my upper bound.

    With ``groups`` (e.g. component labels), only models of the same group are compared.
    """
    lo = np.asarray(ci_low, dtype=np.float64)
    hi = np.asarray(ci_high, dtype=np.float64)
    above = lo[None, :] > hi[:, None]
    if groups is not None:
        g = np.asarray(groups)
        above &= g[None, :] == g[:, None]
    return 1 + above.sum(axis=1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Board:
    """A computed leaderboard. Models are sorted by rating, best first; all arrays follow
    ``models``. Every number is finite (safe for JSON and the database).

    ``rating``: BT point estimate (Elo scale, mean 1000 plus the anchor's shift).
    ``ci_low``/``ci_high``: 95% interval, bootstrap (equal to ``rating`` when ``rounds == 0``) or sandwich.
    ``rank``: public-board rank (see :func:`rank_upper_bound`), within the model's component.
    ``battles``: battles per model, ties included.
    ``win_fraction[i, j]``: share of i's decisive battles against j that i won (ties excluded,
    as FastChat shows it); meaningful only where ``battle_count[i, j] > 0`` and 0 elsewhere.
    ``battle_count[i, j]``: decisive (non-tie) battles between i and j, symmetric.
    ``avg_win_rate``: mean of a model's win fractions over the opponents it has a decisive
    battle with (0 if none).
    ``predicted_win_rate[i, j]``: P(i beats j) from the ratings.
    ``components``: model names per connected component of the comparison graph, largest
    first. With more than one, ratings are only comparable within a component and the page
    should say so (``is_connected`` is False).
    ``excluded``: models dropped for having fewer than ``min_battles`` battles.
    ``anchor``: the anchor applied, or None (none asked, or the model is not on the board).
    ``ci``: the interval method (:data:`arena.ratings.intervals.CI_METHODS`); ``reweighted``:
    whether battles were weighted by inverse pair frequency; ``ties``: the tie model
    (:data:`arena.ratings.ties.TIE_MODELS`) and ``tie_param`` its fitted tie parameter (None
    for ``half``). ``flips[k]``: about how many votes, removed, would swap ``models[k]`` and
    ``models[k + 1]`` (:mod:`arena.ratings.fragility`; None for the last model, neighbours in
    different components, or when no removal does it).
    """

    models: list[str]
    rating: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rank: np.ndarray
    battles: np.ndarray
    win_fraction: np.ndarray
    battle_count: np.ndarray
    avg_win_rate: np.ndarray
    predicted_win_rate: np.ndarray
    components: list[list[str]]
    excluded: list[str]
    anchor: tuple[str, float] | None
    n_battles: int
    rounds: int
    seed: int
    reg: float = field(default=DEFAULT_REG)
    ci: str = "bootstrap"
    reweighted: bool = False
    ties: str = "half"
    tie_param: float | None = None
    flips: list[int | None] = field(default_factory=list)

    @property
    def is_connected(self) -> bool:
        return len(self.components) <= 1

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, ready for ``json.dumps`` (e.g. to cache the board)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            out[name] = value.tolist() if isinstance(value, np.ndarray) else value
        out["anchor"] = list(self.anchor) if self.anchor else None
        out["is_connected"] = self.is_connected
        return out


def _pair_matrices(counts: PairCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decisive-battle count matrix, win-fraction matrix and average win rate (ties excluded)."""
    n = counts.n_models
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    wi, wj = counts.counts[:, 0], counts.counts[:, 1]
    wins = np.zeros((n, n))
    wins[i, j] = wi
    wins[j, i] = wj
    battle_count = wins + wins.T
    played = battle_count > 0
    win_fraction = np.divide(wins, battle_count, out=np.zeros((n, n)), where=played)
    n_opp = played.sum(axis=1)
    avg = np.divide(win_fraction.sum(axis=1), n_opp, out=np.zeros(n), where=n_opp > 0)
    return battle_count, win_fraction, avg


def compute_board(
    counts: PairCounts,
    *,
    anchor: tuple[str, float] | None = None,
    rounds: int = 100,
    seed: int = 0,
    min_battles: int = 0,
    reg: float = DEFAULT_REG,
    ci: str = "bootstrap",
    reweighted: bool = False,
    min_pair_count: int = DEFAULT_MIN_PAIR_COUNT,
    ties: str = "half",
) -> Board:
    """The whole leaderboard from aggregated counts.

    1. Models with fewer than ``min_battles`` battles are dropped with their battles (one pass)
       and listed in ``Board.excluded``.
    2. BT ratings as :func:`fit_bt`.
    3. ``rounds`` bootstrap refits (:data:`ABOUT_INTERVALS`), seeded by ``seed`` so the same
       counts and seed give the same intervals; each replicate is centred at mean 1000 and
       shifted by the *point estimate's* anchor offset only.
       With ``ci="sandwich"`` the intervals are sandwich intervals instead
       (:mod:`arena.ratings.sandwich`; ``rounds`` and ``seed`` are then unused).
       ``reweighted``: weight every battle by the inverse of its pair's battle count, floored
       at ``min_pair_count`` (:func:`arena.ratings.weights.pair_weights`), in the fit and
       the intervals; the ridge is scaled by the mean weight so that it keeps its strength
       relative to the data.
    4. Ranks, pair matrices and predicted win rates.

    ``ties``: ``half`` (above) or a tie model of :mod:`arena.ratings.ties` (``davidson``,
    ``rao-kupper``), fitted by Newton with the same prior; its intervals are sandwich or
    bootstrap as asked (``reweighted`` is not offered with a tie model).

    Works for an empty board (every array empty) and a single model (rating 1000 or the
    anchor's rating, interval of zero width, rank 1, matrices of shape (1, 1)).
    """
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {', '.join(CI_METHODS)}, got {ci!r}")
    if ties not in TIE_MODELS:
        raise ValueError(f"ties must be one of {', '.join(TIE_MODELS)}, got {ties!r}")
    if ties != "half" and reweighted:
        raise ValueError("reweighting is only offered with ties counted as half (ties='half')")
    per_model = counts.battles_per_model()
    keep = [m for m, nb in zip(counts.models, per_model, strict=True) if nb >= min_battles]
    excluded = [m for m, nb in zip(counts.models, per_model, strict=True) if nb < min_battles]
    if excluded:
        counts = counts.subset(keep)
    n = counts.n_models
    i, j, wins, total = _bt_inputs(counts)
    _, labels = _components(n, i, j)
    lam = _reg_logit(reg)
    weight = pair_weights(total, min_pair_count) if reweighted else None
    if weight is not None:
        lam *= float(weight @ total) / max(float(total.sum()), 1.0)
        wins, total = wins * weight, total * weight

    if ties != "half":
        return _tie_board(counts, ties, lam, labels, anchor, excluded=excluded, rounds=rounds, seed=seed, reg=reg, ci=ci)
    beta, hess = _newton(i, j, wins, total, n, lam, labels)
    rating = _to_points(beta)
    offset = _anchor_offset(counts.models, rating, anchor)
    rating = rating + offset
    applied = (anchor[0], float(anchor[1])) if anchor is not None and anchor[0] in counts.models else None

    n_battles = int(round(counts.n_battles))
    ci_low, ci_high = interval_bounds(ci, IntervalInputs(
        counts=counts, i=i, j=j, beta=beta, rating=rating, offset=offset, hess=hess, labels=labels, lam=lam,
        weight=weight, rounds=rounds, seed=seed))
    flips = adjacent_flips(rating, counts.models, labels, beta, hess, bt_cells(i, j, counts.counts, beta, weight))
    return _board_of(counts, rating, ci_low, ci_high, labels, excluded=excluded, anchor=applied,
                     n_battles=n_battles, rounds=rounds, seed=seed, reg=reg, ci=ci, reweighted=reweighted, flips=flips)


def _tie_board(counts: PairCounts, ties: str, lam: float, labels: np.ndarray, anchor: tuple[str, float] | None,
               *, excluded: list[str], rounds: int, seed: int, reg: float, ci: str) -> Board:
    """The board of a tie model (Davidson or Rao–Kupper) on the same scale: β centred, in points."""
    fit, low, high = tie_board_fit(ties, counts, lam, ci, rounds, seed)
    beta, tie_param = fit.beta, fit.tie
    rating = _to_points(beta)
    offset = _anchor_offset(counts.models, rating, anchor)
    rating = rating + offset
    if low is None or high is None:
        ci_low, ci_high = rating.copy(), rating.copy()
    else:
        ci_low = _to_points(beta) + offset + POINTS_PER_LOGIT * (low - beta)
        ci_high = _to_points(beta) + offset + POINTS_PER_LOGIT * (high - beta)
    applied = (anchor[0], float(anchor[1])) if anchor is not None and anchor[0] in counts.models else None
    return _board_of(counts, rating, ci_low, ci_high, labels, excluded=excluded, anchor=applied,
                     n_battles=int(round(counts.n_battles)), rounds=rounds, seed=seed, reg=reg, ci=ci,
                     reweighted=False, ties=ties, tie_param=tie_param,
                     flips=adjacent_flips(rating, counts.models, labels, beta, fit.hess, tie_cells(fit, counts)))


def _board_of(counts: PairCounts, rating: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray,
              labels: np.ndarray, **facts: Any) -> Board:
    """Ranks, pair matrices and win rates, everything ordered best first (``facts``: Board's other fields)."""
    n = counts.n_models
    rank = rank_upper_bound(ci_low, ci_high, labels)
    battle_count, win_fraction, avg = _pair_matrices(counts)
    predicted = predicted_win_rate(rating)
    battles = counts.battles_per_model()

    # Best first; name breaks ties so the order is deterministic.
    order = np.array(sorted(range(n), key=lambda k: (-rating[k], counts.models[k])), dtype=np.int64)
    models = [counts.models[k] for k in order]
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    # Components: members best first; components largest first, then by their best model.
    members: dict[int, list[int]] = {}
    for k in order:
        members.setdefault(int(labels[k]), []).append(int(k))
    groups = sorted(members.values(), key=lambda ks: (-len(ks), int(pos[ks[0]])))
    components = [[counts.models[k] for k in ks] for ks in groups]
    sub = np.ix_(order, order)
    return Board(
        models=models,
        rating=rating[order],
        ci_low=ci_low[order],
        ci_high=ci_high[order],
        rank=rank[order],
        battles=battles[order].round().astype(np.int64),
        win_fraction=win_fraction[sub],
        battle_count=battle_count[sub].round().astype(np.int64),
        avg_win_rate=avg[order],
        predicted_win_rate=predicted[sub],
        components=components,
        **facts,
    )
