"""Which keys (rater ids, IP hashes) vote against the board, and how much of a model one key may hold
(numpy only, no Django).

Contract:

* :func:`key_scores` tests each key with at least ``min_votes`` votes against a Bradley–Terry
  board fitted **without that key's votes** (leave-one-key-out). A key cannot feed the board it
  is tested against: 60 votes for the weakest of 8 models in an arena of 500 honest votes pull
  a board fitted on every vote towards the attacker, so the same votes look ordinary there
  (median z = +2.3 with them in the fit, −12.2 without; ``bench/key_attack.py``).
* :func:`share_capped` marks the votes beyond a cap on one key's share of a model's votes.
* :func:`vote_marks` runs both on one set of votes and two key columns (rater id, IP hash):
  the test first, then the cap on the votes of the keys the test did not flag.

Test: under the board (ties counted as half a win, as the board counts them), a vote on a
pair where the model shown first has expected score ``p`` scores ``y ∈ {1, ½, 0}`` with
log-likelihood ``ℓ = y log p + (1 − y) log(1 − p)``. Ties are in the likelihood: a tie is
drawn with the tie rate ``t`` of the votes the board was fitted on (capped at ``2·min(p, 1−p)``
so the expected score stays ``p``), a win with ``p − t/2``, a loss with ``1 − p − t/2``. From
that three-point distribution each vote gets the mean and variance of ``ℓ``; a key's score is
``z = Σ(ℓ − mean) / sqrt(Σ variance)``, and ``z < −threshold`` flags it. Where the board
predicts 50/50 a decisive vote carries no evidence, and a key that votes like the crowd is
indistinguishable from it: the test is a backstop, the share cap bounds what remains.

Cost: one fit on every vote, then for every tested key its votes' pair counts subtracted and a
Newton fit warm-started from the full fit (3–4 steps of an n×n solve, n = models), all tested
keys at once as batched numpy (chunks of 256 keys), so the test is a few passes over the
votes plus a few batched solves (figures in ``bench/key_attack.py`` and README).

Cap: for a key and a model, ``others`` = the model's votes from every other key; the key keeps
its earliest ``max(floor, ⌊share · others / (1 − share)⌋)`` votes on that model (so its kept
votes are at most ``share`` of the model's votes, or ``floor`` while the model has few) and
the rest are capped. A vote is capped when it is beyond the cap for either of its models in
either key column. One pass: ``others`` counts the other keys' votes before their own caps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from arena.ratings import DEFAULT_REG  # the board's ridge, in log10-odds units

EPS = 1e-6
A_WINS, B_WINS, TIE, TIE_BOTHBAD = 0, 1, 2, 3
SCORE_OF_A = np.array([1.0, 0.0, 0.5, 0.5])  # outcome code → A's score (ties as half a win)
_TOL = 1e-8
_MAX_ITER = 50
_CHUNK = 256  # keys fitted together (memory: chunk × models² floats)


@dataclass(frozen=True)
class KeyScores:
    """Per key index ``0..K-1``: votes, z score (0 when untested), and the Newton steps of its refit."""

    votes: np.ndarray
    z: np.ndarray
    steps: np.ndarray


def _ridge(reg: float) -> float:
    return reg / math.log(10.0) ** 2  # log10-odds → logits, as the board does


def _nll(beta, i, j, wins, total, lam) -> float:
    x = beta[i] - beta[j]
    return float(wins @ np.logaddexp(0.0, -x) + (total - wins) @ np.logaddexp(0.0, x) + 0.5 * lam * beta @ beta)


def bt_fit(n: int, i: np.ndarray, j: np.ndarray, wins: np.ndarray, total: np.ndarray, *,
           lam: float, beta0: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Ridge-penalised Bradley–Terry in logits by damped Newton: ``(beta, steps)``.

    ``i, j``: pair model indices; ``wins``: i's score summed over the pair's votes (ties as
    half); ``total``: the pair's votes. ``lam > 0`` makes the Hessian positive definite (no
    gauge needed). ``beta0`` warm-starts (leave-one-key-out starts from the full fit).
    """
    beta = np.zeros(n) if beta0 is None else np.array(beta0, dtype=np.float64)
    for step_count in range(1, _MAX_ITER + 1):
        p = expit(beta[i] - beta[j])
        resid = total * p - wins
        g = np.bincount(i, resid, n) - np.bincount(j, resid, n) + lam * beta
        h = total * p * (1.0 - p)
        hess = np.zeros((n, n))
        np.add.at(hess, (i, j), -h)
        np.add.at(hess, (j, i), -h)
        hess[np.diag_indices(n)] += np.bincount(i, h, n) + np.bincount(j, h, n) + lam
        step = np.linalg.solve(hess, g)
        big = float(np.max(np.abs(step), initial=0.0))
        if big > 1e-3:  # far from the optimum a full step can overshoot: backtrack (Armijo)
            f0, slope, t = _nll(beta, i, j, wins, total, lam), float(g @ step), 1.0
            while _nll(beta - t * step, i, j, wins, total, lam) > f0 - 1e-4 * t * slope and t > 1e-8:
                t *= 0.5
            step, big = step * t, big * t
        beta -= step
        if big < _TOL:
            return beta, step_count
    return beta, _MAX_ITER


