"""Active pair sampling: where the next vote reduces the uncertainty that matters most (pure: numpy/scipy).

The rule (the "efficient ranking" idea of the Chatbot Arena paper, Chiang et al. 2024, as a
greedy optimal design):

1. From the votes so far, the Bradley–Terry Fisher information of the ratings (logits) is
   ``F = Σ_pairs n_ij p_ij (1 − p_ij) x xᵀ + λ I`` (``x = e_i − e_j``, ``p_ij`` from the current
   ratings, ``λ`` a weak prior: :data:`PRIOR_SD_POINTS`, so that a model with no vote has a
   finite, large variance), and ``C = F⁻¹`` approximates the covariance of the ratings.
2. What matters is ``U = trace(M C)`` with the *focus* matrix
   ``M = Σ_k w_k e_k e_kᵀ + a · Σ_adjacent o_ab d dᵀ``: ``w_k`` weighs model k's own variance
   (1 for every model, the new-model boost for a model that is still provisional, so the
   fixed "boost" of weighted pairing becomes one case of this rule), and for every two models
   adjacent in the current order (``d = e_a − e_b``) ``o_ab = 2·Φ(−|r_a − r_b| / sd(r_a − r_b))``
   is the chance that their order is wrong (1 when they are level, 0 when well apart), so
   votes go to orders still in doubt.
3. One more vote on pair (i, j) adds ``v·x xᵀ`` (``v = p_ij(1 − p_ij)``) to F whatever its outcome,
   and by Sherman–Morrison lowers U by ``v · xᵀ C M C x / (1 + v · xᵀ C x)``. The next pair is
   the one with the largest drop; for a batch, C is updated after each pick as if the vote had
   happened (votes already promised to pending battles count the same way).
4. Held models: a model of weight 0 (held by the gate, paused by an admin, out of pairing for
   another reason) is drawn only when fewer than two models of positive weight remain, as in
   weighted pairing; its variance and order terms still shape ``C`` and ``M`` but no pair with it
   is picked. (Before this rule a held model, sitting unrated at the mean, kept the largest
   order terms and took 93% of the picks of a 10-model arena.)
5. A repeat cap: once the less-played model of a pair has :data:`CAP_AFTER` battles, the pair
   may hold at most ``repeat_cap`` times its even share of them (``1/(n − 1)`` with ``n``
   eligible models: 3/29 ≈ 10% in a 30-model arena, 3/9 in a 10-model one, no cap below five
   models); a capped pair is not picked (except by the floor).
   Without it one pair took 37% of the first 1,000 battles after an entry: the information
   of a newcomer's votes is largest against its closest rival, but a board built on one
   opponent is fragile (a model-specific quirk of that rival moves the newcomer unchecked).
6. A floor: each pick is, with probability ``floor``, a pair drawn uniformly among the pairs of
   eligible models instead, so every eligible model takes part in at least ``floor · 2/n`` of the
   battles (``n`` eligible models), every pair stays possible, and the board keeps evidence
   against model drift that the fitted ratings would not predict.

Entry point: :func:`choose_pairs`. Sides are for the caller to randomise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr  # ndtr(-x) is the normal tail; scipy.stats costs ~0.5 s to import

__all__ = ["CAP_AFTER", "PRIOR_SD_POINTS", "ActiveRule", "choose_pairs", "covariance", "eligible_models",
           "focus_matrix", "pair_gains"]

#: Prior standard deviation of a rating (Elo points) used only to choose pairs: weak next to a
#: few dozen votes, but it keeps the variance of a model without votes finite.
PRIOR_SD_POINTS = 350.0
_POINTS_PER_LOGIT = 400.0 / math.log(10.0)
#: The repeat cap applies once the less-played model of a pair has this many battles.
CAP_AFTER = 20


@dataclass(frozen=True)
class ActiveRule:
    """``floor``: share of uniformly random pairs; ``adjacent``: weight ``a`` of the order terms;
    ``repeat_cap``: the most a pair may hold of its less-played model's battles, in multiples of
    the even share ``1/(n − 1)`` (``inf``: no cap)."""

    floor: float = 0.1
    adjacent: float = 1.0
    repeat_cap: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError("floor must be between 0 and 1")
        if self.adjacent < 0:
            raise ValueError("adjacent must be >= 0")
        if not self.repeat_cap >= 1.0:
            raise ValueError("repeat_cap must be at least 1 (the even share)")


def covariance(battles: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``C = F⁻¹`` from the symmetric matrix of battles per pair and the ratings (logits)."""
    n = len(beta)
    p = expit(beta[:, None] - beta[None, :])
    h = np.asarray(battles, dtype=np.float64) * p * (1.0 - p)
    np.fill_diagonal(h, 0.0)
    fisher = np.diag(h.sum(axis=1) + (_POINTS_PER_LOGIT / PRIOR_SD_POINTS) ** 2) - h
    return np.linalg.inv(fisher) if n else np.zeros((0, 0))


