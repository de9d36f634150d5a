"""Bootstrap intervals: the votes resampled with replacement (multinomially over the observed
pair × outcome cells) and the ratings refitted on each resample by chord steps that reuse the
full fit's Hessian (:data:`ABOUT_INTERVALS` says it for readers).
"""

from __future__ import annotations

import math

import numpy as np

from arena.ratings.bt import _newton
from arena.ratings.counts import PairCounts
from arena.ratings.linalg import _matmul, _solve_spd

#: Shown on the leaderboard page next to the intervals.
ABOUT_INTERVALS = (
    "The 95% interval of a rating comes from a bootstrap: the votes are resampled with "
    "replacement (as many as there are, spread over model pairs and outcomes in proportion "
    "to the observed counts), the ratings are refitted on each resample, and the interval "
    "runs from the 2.5th to the 97.5th percentile of the refitted ratings. Each refit is "
    "centred so that the mean rating is 1000, and the anchor model's shift is applied once, "
    "to the point estimates, rather than pinning the anchor in every resample: that would add "
    "the anchor's own uncertainty to every other model's interval. The anchor's interval "
    "therefore shows its real uncertainty too. Rank is 1 plus the number of models whose "
    "interval lies entirely above this model's interval."
)


# Bootstrap replicates stop at 1e-8 logit (≈ 2e-6 points): far below the display precision.
_BOOT_TOL = 1e-8
_CHORD_MAX_ITER = 60


def _categorical(rng: np.random.Generator, cdf: np.ndarray, m: int) -> np.ndarray:
    """``m`` iid cell indices drawn by inversion from a cumulative distribution (``cdf[-1] == 1``).

    A guide table (first cell at or after each 1/K quantile) replaces the binary search of
    ``np.searchsorted``, which costs ~150 ns per draw here: from the guide the answer is
    usually 0–2 cells ahead, and the walk below advances only the draws not yet placed.
    """
    k = len(cdf)
    u = rng.random(m)
    guide = np.searchsorted(cdf, np.arange(k) / k, side="right")
    cell = guide[np.minimum((u * k).astype(np.int64), k - 1)]
    todo = np.flatnonzero(cdf[cell] <= u)
    while todo.size:
        cell[todo] += 1
        todo = todo[cdf[cell[todo]] <= u[todo]]
    return cell


def _multinomial(rng: np.random.Generator, weights: np.ndarray, n: int, size: int) -> np.ndarray:
    """``size`` draws of Multinomial(n, weights/Σweights), exactly; int64, shape ``(K, size)``
    (one column per draw, the layout the bootstrap works in).

    numpy's multinomial draws K conditional binomials per replicate (~150–300 ns each). Here:
    independent Poisson(λ p_k) with λ = n − 3√n (a few times cheaper per cell); their total
    M is ≤ n except with probability ~0.1%, in which case the column is redrawn. Given M = m
    the Poisson counts are exactly Multinomial(m, p) whatever event on M is conditioned on,
    and adding n − m independent categorical draws makes them exactly Multinomial(n, p).
    """
    p = weights / weights.sum()
    k = len(p)
    lam = n - 3.0 * math.sqrt(n)
    if lam <= 0 or n < 2 * k:
        # Few votes: most draws would be categorical top-ups anyway.
        return np.ascontiguousarray(rng.multinomial(n, p, size=size).T)
    mean = (lam * p)[:, None]
    out = rng.poisson(mean, size=(k, size))
    totals = out.sum(axis=0)
    while np.any(over := totals > n):
        out[:, over] = rng.poisson(mean, size=(k, int(over.sum())))
        totals = out.sum(axis=0)
    need = n - totals
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    cells = _categorical(rng, cdf, int(need.sum()))
    cols = np.repeat(np.arange(size), need)
    out += np.bincount(cells * size + cols, minlength=k * size).reshape(k, size)
    return out


class _Incidence:
    """The pairs' incidence matrix X (row k: +1 at model ``i[k]``, −1 at ``j[k]``) as numpy gathers
    and segment sums, for columns of replicates: :meth:`diff` is X·θ, :meth:`sums` is Xᵀ·p. (A
    scipy CSR product does the same; scipy stays out of ``arena.ratings``: see ``logistic``.)"""

    def __init__(self, i: np.ndarray, j: np.ndarray, n: int) -> None:
        self.i, self.j, self.n = i, j, n
        self.segments: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []
        for side, sign in ((i, 1.0), (j, -1.0)):
            order = np.argsort(side, kind="stable")
            models, starts = np.unique(side[order], return_index=True)
            self.segments.append((order, models, starts, sign))

    def diff(self, theta: np.ndarray) -> np.ndarray:
        return theta[self.i] - theta[self.j]

    def sums(self, p: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n, *p.shape[1:]))
        if len(p):
            for order, models, starts, sign in self.segments:
                out[models] += sign * np.add.reduceat(p[order], starts, axis=0)
        return out