def _oriented(n: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: the pair id ``lo * n + hi`` and the score of ``lo``."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    score_a = SCORE_OF_A[np.asarray(outcome, dtype=np.int64)]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo * n + hi, np.where(a == lo, score_a, 1.0 - score_a)


def vote_loglik_moments(p: np.ndarray, y: np.ndarray, tie_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vote (``p``: the board's expected score of the first model, ``y``: its score):
    ``(ℓ, mean of ℓ, variance of ℓ)`` under the tie-aware three-point model (module docstring)."""
    p = np.clip(p, EPS, 1 - EPS)
    t = np.minimum(tie_rate, 2 * np.minimum(p, 1 - p))
    win, loss = np.log(p), np.log1p(-p)
    half = 0.5 * (win + loss)
    prob = (p - t / 2, 1 - p - t / 2, t)
    mean = prob[0] * win + prob[1] * loss + prob[2] * half
    second = prob[0] * win**2 + prob[1] * loss**2 + prob[2] * half**2
    loglik = y * win + (1 - y) * loss
    return loglik, mean, np.maximum(second - mean**2, 0.0)


def key_scores(n_models: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, key: np.ndarray, *,
               min_votes: int, reg: float = DEFAULT_REG) -> KeyScores:
    """Leave-one-key-out scores of every key with at least ``min_votes`` votes (module docstring).

    ``a, b``: model indices per vote; ``outcome``: 0 A wins, 1 B wins, 2 tie, 3 both bad;
    ``key``: key index per vote (``-1``: no key, never tested but in every board).
    """
    key = np.asarray(key, dtype=np.int64)
    size = int(key.max()) + 1 if len(key) else 0
    votes = np.bincount(key[key >= 0], minlength=size)
    z, steps = np.zeros(size), np.zeros(size, dtype=np.int64)
    tested = np.flatnonzero(votes >= min_votes)
    if not len(tested):
        return KeyScores(votes, z, steps)
    n, lam = n_models, _ridge(reg)
    pair, y = _oriented(n, a, b, outcome)
    tie = np.asarray(outcome) >= TIE
    wins_all = np.bincount(pair, y, n * n)
    total_all = np.bincount(pair, minlength=n * n).astype(np.float64)
    cell = np.flatnonzero(total_all > 0)  # the pairs of the full board; a key's board has a subset
    i, j = np.divmod(cell, n)
    beta_full, _ = bt_fit(n, i, j, wins_all[cell], total_all[cell], lam=lam)
    column = np.full(n * n, -1)
    column[cell] = np.arange(len(cell))
    for chunk in np.array_split(tested, max(1, len(tested) // _CHUNK + 1)):
        row = np.full(size, -1)
        row[chunk] = np.arange(len(chunk))
        mine = np.flatnonzero((key >= 0) & (row[np.maximum(key, 0)] >= 0))
        slot = row[key[mine]] * len(cell) + column[pair[mine]]
        shape = (len(chunk), len(cell))
        wins = wins_all[cell] - np.bincount(slot, y[mine], shape[0] * shape[1]).reshape(shape)
        total = total_all[cell] - np.bincount(slot, minlength=shape[0] * shape[1]).reshape(shape)
        beta, steps[chunk] = _fit_many(n, i, j, wins, total, lam=lam, beta0=beta_full)
        tie_rate = (tie.sum() - np.bincount(row[key[mine]], tie[mine], len(chunk))) / np.maximum(
            len(key) - votes[chunk], 1)
        lo, hi = np.divmod(pair[mine], n)
        k = row[key[mine]]
        loglik, mean, var = vote_loglik_moments(expit(beta[k, lo] - beta[k, hi]), y[mine], tie_rate[k])
        dev, total_var = np.bincount(k, loglik - mean, len(chunk)), np.bincount(k, var, len(chunk))
        z[chunk] = np.divide(dev, np.sqrt(total_var), out=np.zeros(len(chunk)), where=total_var > 1e-12)
    return KeyScores(votes, z, steps)


def _fit_many(n: int, i: np.ndarray, j: np.ndarray, wins: np.ndarray, total: np.ndarray, *, lam: float,
              beta0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bt_fit` for many boards at once (one row of ``wins``/``total`` per board) from one
    warm start: batched Newton steps, each capped at 1 logit (a trust region, enough from a start
    this close), until every board's largest step is below the tolerance. ``(betas, steps)``."""
    count = len(wins)
    beta = np.tile(np.asarray(beta0, dtype=np.float64), (count, 1))
    steps = np.zeros(count, dtype=np.int64)
    active = np.ones(count, dtype=bool)
    eye = lam * np.eye(n)
    for _ in range(_MAX_ITER):
        p = expit(beta[:, i] - beta[:, j])
        resid = total * p - wins
        g = lam * beta
        np.add.at(g.T, i, resid.T)
        np.add.at(g.T, j, -resid.T)
        h = total * p * (1.0 - p)
        hess = np.broadcast_to(eye, (count, n, n)).copy()
        hess[:, i, j] -= h
        hess[:, j, i] -= h
        np.add.at(hess.transpose(1, 2, 0), (i, i), h.T)
        np.add.at(hess.transpose(1, 2, 0), (j, j), h.T)
        step = np.linalg.solve(hess, g[..., None])[..., 0]
        big = np.max(np.abs(step), axis=1)
        step *= np.minimum(1.0, 1.0 / np.maximum(big, 1e-300))[:, None]
        beta[active] -= step[active]
        steps += active
        active &= big >= _TOL
        if not active.any():
            break
    return beta, steps


def _pairs_of(n: int, wins: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cell = np.flatnonzero(total > 0)
    i, j = np.divmod(cell, n)
    return i, j, wins[cell], total[cell]


def share_capped(a: np.ndarray, b: np.ndarray, key: np.ndarray, *, share: float, floor: int) -> np.ndarray:
    """Bool mask of the votes beyond their key's share cap on either model (module docstring).

    Votes must be in time order (the earliest are kept). ``key`` ``-1``: no key, never capped.
    ``share <= 0`` caps nothing.
    """
    key = np.asarray(key, dtype=np.int64)
    count = len(key)
    capped = np.zeros(count, dtype=bool)
    if share <= 0 or not count:
        return capped
    vote = np.tile(np.arange(count), 2)  # each vote appears once per model it involves
    model = np.concatenate([np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)])
    n = int(model.max()) + 1
    model_votes = np.bincount(model, minlength=n)
    keep = np.tile(key >= 0, 2)
    vote, model = vote[keep], model[keep]
    cell = key[vote] * n + model
    order = np.lexsort((vote, cell))  # by cell, then time
    sorted_cell = cell[order]
    first = np.searchsorted(sorted_cell, sorted_cell)  # start of each cell's run
    rank = np.empty(len(cell), dtype=np.int64)
    rank[order] = np.arange(len(cell)) - first + 1  # 1 = the key's earliest vote on the model
    key_votes = np.bincount(cell, minlength=int(cell.max()) + 1 if len(cell) else 0)[cell]
    others = model_votes[model] - key_votes
    allowed = np.maximum(floor, np.floor(share * others / (1.0 - share) + 1e-9))
    np.logical_or.at(capped, vote[rank > allowed], True)
    return capped


@dataclass(frozen=True)
class Marks:
    """What :func:`vote_marks` decided: the flagged key indices per column, the capped votes
    (bool per vote, never a flagged key's), and each column's scores."""

    flagged: list[np.ndarray]
    capped: np.ndarray
    scores: list[KeyScores]


def vote_marks(n_models: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray, keys: list[np.ndarray], *,
               threshold: float, min_votes: int, share: float, floor: int, reg: float = DEFAULT_REG) -> Marks:
    """The outlier test on every column of ``keys`` (``threshold <= 0``: off), then the share cap on
    the votes whose keys were not flagged (votes in time order; module docstring)."""
    count = len(a)
    flagged_vote = np.zeros(count, dtype=bool)
    flagged, scores = [], []
    for key in keys:
        key = np.asarray(key, dtype=np.int64)
        if threshold > 0:
            result = key_scores(n_models, a, b, outcome, key, min_votes=min_votes, reg=reg)
            hits = np.flatnonzero((result.votes >= min_votes) & (result.z < -threshold))
        else:
            result, hits = KeyScores(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)), np.zeros(0, np.int64)
        flagged.append(hits)
        scores.append(result)
        flagged_vote |= np.isin(key, hits) & (key >= 0)
    capped = np.zeros(count, dtype=bool)
    rest = np.flatnonzero(~flagged_vote)
    for key in keys:
        capped[rest] |= share_capped(np.asarray(a)[rest], np.asarray(b)[rest], np.asarray(key)[rest],
                                     share=share, floor=floor)
    return Marks(flagged, capped, scores)