def focus_matrix(beta: np.ndarray, cov: np.ndarray, weight: np.ndarray, adjacent: float) -> np.ndarray:
    """``M`` of the module docstring: model weights plus the doubtful adjacent orders."""
    m = np.diag(np.asarray(weight, dtype=np.float64))
    if adjacent > 0 and len(beta) > 1:
        order = np.argsort(-beta, kind="stable")
        a, b = order[:-1], order[1:]
        sd = np.sqrt(np.maximum(cov[a, a] + cov[b, b] - 2 * cov[a, b], 1e-12))
        doubt = adjacent * 2.0 * ndtr(-np.abs(beta[a] - beta[b]) / sd)
        np.add.at(m, (a, a), doubt)
        np.add.at(m, (b, b), doubt)
        np.add.at(m, (a, b), -doubt)
        np.add.at(m, (b, a), -doubt)
    return m


def pair_gains(cov: np.ndarray, focus: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``G[i, j]``: drop of ``trace(M C)`` from one more vote on (i, j); 0 on the diagonal."""
    p = expit(beta[:, None] - beta[None, :])
    v = p * (1.0 - p)
    cmc = cov @ focus @ cov
    d_c, d_q = np.diag(cov), np.diag(cmc)
    quad = d_c[:, None] + d_c[None, :] - 2 * cov
    gain = v * (d_q[:, None] + d_q[None, :] - 2 * cmc) / (1.0 + v * quad)
    np.fill_diagonal(gain, 0.0)
    return gain


def eligible_models(weight: np.ndarray) -> np.ndarray:
    """Models a pick may use: those of positive weight, or every model when fewer than two have one."""
    positive = np.asarray(weight, dtype=np.float64) > 0
    return positive if positive.sum() >= 2 else np.ones(len(positive), dtype=bool)


def _capped(battles: np.ndarray, repeat_cap: float, n_eligible: int) -> np.ndarray:
    """Pairs over the repeat cap (rule 5 of the module docstring)."""
    cap = min(1.0, repeat_cap / max(n_eligible - 1, 1))
    per_model = battles.sum(axis=1)
    fewer = np.minimum(per_model[:, None], per_model[None, :])
    return (fewer >= CAP_AFTER) & (battles > cap * fewer)


def choose_pairs(
    battles: np.ndarray,
    beta: np.ndarray,
    weight: np.ndarray,
    k: int,
    rng: np.random.Generator,
    rule: ActiveRule = ActiveRule(),
) -> list[tuple[int, int]]:
    """``k`` pairs ``(i, j)`` with ``i < j`` for the next votes (see the module docstring).

    ``battles``: symmetric ``(n, n)`` counts of votes (plus pending battles) per pair; ``beta``:
    current ratings in logits; ``weight``: ``w_k`` per model. Needs ``n ≥ 2``.
    """
    n = len(beta)
    if n < 2:
        raise ValueError("at least two models are needed")
    beta = np.asarray(beta, dtype=np.float64)
    battles = np.array(battles, dtype=np.float64)
    cov = covariance(battles, beta)
    focus = focus_matrix(beta, cov, weight, rule.adjacent)
    p = expit(beta[:, None] - beta[None, :])
    ok = eligible_models(weight)
    usable = np.triu(ok[:, None] & ok[None, :], 1)
    members = np.flatnonzero(ok)
    picks: list[tuple[int, int]] = []
    for _ in range(k):
        allowed = usable & ~_capped(battles, rule.repeat_cap, len(members))
        if rng.random() < rule.floor or not allowed.any():
            i, j = sorted(int(x) for x in rng.choice(members, 2, replace=False))
        else:
            gain = np.where(allowed, pair_gains(cov, focus, beta), -np.inf)
            best = np.flatnonzero(gain == gain.max())
            i, j = divmod(int(rng.choice(best)), n)
        picks.append((i, j))
        battles[i, j] += 1
        battles[j, i] += 1
        x = cov[:, i] - cov[:, j]
        v = p[i, j] * (1.0 - p[i, j])
        cov = cov - np.outer(x, x) * (v / (1.0 + v * (x[i] - x[j])))
    return picks
