"""leaderbot's Davidson model, refitted here: the model behind its README leaderboard table.

leaderbot (Ameli, Zhuang, Stoica & Mahoney, ICLR 2025; github.com/suquark/leaderbot) prints its
README table with ``Davidson(load())``: the defaults ``k_cov=0, k_tie=1`` and ``load(tie="tie")``.
That is not the one-tie-parameter Davidson of :mod:`arena.ratings.ties`; written from its paper
and documentation, with 3n parameters for n models:

* a score x_i and a scale s_i per model (a diagonal "covariance"): ``z = (x_i − x_j) / √(s_i² + s_j²)``;
* a tie factor g_i per model on a fixed basis φ (the first DCT-IV vector,
  ``φ_i = √(2/n)·cos(π(i − ½)/(2n))``, i in the data's model order: the model depends on that
  order): ``μ_ij = g_i φ_j + g_j φ_i``;
* ``P(i) ∝ e^{z/2}``, ``P(j) ∝ e^{−z/2}``, ``P(tie) ∝ e^{μ_ij}``;
* "both bad" votes are dropped (``tie="tie"``), not counted as ties;
* unregularised maximum likelihood; the free shift and scale of (x, s) are fixed by
  ``Σ x = 0`` and ``(1 − 1/n) Σ s² = 1`` (leaderbot adds both as squared penalties to the mean
  log-loss); the score printed is x, the order is by x.

The fit here is Fisher scoring (the expected information of the three outcomes, assembled per
pair through (z, μ), plus the penalties' curvature) with a backtracking line search, from
leaderbot's starting point (x from each model's win + ½ tie rate, s = √(1/(n − 1)), g = 0). The
likelihood is not convex in (x, s); from that start it converges in tens of steps to the optimum
that scipy's BFGS and L-BFGS-B also reach when run to convergence.

leaderbot's own ``train()`` stops BFGS at 1,500 iterations with ``gtol=1e-8``, which a mean
log-loss does not reach, so its table is an iterate of the optimiser, not the optimum: the
converged fit has the same twenty models, nineteen in the same places (gpt-4-turbo-2024-04-09
and mistral-large-2407, printed as 0.099 each, swap), and the same predicted rates in 58 of the
60 cells (two differ by one point). Where BFGS stops depends on rounding, so no fit reproduces
the README's digits exactly; docs/leaderboard.md has the comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from arena.ratings.counts import PairCounts
from arena.ratings.linalg import _solve_spd

_MAX_ITER = 500
_TOL = 1e-12


@dataclass(frozen=True, eq=False)
class LeaderbotFit:
    """``score``: x (``Σ x = 0``); ``scale``: s ≥ 0 (``(1 − 1/n) Σ s² = 1``); ``tie``: g; ``basis``:
    φ; ``loss``: mean negative log-likelihood per vote; ``steps``: scoring steps taken."""

    models: list[str]
    score: np.ndarray
    scale: np.ndarray
    tie: np.ndarray
    basis: np.ndarray
    loss: float
    steps: int


def basis(n: int) -> np.ndarray:
    """The first DCT-IV basis vector of length n (orthonormal, every entry positive)."""
    k = np.arange(1, n + 1)
    return math.sqrt(2.0 / n) * np.cos(math.pi / n * (k - 0.5) * 0.5)


def _cells(counts: PairCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i wins, j wins, ties) per pair with "both bad" dropped, as leaderbot's ``load(tie="tie")``."""
    c = counts.counts
    return c[:, 0], c[:, 1], c[:, 2]


def _probs(x, s, g, phi, i, j):
    c = 1.0 / np.sqrt(s[i] ** 2 + s[j] ** 2)
    z = (x[i] - x[j]) * c
    mu = g[i] * phi[j] + g[j] * phi[i]
    log_d = np.logaddexp(np.logaddexp(0.5 * z, -0.5 * z), mu)
    return z, mu, c, np.exp(0.5 * z - log_d), np.exp(-0.5 * z - log_d), np.exp(mu - log_d), log_d


def _objective(p: np.ndarray, phi, i, j, cells, total) -> float:
    n = len(phi)
    x, s, g = p[:n], p[n : 2 * n], p[2 * n :]
    w, lo, t = cells
    z, mu, *_, log_d = _probs(x, s, g, phi, i, j)
    nll = float(np.sum(-(w - lo) * 0.5 * z - t * mu + (w + lo + t) * log_d)) / total
    trace = (1.0 - 1.0 / n) * float(s @ s) - 1.0
    return nll + float(x.sum()) ** 2 + trace * trace