def _resampled_wins_totals(counts: PairCounts, rounds: int, seed: int,
                           weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``rounds`` multinomial resamples of the counts as BT's (wins of i, battles) per pair, shape
    ``(pairs, rounds)`` each (pairs along rows, so sparse incidence products apply to all columns)."""
    npairs = len(counts.pairs)
    c = counts.counts
    flat = np.column_stack([c[:, 0], c[:, 1], c[:, 2] + c[:, 3]]).ravel()  # (pair, outcome) cells
    nz = np.flatnonzero(flat > 0)
    rng = np.random.default_rng(seed)
    drawn = _multinomial(rng, flat[nz], int(round(flat.sum())), rounds)
    if len(nz) == flat.size:
        draws = drawn
    else:
        draws = np.zeros((flat.size, rounds), dtype=drawn.dtype)
        draws[nz] = drawn
    del drawn
    draws = draws.reshape(npairs, 3, rounds)
    total = draws.sum(axis=1, dtype=np.float64)
    wins = draws[:, 2, :] * 0.5
    wins += draws[:, 0, :]
    del draws
    if weight is not None:
        total *= weight[:, None]
        wins *= weight[:, None]
    return wins, total


def _bootstrap_betas(
    counts: PairCounts,
    beta0: np.ndarray,
    hess0: np.ndarray,
    labels: np.ndarray,
    lam: float,
    rounds: int,
    seed: int,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """BT refits on ``rounds`` multinomial resamples of the counts, shape ``(rounds, n)``, logits.

    ``weight``: per-pair weight of each battle (reweighting), fixed from the full data as in
    arena-rank; None for unweighted. The resample keeps the number of battles and spreads it over (pair, outcome) cells in
    proportion to the observed counts; both tie kinds are one cell, which leaves the
    distribution of everything BT uses unchanged and saves a quarter of the draws.

    All replicates are solved together, warm-started from the point estimate, with a chord
    (frozen-Hessian) Newton iteration: θ ← θ − H₀⁻¹ g(θ), where H₀ is the full-data Hessian at
    the point estimate. A resample's Hessian differs from H₀ only by sampling noise, so this
    converges linearly at a rate of roughly that noise (a few %), and each step costs two
    gathers (:class:`_Incidence`) and one small dense product for all replicates at once, instead of a
    Hessian build and a factorisation per replicate. Replicates that do not settle (tiny or
    degenerate data) are finished one by one with damped Newton.
    """
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    n = counts.n_models
    wins, total = _resampled_wins_totals(counts, rounds, seed, weight)
    inc = _Incidence(i, j, n)
    precond = _solve_spd(hess0, np.eye(n))
    # Randomised prior: each replicate's prior is centred at a draw from the prior itself, so a
    # model the votes say little about spreads over the prior (its honest uncertainty) instead
    # of collapsing onto the arena mean in every replicate. For a Gaussian-linear model this
    # makes the replicates posterior draws; where the votes dominate, λ·z is negligible.
    centre = (np.random.default_rng([seed, 1]).standard_normal((n, rounds)) / math.sqrt(lam)
              if lam > 0 else np.zeros((n, rounds)))

    theta = np.repeat(beta0[:, None], rounds, axis=1)
    converged = np.zeros(rounds, dtype=bool)
    stalled = np.zeros(rounds, dtype=bool)
    prev = np.full(rounds, np.inf)
    for _ in range(_CHORD_MAX_ITER):
        live = np.flatnonzero(~(converged | stalled))
        if len(live) == 0:
            break
        if len(live) == rounds:
            th, tot, w, z = theta, total, wins, centre  # views: no copies while every replicate runs
        else:
            th, tot, w, z = theta[:, live], total[:, live], wins[:, live], centre[:, live]
        p = inc.diff(th)
        # σ(x) = (1 + tanh(x/2)) / 2: ~5x faster than scipy's expit on large arrays, and
        # accurate to ~1e-16 absolute, which is what the gradient N·σ − S needs.
        p *= 0.5
        np.tanh(p, out=p)
        p += 1.0
        p *= 0.5
        p *= tot
        p -= w
        step = _matmul(precond, inc.sums(p) + lam * (th - z))
        size = np.max(np.abs(step), axis=0)
        # A step that does not shrink means the frozen Hessian is too far off for this
        # replicate: leave it where it is and let Newton finish it below.
        ok = np.isfinite(size) & (size < 0.9 * prev[live])
        theta[:, live[ok]] = th[:, ok] - step[:, ok]
        prev[live] = size
        converged[live[ok & (size < _BOOT_TOL)]] = True
        stalled[live[~ok]] = True
    for r in np.flatnonzero(~converged):
        start = theta[:, r] if np.all(np.isfinite(theta[:, r])) else beta0
        theta[:, r], _ = _newton(i, j, wins[:, r], total[:, r], n, lam, labels, start, centre[:, r])
    return theta.T
