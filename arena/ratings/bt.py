"""The Bradley–Terry fit: a damped Newton method on aggregated counts, ties as half a win for each
side, a ridge ``reg`` (:data:`DEFAULT_REG`), ratings centred at mean 1000 and optionally anchored.

Main entry point: :func:`fit_bt`; :func:`arena.ratings.board.compute_board` and the interval
methods use the private helpers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from arena.ratings.counts import PairCounts
from arena.ratings.linalg import _solve_spd
from arena.ratings.logistic import sigmoid
from arena.ratings.scale import INITIAL_RATING, POINTS_PER_LOGIT

#: The ridge of the public LMSYS board, ``reg/2 · Σ θ²`` on ratings in log10-odds units (θ =
#: rating/400, FastChat's ``fit_contextual_bt`` convention). A ridge is a Gaussian prior: ``reg``
#: = (400 / SD)², so 0.01 is a prior of SD 4000 points centred on the arena mean, practically
#: flat (it moves the ratings fitted on the 1.67M public battles by under 0.01 point). It is the
#: default of the pure functions so that reproductions of the published board compare like with
#: like; the live board uses a prior somebody chose, ``ARENA_LEADERBOARD_PRIOR_SD`` (see
#: :func:`prior_reg` and :data:`DEFAULT_PRIOR_SD`). Pass ``reg=0`` for the exact maximum-likelihood
#: estimate (only finite when every model has both won and lost, counting ties as half of each,
#: against a connected set of opponents).
DEFAULT_REG = 0.01

#: The live board's prior: ratings ~ Normal(arena mean, SD²) with SD in Elo points, chosen by
#: ``bench/predictive.py`` (the best log-loss of the next votes after 100–300 votes, in arenas of
#: 20 and 60 public models; see docs/leaderboard.md). A model with few votes stays near the middle with an
#: interval about ±1.96·SD wide; with thousands of votes the data outweigh it.
DEFAULT_PRIOR_SD = 100.0


def prior_reg(sd_points: float) -> float:
    """The ridge ``reg`` (log10-odds units, as :data:`DEFAULT_REG`) of a Gaussian prior of SD
    ``sd_points`` Elo points on every rating: ``(400 / sd)²``; ``inf`` (no prior) gives 0."""
    if not sd_points > 0:
        raise ValueError("the prior's SD must be a positive number of points")
    return 0.0 if sd_points == float("inf") else (400.0 / sd_points) ** 2


def prior_sd_of_reg(reg: float) -> float:
    """The inverse of :func:`prior_reg`: the SD in points of the prior a ridge ``reg`` is."""
    return float("inf") if reg == 0 else 400.0 / math.sqrt(reg)


# Newton stops when the largest step is below this (in logits): 1e-10 logit ≈ 2e-8 Elo points.
_NEWTON_TOL = 1e-10
_NEWTON_MAX_ITER = 100


def _reg_logit(reg: float) -> float:
    """``reg`` is on log10-odds units (θ = rating/400, FastChat's convention); β = θ·ln 10."""
    return reg / math.log(10.0) ** 2


def _bt_inputs(counts: PairCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pair indices, "wins" of i (ties as half) and totals per pair."""
    c = counts.counts
    wins = c[:, 0] + 0.5 * (c[:, 2] + c[:, 3])
    return counts.pairs[:, 0], counts.pairs[:, 1], wins, c.sum(axis=1)


def _components(n: int, i: np.ndarray, j: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the comparison graph (an edge per pair with ≥ 1 battle)."""
    # Union–find over the pairs (each root the smallest model of its set), then the roots numbered
    # in order: a component's label is the rank of its smallest model, as in scipy's csgraph.
    root = list(range(n))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            root[max(ra, rb)] = min(ra, rb)
    roots, labels = np.unique(np.array([find(x) for x in range(n)], dtype=np.int64), return_inverse=True)
    return len(roots), labels.astype(np.int64)


def _nll(
    beta: np.ndarray, i: np.ndarray, j: np.ndarray, wins: np.ndarray, total: np.ndarray, lam: float,
    centre: np.ndarray | float = 0.0,
) -> float:
    x = beta[i] - beta[j]
    # −log σ(x) = logaddexp(0, −x): stable for any x.
    loss = wins @ np.logaddexp(0.0, -x) + (total - wins) @ np.logaddexp(0.0, x)
    d = beta - centre
    return float(loss + 0.5 * lam * d @ d)


def _grad_hess(
    beta: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    wins: np.ndarray,
    total: np.ndarray,
    lam: float,
    gauge: np.ndarray | None,
    centre: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(beta)
    p = sigmoid(beta[i] - beta[j])
    resid = total * p - wins
    g = np.bincount(i, resid, n) - np.bincount(j, resid, n) + lam * (beta - centre)
    h = total * p * (1.0 - p)
    # The Hessian is a weighted graph Laplacian (pairs are unique, so plain assignment is safe).
    hess = np.zeros((n, n))
    hess[i, j] = -h
    hess[j, i] = -h
    hess[np.diag_indices(n)] = np.bincount(i, h, n) + np.bincount(j, h, n) + lam
    if gauge is not None:
        hess += gauge
    return g, hess


def _gauge(labels: np.ndarray) -> np.ndarray:
    """Σ over components of 1_c 1_cᵀ / |c|.

    Without a ridge the likelihood is flat along "shift one component": adding this to the
    Hessian makes it invertible and, since the gradient sums to zero over every component,
    keeps each component's mean where it is (zero).
    """
    same = labels[:, None] == labels[None, :]
    size = np.bincount(labels)[labels]
    return same / size[:, None]


def _newton(
    i: np.ndarray,
    j: np.ndarray,
    wins: np.ndarray,
    total: np.ndarray,
    n: int,
    lam: float,
    labels: np.ndarray,
    beta0: np.ndarray | None = None,
    centre: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton for the (ridge-)penalised BT likelihood, in logits.

    The prior (ridge) is centred at ``centre`` (0: the arena mean; the bootstrap draws it).

    Returns ``(beta, hessian)``: the optimum (each component's mean at 0) and the Hessian there
    (gauge included when ``lam == 0``), which the bootstrap reuses as its preconditioner.
    The problem is convex and n is small (a dense n×n solve costs far less than one pass over
    the pairs), so Newton reaches machine precision in a handful of iterations, where a
    first-order method with FastChat's gtol=1e-6 stops up to 0.03 points short.
    """
    gauge = _gauge(labels) if lam == 0 else None
    beta = np.zeros(n) if beta0 is None else np.array(beta0, dtype=np.float64)
    f0: float | None = None
    for _ in range(_NEWTON_MAX_ITER):
        g, hess = _grad_hess(beta, i, j, wins, total, lam, gauge, centre)
        step = _solve_spd(hess, g)
        big = float(np.max(np.abs(step), initial=0.0))
        if big > 1e-6:
            # Backtracking (Armijo): far from the optimum a full Newton step on a logistic
            # likelihood can overshoot; near it the quadratic model is exact and rounding
            # would make the test meaningless, hence the threshold.
            f0 = _nll(beta, i, j, wins, total, lam, centre) if f0 is None else f0
            slope = float(g @ step)
            t = 1.0
            while (f1 := _nll(beta - t * step, i, j, wins, total, lam, centre)) > f0 - 1e-4 * t * slope and t > 1e-8:
                t *= 0.5
            step *= t
            big *= t
            f0 = f1
        else:
            f0 = None
        beta -= step
        if big < _NEWTON_TOL:
            break
    _, hess = _grad_hess(beta, i, j, wins, total, lam, gauge, centre)
    return beta, hess


def _to_points(beta: np.ndarray) -> np.ndarray:
    """Logits → Elo points, centred at mean 1000 (over the last axis)."""
    centred = beta - beta.mean(axis=-1, keepdims=True) if beta.shape[-1] else beta
    return INITIAL_RATING + POINTS_PER_LOGIT * centred


def _anchor_offset(models: Sequence[str], rating: np.ndarray, anchor: tuple[str, float] | None) -> float:
    if anchor is None or anchor[0] not in models:
        return 0.0
    return float(anchor[1]) - float(rating[list(models).index(anchor[0])])


def fit_bt(
    counts: PairCounts,
    *,
    anchor: tuple[str, float] | None = None,
    reg: float = DEFAULT_REG,
) -> np.ndarray:
    """Bradley–Terry ratings (Elo scale) of ``counts.models``, shape ``(n_models,)``.

    Maximum likelihood (with the small ridge ``reg``, see :data:`DEFAULT_REG`) on the aggregated
    counts, ties as half a win each; centred at mean 1000, then shifted so that ``anchor``
    (``(model, rating)``) has that rating, if the model is present. Converged to ~1e-8 points.
    A disconnected comparison graph is fitted component by component, each centred at 1000
    (only differences within a component mean anything).
    """
    i, j, wins, total = _bt_inputs(counts)
    n = counts.n_models
    _, labels = _components(n, i, j)
    beta, _ = _newton(i, j, wins, total, n, _reg_logit(reg), labels)
    rating = _to_points(beta)
    return rating + _anchor_offset(counts.models, rating, anchor)


def predicted_win_rate(rating: np.ndarray) -> np.ndarray:
    """``P[i, j]``: probability that i beats j under BT with these Elo-scale ratings."""
    r = np.asarray(rating, dtype=np.float64)
    return sigmoid((r[:, None] - r[None, :]) / POINTS_PER_LOGIT)