def _grad_fisher(p: np.ndarray, phi, i, j, cells, total) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of :func:`_objective` and its Fisher-scoring curvature (3n × 3n)."""
    n = len(phi)
    x, s, g = p[:n], p[n : 2 * n], p[2 * n :]
    w, lo, t = cells
    votes = w + lo + t
    z, mu, c, pw, pl, pt, _ = _probs(x, s, g, phi, i, j)
    f_z = (0.5 * votes * (pw - pl) - 0.5 * (w - lo)) / total
    f_mu = (votes * pt - t) / total
    # d(z, μ)/dθ at the six parameters each pair touches: x_i, x_j, s_i, s_j, g_i, g_j.
    cols = np.stack([i, j, n + i, n + j, 2 * n + i, 2 * n + j])
    zero = np.zeros_like(z)
    jz = np.stack([c, -c, -z * c * c * s[i], -z * c * c * s[j], zero, zero])
    jm = np.stack([zero, zero, zero, zero, phi[j], phi[i]])
    grad = np.bincount(cols.ravel(), (jz * f_z + jm * f_mu).ravel(), 3 * n)
    diff = pw - pl
    fzz = votes * (0.25 * (pw + pl) - 0.25 * diff * diff) / total
    fzm = -0.5 * votes * diff * pt / total
    fmm = votes * pt * (1.0 - pt) / total
    block = (fzz * jz[:, None] * jz[None] + fzm * (jz[:, None] * jm[None] + jm[:, None] * jz[None])
             + fmm * jm[:, None] * jm[None])
    flat = (cols[:, None] * (3 * n) + cols[None]).ravel()
    hess = np.bincount(flat, block.ravel(), 9 * n * n).reshape(3 * n, 3 * n)
    a = 1.0 - 1.0 / n
    trace = a * float(s @ s) - 1.0
    grad[:n] += 2.0 * x.sum()
    grad[n : 2 * n] += 4.0 * a * trace * s
    hess[:n, :n] += 2.0
    hess[n : 2 * n, n : 2 * n] += 8.0 * a * a * np.outer(s, s) + 4.0 * a * trace * np.eye(n)
    return grad, hess


def _start(counts: PairCounts, cells) -> np.ndarray:
    n = counts.n_models
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    w, lo, t = cells
    games = np.bincount(i, w + lo + t, n) + np.bincount(j, w + lo + t, n)
    wins = np.bincount(i, w, n) + np.bincount(j, lo, n)
    ties = np.bincount(i, t, n) + np.bincount(j, t, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.nan_to_num((wins + 0.5 * ties) / games)
    return np.concatenate([x - x.mean(), np.full(n, math.sqrt(1.0 / max(n - 1, 1))), np.zeros(n)])


def fit_leaderbot(counts: PairCounts) -> LeaderbotFit:
    """The maximum-likelihood fit of leaderbot's Davidson model; the basis follows ``counts.models``'
    order (leaderbot's data order: read the pair counts with :meth:`PairCounts.from_leaderbot_json`)."""
    n = counts.n_models
    if n < 2:
        raise ValueError("leaderbot's Davidson model needs at least two models")
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    cells = _cells(counts)
    total = float(sum(float(c.sum()) for c in cells))
    if total <= 0:
        raise ValueError("no decisive or tied votes to fit")
    phi = basis(n)
    p = _start(counts, cells)
    f0 = _objective(p, phi, i, j, cells, total)
    steps = 0
    for steps in range(1, _MAX_ITER + 1):  # noqa: B007 (the count is reported)
        grad, hess = _grad_fisher(p, phi, i, j, cells, total)
        step = _solve_spd(hess + 1e-12 * np.eye(3 * n), grad)
        slope = float(grad @ step)
        t = 1.0
        while True:
            trial = p - t * step
            f1 = _objective(trial, phi, i, j, cells, total)
            if f1 <= f0 - 1e-4 * t * slope or t < 1e-10 or not slope > 0:
                break
            t *= 0.5
        p, f0 = trial, f1
        if t * float(np.max(np.abs(step))) < _TOL:
            break
    x, s, g = p[:n], np.abs(p[n : 2 * n]), p[2 * n :]
    x = x - x.mean()
    k = 1.0 / math.sqrt((1.0 - 1.0 / n) * float(s @ s))  # the exact gauge (z does not change)
    loss = f0 - float(p[:n].sum()) ** 2 - ((1.0 - 1.0 / n) * float(p[n : 2 * n] @ p[n : 2 * n]) - 1.0) ** 2
    return LeaderbotFit(list(counts.models), k * x, k * s, g, phi, loss, steps)


def leaderbot_rows(fit: LeaderbotFit, counts: PairCounts) -> list[dict]:
    """leaderbot's table, every model, by score: ``{"model", "score", "battles", "observed",
    "predicted"}``; battles without "both bad", rates as ``[win, loss, tie]`` fractions."""
    n = counts.n_models
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    w, lo, t = _cells(counts)
    votes = w + lo + t
    _, _, _, pw, pl, pt, _ = _probs(fit.score, fit.scale, fit.tie, fit.basis, i, j)

    def per_model(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
        return np.bincount(i, mine, n) + np.bincount(j, theirs, n)

    games = per_model(votes, votes)
    observed = [per_model(w, lo), per_model(lo, w), per_model(t, t)]
    predicted = [per_model(votes * pw, votes * pl), per_model(votes * pl, votes * pw), per_model(votes * pt, votes * pt)]
    rows = []
    for k in np.argsort(-fit.score, kind="stable"):
        share = float(games[k]) or 1.0
        rows.append({
            "model": counts.models[k], "score": float(fit.score[k]), "battles": int(round(float(games[k]))),
            "observed": [float(v[k]) / share for v in observed], "predicted": [float(v[k]) / share for v in predicted],
        })
    return rows
