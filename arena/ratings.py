"""Rating maths for the arena leaderboard: online Elo, Bradley–Terry, bootstrap intervals.

Pure module: numpy and scipy only, no Django, no I/O. Everything works on *aggregated* counts
(:class:`PairCounts`: one row per model pair with ``[i_wins, j_wins, tie, tie_bothbad]``), which is
what an SQL ``GROUP BY model_a, model_b, winner`` returns, so the board never needs the battle rows.

Conventions (those of the public LMSYS / Chatbot Arena leaderboard):

* ratings are on the Elo scale: 400 points per factor 10 in odds, i.e. ``400 / ln 10`` points per logit;
* a tie and a "both bad" tie each count as half a win for each side;
* Bradley–Terry ratings are centred so that their mean is 1000, then optionally shifted by one
  constant so that an anchor model gets a fixed rating (the public board pins
  ``mixtral-8x7b-instruct-v0.1`` at 1114, see :data:`LMSYS_ANCHOR`);
* online Elo: K = 4, base 10, scale 400, every model starts at 1000.

Main entry points: :func:`compute_board` (the whole leaderboard from counts), :func:`fit_bt`,
:func:`elo_update` / :func:`elo_from_arrays`, :func:`fit_style_control`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from arena.ratings_robust import CI_METHODS, DEFAULT_MIN_PAIR_COUNT, pair_weights, sandwich_half_widths

__all__ = [
    "ABOUT_INTERVALS",
    "A_WINS",
    "B_WINS",
    "Board",
    "DEFAULT_REG",
    "INITIAL_RATING",
    "LMSYS_ANCHOR",
    "POINTS_PER_LOGIT",
    "STYLE_FEATURE_NAMES",
    "PairCounts",
    "StyleControlFit",
    "TIE",
    "TIE_BOTHBAD",
    "WINNERS",
    "compute_board",
    "elo_from_arrays",
    "elo_update",
    "fit_bt",
    "fit_style_control",
    "predicted_win_rate",
    "rank_upper_bound",
    "style_features",
]

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

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

#: Ridge penalty ``reg/2 · Σ θ²`` on ratings in log10-odds units (θ = rating/400), the convention of
#: FastChat's ``fit_contextual_bt``. Why not 0: with a pure maximum-likelihood fit, a model that has
#: won (or lost) all its battles has no finite rating, and such models are common in a young arena
#: and in bootstrap replicates. 0.01 keeps every rating finite while moving the ratings fitted on
#: the 1.67M public battles by under 0.01 point, far below what is displayed. Pass ``reg=0`` for
#: the exact maximum-likelihood estimate (only finite when every model has both won and lost,
#: counting ties as half of each, against a connected set of opponents).
DEFAULT_REG = 0.01

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

# Newton stops when the largest step is below this (in logits): 1e-10 logit ≈ 2e-8 Elo points.
_NEWTON_TOL = 1e-10
_NEWTON_MAX_ITER = 100
# Bootstrap replicates stop at 1e-8 logit (≈ 2e-6 points): far below the display precision.
_BOOT_TOL = 1e-8
_CHORD_MAX_ITER = 60


# ---------------------------------------------------------------------------------------------
# Aggregated counts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PairCounts:
    """Battle counts aggregated per unordered model pair.

    ``models``: model names; indices below refer to this list.
    ``pairs``: int64 array ``(n_pairs, 2)`` of model indices with ``i < j``, sorted, unique; only
    pairs with at least one battle are kept.
    ``counts``: float64 array ``(n_pairs, 4)``: ``[i_wins, j_wins, tie, tie_bothbad]`` where
    ``i_wins`` counts the battles model ``pairs[k, 0]`` won, whichever side it was shown on.

    Build it with :meth:`from_battles`, :meth:`from_grouped`, :meth:`from_arrays` or
    :meth:`from_leaderbot_json`; the constructors normalise their input, so two sets of battles
    that differ only by which model was shown as "A" give identical objects.
    """

    models: list[str]
    pairs: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        models = [str(m) for m in self.models]
        if len(set(models)) != len(models):
            raise ValueError("duplicate model names")
        pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        counts = np.asarray(self.counts, dtype=np.float64).reshape(-1, 4)
        if len(pairs) != len(counts):
            raise ValueError("pairs and counts must have the same number of rows")
        if len(pairs):
            if pairs.min() < 0 or pairs.max() >= len(models):
                raise ValueError("pair index out of range")
            if np.any(pairs[:, 0] >= pairs[:, 1]):
                raise ValueError("pairs must have i < j")
            if not np.all(np.isfinite(counts)) or counts.min() < 0:
                raise ValueError("counts must be finite and non-negative")
            key = pairs[:, 0] * len(models) + pairs[:, 1]
            if np.any(np.diff(key) <= 0):
                raise ValueError("pairs must be sorted and unique (use a from_* constructor)")
            played = counts.sum(axis=1) > 0  # an empty row is no comparison: it must not link models
            pairs, counts = pairs[played], counts[played]
        pairs.setflags(write=False)
        counts.setflags(write=False)
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "counts", counts)

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        models: Sequence[str],
        model_a: Any,
        model_b: Any,
        outcome: Any,
        weight: Any = None,
    ) -> PairCounts:
        """Aggregate battles given as index arrays.

        ``model_a``, ``model_b``: int arrays of indices into ``models`` (never equal);
        ``outcome``: int array of codes ``A_WINS, B_WINS, TIE, TIE_BOTHBAD`` (0..3, the index in
        :data:`WINNERS`); ``weight``: optional count per row (default 1), e.g. from a GROUP BY.
        """
        n = len(models)
        a = np.asarray(model_a, dtype=np.int64).ravel()
        b = np.asarray(model_b, dtype=np.int64).ravel()
        o = np.asarray(outcome, dtype=np.int64).ravel()
        if not (len(a) == len(b) == len(o)):
            raise ValueError("model_a, model_b and outcome must have the same length")
        w = None if weight is None else np.asarray(weight, dtype=np.float64).ravel()
        if w is not None and len(w) != len(a):
            raise ValueError("weight must have the same length as model_a")
        if len(a):
            if min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n:
                raise ValueError("model index out of range")
            if np.any(a == b):
                raise ValueError("a model cannot battle itself (model_a == model_b)")
            if o.min() < 0 or o.max() > 3:
                raise ValueError("outcome codes must be 0..3 (see WINNERS)")
            if w is not None and (not np.all(np.isfinite(w)) or w.min() < 0):
                raise ValueError("weights must be finite and non-negative")
        # Orient every battle so the lower index is "i"; a swapped battle has its vote mirrored.
        swap = a > b
        lo = np.where(swap, b, a)
        hi = np.where(swap, a, b)
        o = np.where(swap, _MIRROR[o], o)
        cell = (lo * n + hi) * 4 + o
        if n * n * 4 <= 1 << 24:
            # Dense bincount over all n² pair slots: one linear pass, no sort (≈10 ms for 1M rows).
            flat = np.bincount(cell, weights=w, minlength=n * n * 4).reshape(n * n, 4)
            keys = np.flatnonzero(flat.any(axis=1))
            table = flat[keys]
        else:
            keys_cells, inverse = np.unique(cell, return_inverse=True)
            summed = np.bincount(inverse, weights=w, minlength=len(keys_cells))
            keys, pos = np.unique(keys_cells // 4, return_inverse=True)
            table = np.zeros((len(keys), 4))
            np.add.at(table, (pos, keys_cells % 4), summed)
            nonzero = table.any(axis=1)
            keys, table = keys[nonzero], table[nonzero]
        pairs = np.column_stack([keys // n, keys % n])
        return cls(list(models), pairs, table.astype(np.float64))

    @classmethod
    def from_grouped(
        cls,
        rows: Iterable[tuple[str, str, str, float]],
        models: Sequence[str] | None = None,
    ) -> PairCounts:
        """Aggregate ``(model_a, model_b, winner, count)`` rows, e.g. an SQL GROUP BY result.

        ``winner`` is one of :data:`WINNERS`. ``models`` fixes the model list and its order (it
        may contain models with no battles); by default it is the sorted set of names seen, so
        that the result does not depend on which side a model was shown on.
        """
        a_names: list[str] = []
        b_names: list[str] = []
        codes: list[int] = []
        weights: list[float] = []
        for row in rows:
            model_a, model_b, winner, count = row
            code = _WINNER_CODE.get(winner)
            if code is None:
                raise ValueError(f"unknown winner {winner!r}; expected one of {WINNERS}")
            a_names.append(model_a)
            b_names.append(model_b)
            codes.append(code)
            weights.append(float(count))
        return cls._from_names(a_names, b_names, codes, weights, models)

    @classmethod
    def from_battles(
        cls,
        battles: Iterable[tuple[str, str, str]],
        models: Sequence[str] | None = None,
    ) -> PairCounts:
        """Aggregate individual ``(model_a, model_b, winner)`` battles (any order).

        ``winner`` is one of :data:`WINNERS`; see :meth:`from_grouped` for ``models``.
        """
        a_names: list[str] = []
        b_names: list[str] = []
        codes: list[int] = []
        get = _WINNER_CODE.get
        for model_a, model_b, winner in battles:
            code = get(winner)
            if code is None:
                raise ValueError(f"unknown winner {winner!r}; expected one of {WINNERS}")
            a_names.append(model_a)
            b_names.append(model_b)
            codes.append(code)
        return cls._from_names(a_names, b_names, codes, None, models)

    @classmethod
    def _from_names(
        cls,
        a_names: list[str],
        b_names: list[str],
        codes: list[int],
        weights: list[float] | None,
        models: Sequence[str] | None,
    ) -> PairCounts:
        if models is None:
            models = sorted(set(a_names) | set(b_names))
        index = {m: k for k, m in enumerate(models)}
        try:
            a = np.fromiter((index[m] for m in a_names), dtype=np.int64, count=len(a_names))
            b = np.fromiter((index[m] for m in b_names), dtype=np.int64, count=len(b_names))
        except KeyError as exc:
            raise ValueError(f"model {exc.args[0]!r} is not in the given model list") from None
        return cls.from_arrays(list(models), a, b, np.asarray(codes, dtype=np.int64), weights)

    @classmethod
    def from_leaderbot_json(cls, data: Mapping[str, Any]) -> PairCounts:
        """Read the leaderbot / shared-data format.

        ``{"models": [...], "X": [[i, j], ...], "Y": [[i_wins, j_wins, tie, tie_bothbad], ...]}``.
        Rows with ``i > j`` are mirrored and repeated pairs are summed.
        """
        models = list(data["models"])
        x = np.asarray(data["X"], dtype=np.int64).reshape(-1, 2)
        y = np.asarray(data["Y"], dtype=np.float64).reshape(-1, 4)
        if len(x) != len(y):
            raise ValueError("X and Y must have the same number of rows")
        # Expand to (pair, outcome, weight) rows: from_arrays does the orientation and summing.
        a = np.repeat(x[:, 0], 4)
        b = np.repeat(x[:, 1], 4)
        o = np.tile(np.arange(4), len(x))
        return cls.from_arrays(models, a, b, o, y.ravel())

    # -- views ------------------------------------------------------------------------------

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_battles(self) -> float:
        """Total number of battles (ties included)."""
        return float(self.counts.sum())

    def battles_per_model(self) -> np.ndarray:
        """Battles each model took part in (ties included), shape ``(n_models,)``."""
        total = self.counts.sum(axis=1)
        n = self.n_models
        return np.bincount(self.pairs[:, 0], total, n) + np.bincount(self.pairs[:, 1], total, n)

    def subset(self, keep: Sequence[str]) -> PairCounts:
        """The counts restricted to the models in ``keep`` (in that order) and their battles."""
        index = {m: k for k, m in enumerate(self.models)}
        old = np.array([index[m] for m in keep], dtype=np.int64)
        new_of_old = np.full(self.n_models, -1, dtype=np.int64)
        new_of_old[old] = np.arange(len(old))
        ni, nj = new_of_old[self.pairs[:, 0]], new_of_old[self.pairs[:, 1]]
        ok = (ni >= 0) & (nj >= 0)
        a, b = ni[ok], nj[ok]
        # Reordering can flip which model of a pair has the lower index: from_arrays re-orients.
        return PairCounts.from_arrays(
            list(keep),
            np.repeat(a, 4),
            np.repeat(b, 4),
            np.tile(np.arange(4), len(a)),
            self.counts[ok].ravel(),
        )


# ---------------------------------------------------------------------------------------------
# Online Elo
# ---------------------------------------------------------------------------------------------


def elo_from_arrays(
    model_a: Any,
    model_b: Any,
    outcome: Any,
    ratings: Any,
    *,
    k: float = ELO_K,
    base: float = ELO_BASE,
    scale: float = ELO_SCALE,
) -> np.ndarray:
    """Online Elo over battles given as arrays, in time order; returns the new ratings.

    ``model_a``/``model_b``: int indices into ``ratings`` (shape ``(n_models,)``, the ratings
    before these battles, e.g. all 1000); ``outcome``: codes 0..3 as in :data:`WINNERS`.
    The input ratings are not modified. Each battle moves both ratings by
    ``k · (score_a − expected_a)`` in opposite directions, with
    ``expected_a = 1 / (1 + base ** ((r_b − r_a) / scale))`` and score 1, 0 or 0.5 (either tie).

    Elo is sequential (each update depends on the previous ones), so this is a plain Python
    loop over Python floats: per battle it is ~4x faster than indexing numpy arrays, and no
    vectorisation preserves the order of updates. About 0.2 s per million battles.
    """
    a = np.asarray(model_a, dtype=np.int64).ravel()
    b = np.asarray(model_b, dtype=np.int64).ravel()
    o = np.asarray(outcome, dtype=np.int64).ravel()
    if not (len(a) == len(b) == len(o)):
        raise ValueError("model_a, model_b and outcome must have the same length")
    r = [float(x) for x in np.asarray(ratings, dtype=np.float64).ravel()]
    if len(o) and (o.min() < 0 or o.max() > 3):
        raise ValueError("outcome codes must be 0..3 (see WINNERS)")
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= len(r)):
        raise ValueError("model index out of range")
    scores = np.array([1.0, 0.0, 0.5, 0.5])[o].tolist()
    c = math.log(base) / scale
    exp = math.exp
    for i, j, s in zip(a.tolist(), b.tolist(), scores, strict=True):
        ri = r[i]
        rj = r[j]
        delta = k * (s - 1.0 / (1.0 + exp(c * (rj - ri))))
        r[i] = ri + delta
        r[j] = rj - delta
    return np.array(r, dtype=np.float64)


def elo_update(
    ratings: Mapping[str, float],
    battles: Iterable[tuple[str, str, str]],
    *,
    k: float = ELO_K,
    base: float = ELO_BASE,
    scale: float = ELO_SCALE,
    initial: float = INITIAL_RATING,
) -> dict[str, float]:
    """Apply new battles ``(model_a, model_b, winner)``, in time order, to an Elo state.

    ``ratings`` maps model → current rating (empty for a full recompute); models seen for the
    first time start at ``initial``. Returns a new dict with every model of ``ratings`` and of
    ``battles``; ``ratings`` is not modified. ``elo_update(elo_update(s, x), y)`` equals
    ``elo_update(s, x + y)``, so the app only needs to feed the votes cast since the last run.
    """
    names = list(ratings)
    index = {m: i for i, m in enumerate(names)}
    a: list[int] = []
    b: list[int] = []
    codes: list[int] = []
    for model_a, model_b, winner in battles:
        code = _WINNER_CODE.get(winner)
        if code is None:
            raise ValueError(f"unknown winner {winner!r}; expected one of {WINNERS}")
        if model_a == model_b:
            raise ValueError(f"a model cannot battle itself: {model_a!r}")
        for m in (model_a, model_b):
            if m not in index:
                index[m] = len(names)
                names.append(m)
        a.append(index[model_a])
        b.append(index[model_b])
        codes.append(code)
    start = np.array([ratings.get(m, initial) for m in names], dtype=np.float64)
    new = elo_from_arrays(a, b, codes, start, k=k, base=base, scale=scale)
    return dict(zip(names, new.tolist(), strict=True))


# ---------------------------------------------------------------------------------------------
# Bradley–Terry
# ---------------------------------------------------------------------------------------------


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
    if n == 0:
        return 0, np.zeros(0, dtype=np.int64)
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    k, labels = connected_components(adj, directed=False)
    return int(k), labels.astype(np.int64)


# -- small dense linear algebra ---------------------------------------------------------------
#
# The systems here are n×n with n = number of models (~100). OpenBLAS runs LAPACK and BLAS
# calls of that size on several threads; on a busy machine (a web/Celery host, CI, this
# 2-core box) each such call then waits for a descheduled worker thread, and a 0.1 ms solve
# takes 5–150 ms. Up to _SMALL models the factorisation and products below use numpy loops
# and einsum, which stay on the calling thread: a few ms at worst, and the same every time.
_SMALL = 300


def _chol(a: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a symmetric positive definite matrix (None if it is not)."""
    n = len(a)
    if n > _SMALL:
        try:
            return np.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            return None
    low = np.zeros_like(a)
    for k in range(n):
        row = low[k, :k]
        d = a[k, k] - np.einsum("i,i->", row, row)
        if not d > 0.0:
            return None
        low[k, k] = dk = math.sqrt(d)
        low[k + 1 :, k] = (a[k + 1 :, k] - np.einsum("ij,j->i", low[k + 1 :, :k], row)) / dk
    return low


def _chol_solve(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``(L Lᵀ) x = b`` for ``b`` of shape (n,) or (n, R)."""
    n = len(low)
    if n > _SMALL:
        return cho_solve((low, True), b, check_finite=False)
    y = np.array(b, dtype=np.float64)
    for k in range(n):
        y[k] = (y[k] - np.einsum("i,i...->...", low[k, :k], y[:k])) / low[k, k]
    for k in range(n - 1, -1, -1):
        y[k] = (y[k] - np.einsum("i,i...->...", low[k + 1 :, k], y[k + 1 :])) / low[k, k]
    return y


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    low = _chol(a)
    if low is None:  # numerically singular: let LAPACK do its best
        return np.linalg.lstsq(a, b, rcond=None)[0]
    return _chol_solve(low, b)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for an (n, n) ``a``, single-threaded for small n (see above)."""
    return np.einsum("ij,j...->i...", a, b) if len(a) <= _SMALL else a @ b


def _nll(
    beta: np.ndarray, i: np.ndarray, j: np.ndarray, wins: np.ndarray, total: np.ndarray, lam: float
) -> float:
    x = beta[i] - beta[j]
    # −log σ(x) = logaddexp(0, −x): stable for any x.
    loss = wins @ np.logaddexp(0.0, -x) + (total - wins) @ np.logaddexp(0.0, x)
    return float(loss + 0.5 * lam * beta @ beta)


def _grad_hess(
    beta: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    wins: np.ndarray,
    total: np.ndarray,
    lam: float,
    gauge: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(beta)
    p = expit(beta[i] - beta[j])
    resid = total * p - wins
    g = np.bincount(i, resid, n) - np.bincount(j, resid, n) + lam * beta
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
) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton for the (ridge-)penalised BT likelihood, in logits.

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
        g, hess = _grad_hess(beta, i, j, wins, total, lam, gauge)
        step = _solve_spd(hess, g)
        big = float(np.max(np.abs(step), initial=0.0))
        if big > 1e-6:
            # Backtracking (Armijo): far from the optimum a full Newton step on a logistic
            # likelihood can overshoot; near it the quadratic model is exact and rounding
            # would make the test meaningless, hence the threshold.
            f0 = _nll(beta, i, j, wins, total, lam) if f0 is None else f0
            slope = float(g @ step)
            t = 1.0
            while (f1 := _nll(beta - t * step, i, j, wins, total, lam)) > f0 - 1e-4 * t * slope and t > 1e-8:
                t *= 0.5
            step *= t
            big *= t
            f0 = f1
        else:
            f0 = None
        beta -= step
        if big < _NEWTON_TOL:
            break
    _, hess = _grad_hess(beta, i, j, wins, total, lam, gauge)
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


# -- bootstrap ---------------------------------------------------------------------------------


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
    sparse products and one small dense product for all replicates at once, instead of a
    Hessian build and a factorisation per replicate. Replicates that do not settle (tiny or
    degenerate data) are finished one by one with damped Newton.
    """
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    n, npairs = counts.n_models, len(i)
    wins, total = _resampled_wins_totals(counts, rounds, seed, weight)
    ones = np.ones(npairs)
    rows = np.arange(npairs)
    inc = sp.csr_matrix(
        (np.concatenate([ones, -ones]), (np.concatenate([rows, rows]), np.concatenate([i, j]))),
        shape=(npairs, n),
    )
    inc_t = inc.T.tocsr()
    precond = _solve_spd(hess0, np.eye(n))

    theta = np.repeat(beta0[:, None], rounds, axis=1)
    converged = np.zeros(rounds, dtype=bool)
    stalled = np.zeros(rounds, dtype=bool)
    prev = np.full(rounds, np.inf)
    for _ in range(_CHORD_MAX_ITER):
        live = np.flatnonzero(~(converged | stalled))
        if len(live) == 0:
            break
        if len(live) == rounds:
            th, tot, w = theta, total, wins  # views: no copies while every replicate is running
        else:
            th, tot, w = theta[:, live], total[:, live], wins[:, live]
        p = inc @ th
        # σ(x) = (1 + tanh(x/2)) / 2: ~5x faster than scipy's expit on large arrays, and
        # accurate to ~1e-16 absolute, which is what the gradient N·σ − S needs.
        p *= 0.5
        np.tanh(p, out=p)
        p += 1.0
        p *= 0.5
        p *= tot
        p -= w
        step = _matmul(precond, inc_t @ p + lam * th)
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
        theta[:, r], _ = _newton(i, j, wins[:, r], total[:, r], n, lam, labels, start)
    return theta.T


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


def predicted_win_rate(rating: np.ndarray) -> np.ndarray:
    """``P[i, j]``: probability that i beats j under BT with these Elo-scale ratings."""
    r = np.asarray(rating, dtype=np.float64)
    return expit((r[:, None] - r[None, :]) / POINTS_PER_LOGIT)


# ---------------------------------------------------------------------------------------------
# Board
# ---------------------------------------------------------------------------------------------


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
    ``ci``: the interval method (:data:`arena.ratings_robust.CI_METHODS`); ``reweighted``:
    whether battles were weighted by inverse pair frequency.
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
) -> Board:
    """The whole leaderboard from aggregated counts.

    1. Models with fewer than ``min_battles`` battles are dropped with their battles (one pass)
       and listed in ``Board.excluded``.
    2. BT ratings as :func:`fit_bt`.
    3. ``rounds`` bootstrap refits (:data:`ABOUT_INTERVALS`), seeded by ``seed`` so the same
       counts and seed give the same intervals; each replicate is centred at mean 1000 and
       shifted by the *point estimate's* anchor offset only.
       With ``ci="sandwich"`` the intervals are sandwich intervals instead
       (:mod:`arena.ratings_robust`; ``rounds`` and ``seed`` are then unused).
       ``reweighted``: weight every battle by the inverse of its pair's battle count, floored
       at ``min_pair_count`` (:func:`arena.ratings_robust.pair_weights`), in the fit and
       the intervals; the ridge is scaled by the mean weight so that it keeps its strength
       relative to the data.
    4. Ranks, pair matrices and predicted win rates.

    Works for an empty board (every array empty) and a single model (rating 1000 or the
    anchor's rating, interval of zero width, rank 1, matrices of shape (1, 1)).
    """
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {', '.join(CI_METHODS)}, got {ci!r}")
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

    beta, hess = _newton(i, j, wins, total, n, lam, labels)
    rating = _to_points(beta)
    offset = _anchor_offset(counts.models, rating, anchor)
    rating = rating + offset
    applied = (anchor[0], float(anchor[1])) if anchor is not None and anchor[0] in counts.models else None

    n_battles = int(round(counts.n_battles))
    if ci == "sandwich" and n > 1 and n_battles > 0:
        half = POINTS_PER_LOGIT * sandwich_half_widths(i, j, counts.counts, beta, weight=weight, lam=lam)
        ci_low, ci_high = rating - half, rating + half
    elif ci == "bootstrap" and rounds > 0 and n > 1 and n_battles > 0:
        boot = _to_points(_bootstrap_betas(counts, beta, hess, labels, lam, rounds, seed, weight)) + offset
        ci_low, ci_high = np.percentile(boot, [2.5, 97.5], axis=0)
    else:
        ci_low, ci_high = rating.copy(), rating.copy()
    return _board_of(counts, rating, ci_low, ci_high, labels, excluded=excluded, anchor=applied,
                     n_battles=n_battles, rounds=rounds, seed=seed, reg=reg, ci=ci, reweighted=reweighted)


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


# ---------------------------------------------------------------------------------------------
# Style control (contextual Bradley–Terry)
# ---------------------------------------------------------------------------------------------

#: Order of the style columns expected by :func:`style_features` (see ``arena.style``).
STYLE_FEATURE_NAMES: tuple[str, ...] = ("tokens", "headers", "lists", "bold")


def style_features(style_a: Any, style_b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FastChat's style-control features from per-answer counts.

    ``style_a``, ``style_b``: arrays ``(n_battles, n_features)`` of non-negative counts for the
    answers of model_a and model_b (columns as :data:`STYLE_FEATURE_NAMES`). Each feature is
    ``(a − b) / (a + b + 1)``, then z-scored over the battles. Returns
    ``(features, mean, std)``; a constant feature (std 0) becomes a column of zeros.

    As in FastChat the mean is taken over the battles as given (model_a's side first), so
    the fit is invariant to swapping a battle's sides only up to that mean, which is ~0 when
    the arena shows models on random sides.
    """
    a = np.asarray(style_a, dtype=np.float64)
    b = np.asarray(style_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError("style_a and style_b must be 2-D arrays of the same shape")
    if a.size and (a.min() < 0 or b.min() < 0):
        raise ValueError("style counts must be non-negative")
    ratio = (a - b) / (a + b + 1.0)
    if len(ratio) == 0:
        zeros = np.zeros(a.shape[1])
        return ratio, zeros, zeros.copy()
    mean = ratio.mean(axis=0)
    std = ratio.std(axis=0)
    # A constant column can come out with std ~1e-17 from rounding; dividing by that would
    # turn rounding noise into a unit-variance feature.
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    feats = (ratio - mean) / np.where(constant, 1.0, std)
    feats[:, constant] = 0.0
    std = np.where(constant, 0.0, std)
    return feats, mean, std


@dataclass(frozen=True, eq=False)
class StyleControlFit:
    """Result of :func:`fit_style_control`.

    ``rating``/``ci_low``/``ci_high`` follow ``models`` (input order, not sorted), on the same
    scale as :func:`fit_bt`: what each model's rating would be if both answers had the same
    style. ``coefficients[k]``: change in the log-odds of winning per standard deviation of
    feature ``feature_names[k]`` (positive: voters prefer the side with more of it);
    ``coef_ci_*`` their bootstrap intervals (equal to the estimate when ``rounds == 0``).
    ``feature_mean``/``feature_std``: the z-scoring applied. ``n_rows``: distinct
    (pair, features) rows actually fitted after aggregating identical battles.
    """

    models: list[str]
    rating: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    coefficients: np.ndarray
    coef_ci_low: np.ndarray
    coef_ci_high: np.ndarray
    feature_names: tuple[str, ...]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    anchor: tuple[str, float] | None
    n_rows: int


def _ctx_nll(
    x: np.ndarray,
    n: int,
    a: np.ndarray,
    b: np.ndarray,
    f: np.ndarray,
    wins: np.ndarray,
    total: np.ndarray,
    lam: np.ndarray,
) -> float:
    z = x[a] - x[b] + f @ x[n:]
    loss = wins @ np.logaddexp(0.0, -z) + (total - wins) @ np.logaddexp(0.0, z)
    return float(loss + 0.5 * (lam * x) @ x)


def _ctx_newton(
    n: int,
    a: np.ndarray,
    b: np.ndarray,
    f: np.ndarray,
    wins: np.ndarray,
    total: np.ndarray,
    lam: np.ndarray,
    gauge: np.ndarray,
    x0: np.ndarray,
) -> np.ndarray:
    """Damped Newton for the contextual BT likelihood; parameters ``[β (n), γ (F)]`` in logits.

    ``gauge`` is added to the Hessian: it fixes the component shifts (when the ridge is 0)
    and the coefficients of all-zero feature columns, directions the likelihood ignores.
    """
    nf = f.shape[1]
    x = x0.copy()
    pair_key, pair_pos = np.unique(a * n + b, return_inverse=True)
    pi, pj = pair_key // n, pair_key % n
    f0: float | None = None
    for _ in range(_NEWTON_MAX_ITER):
        z = x[a] - x[b] + f @ x[n:]
        p = expit(z)
        resid = total * p - wins
        h = total * p * (1.0 - p)
        g = np.empty(n + nf)
        g[:n] = np.bincount(a, resid, n) - np.bincount(b, resid, n)
        g[n:] = f.T @ resid
        g += lam * x
        hp = np.bincount(pair_pos, h, len(pair_key))
        hess = np.zeros((n + nf, n + nf))
        hess[pi, pj] = -hp
        hess[pj, pi] = -hp
        hess[np.arange(n), np.arange(n)] = np.bincount(pi, hp, n) + np.bincount(pj, hp, n)
        hf = f * h[:, None]
        cross = np.stack(
            [np.bincount(a, hf[:, k], n) - np.bincount(b, hf[:, k], n) for k in range(nf)], axis=1
        )
        hess[:n, n:] = cross
        hess[n:, :n] = cross.T
        hess[n:, n:] = f.T @ hf
        hess += np.diag(lam)
        hess += gauge
        step = _solve_spd(hess, g)
        big = float(np.max(np.abs(step), initial=0.0))
        if big > 1e-6:  # backtracking, as in _newton
            f0 = _ctx_nll(x, n, a, b, f, wins, total, lam) if f0 is None else f0
            slope = float(g @ step)
            t = 1.0
            while (
                f1 := _ctx_nll(x - t * step, n, a, b, f, wins, total, lam)
            ) > f0 - 1e-4 * t * slope and t > 1e-8:
                t *= 0.5
            step *= t
            big *= t
            f0 = f1
        else:
            f0 = None
        x -= step
        if big < _NEWTON_TOL:
            break
    return x


def _group_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a float matrix and, per input row, the index of its group.

    Same contract as ``np.unique(rows, axis=0, return_inverse=True)`` (up to group order), ~10x
    faster on a million rows: rows are hashed to 64 bits and only the hashes are sorted. A row
    is then checked against its group's first row, and any hash collision falls back to
    ``np.unique``.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0
    if len(rows) == 0:
        return rows, np.zeros(0, dtype=np.int64)
    bits = rows.view(np.uint64)
    h = np.zeros(len(rows), dtype=np.uint64)
    for col in bits.T:  # boost::hash_combine; uint64 arithmetic wraps around
        h ^= col + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2))
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    if not np.array_equal(rows[first][inverse], rows):
        unique, inverse = np.unique(rows, axis=0, return_inverse=True)
        return unique, inverse.ravel()
    return rows[first], inverse.ravel()


def _check_style_inputs(n: int, a: np.ndarray, b: np.ndarray, o: np.ndarray, feats: np.ndarray,
                        feature_names: Sequence[str]) -> None:
    if len(feature_names) != feats.shape[1]:
        raise ValueError("feature_names must name every style column")
    if not (len(a) == len(b) == len(o) == len(feats)):
        raise ValueError("model_a, model_b, outcome and the style arrays must have the same length")
    if len(a):
        if np.any(a == b) or min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n:
            raise ValueError("model indices must be distinct and within range")
        if o.min() < 0 or o.max() > 3:
            raise ValueError("outcome codes must be 0..3 (see WINNERS)")


def _oriented_rows(a: np.ndarray, b: np.ndarray, o: np.ndarray,
                   feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Battles turned so the lower model index comes first (features negated, outcomes mirrored),
    then identical (pair, features) rows grouped: ``(outcomes, rows, row of each battle)``."""
    swap = a > b
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    feats = np.where(swap[:, None], -feats, feats)
    rows, inverse = _group_rows(np.column_stack([lo, hi, feats]))
    return np.where(swap, _MIRROR[o], o), rows, inverse


def _style_bootstrap(cells: np.ndarray, n_battles: int, rounds: int, seed: int, refit) -> np.ndarray:
    """``rounds`` refits (``refit(wins, total)`` → all coefficients) on multinomial resamples of the
    (row, a-win / b-win / tie) ``cells``; shape ``(rounds, coefficients)``."""
    rng = np.random.default_rng(seed)
    nz = np.flatnonzero(cells > 0)
    reps = []
    for _ in range(rounds):
        # One replicate at a time: the row count can be in the millions.
        draw = np.zeros(cells.size)
        draw[nz] = _multinomial(rng, cells[nz], n_battles, 1)[:, 0]
        draw = draw.reshape(-1, 3)
        reps.append(refit(draw[:, 0] + 0.5 * draw[:, 2], draw.sum(axis=1)))
    return np.array(reps)


def fit_style_control(
    models: Sequence[str],
    model_a: Any,
    model_b: Any,
    outcome: Any,
    style_a: Any,
    style_b: Any,
    *,
    anchor: tuple[str, float] | None = None,
    rounds: int = 0,
    seed: int = 0,
    reg: float = DEFAULT_REG,
    feature_names: Sequence[str] = STYLE_FEATURE_NAMES,
) -> StyleControlFit:
    """Style-controlled BT ratings: logistic regression on model ±1 columns plus style features.

    Per battle (indices into ``models``, ``outcome`` codes as :data:`WINNERS`):
    ``logit P(a wins) = β_a − β_b + γ · features``, features from :func:`style_features`;
    a tie is half a win for each side. Identical (pair, features) rows are aggregated before
    fitting, battles being oriented so the lower model index comes first. The ridge is
    ``reg/2 · (Σθ² + Σγ²)`` with θ = rating/400, as in FastChat (which uses reg = 0.5 there).
    Ratings are centred at mean 1000 and shifted by the anchor like :func:`fit_bt`.

    ``rounds > 0`` adds bootstrap intervals (multinomial resampling of the aggregated rows;
    each replicate is a full refit, one after the other, so this costs ``rounds`` fits).
    """
    n = len(models)
    a = np.asarray(model_a, dtype=np.int64).ravel()
    b = np.asarray(model_b, dtype=np.int64).ravel()
    o = np.asarray(outcome, dtype=np.int64).ravel()
    feats, mean, std = style_features(style_a, style_b)
    nf = feats.shape[1]
    _check_style_inputs(n, a, b, o, feats, feature_names)

    o, rows, inverse = _oriented_rows(a, b, o, feats)
    score = np.array([1.0, 0.0, 0.5, 0.5])[o]
    ra, rb, rf = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), np.ascontiguousarray(rows[:, 2:])
    wins = np.bincount(inverse, score, len(rows))
    total = np.bincount(inverse, minlength=len(rows)).astype(np.float64)

    lam = np.concatenate([np.full(n, _reg_logit(reg)), np.full(nf, float(reg))])
    _, labels = _components(n, ra, rb)
    gauge = np.zeros((n + nf, n + nf))
    if reg == 0:
        gauge[:n, :n] = _gauge(labels)
    dead = ~np.any(rf != 0, axis=0)
    gauge[n + np.flatnonzero(dead), n + np.flatnonzero(dead)] = 1.0

    x = _ctx_newton(n, ra, rb, rf, wins, total, lam, gauge, np.zeros(n + nf))
    rating = _to_points(x[:n])
    offset = _anchor_offset(models, rating, anchor)
    rating = rating + offset
    coef = x[n:].copy()

    ci_low, ci_high = rating.copy(), rating.copy()
    coef_low, coef_high = coef.copy(), coef.copy()
    if rounds > 0 and len(rows) and n > 1:
        # Cells: (row, outcome) with outcome a-win / b-win / tie (either kind).
        a_win = np.bincount(inverse, (o == A_WINS).astype(np.float64), len(rows))
        b_win = np.bincount(inverse, (o == B_WINS).astype(np.float64), len(rows))
        cells = np.column_stack([a_win, b_win, total - a_win - b_win]).ravel()
        reps = _style_bootstrap(cells, len(a), rounds, seed, lambda w, t: _ctx_newton(n, ra, rb, rf, w, t, lam, gauge, x))
        ci_low, ci_high = np.percentile(_to_points(reps[:, :n]) + offset, [2.5, 97.5], axis=0)
        coef_low, coef_high = np.percentile(reps[:, n:], [2.5, 97.5], axis=0)

    applied = (anchor[0], float(anchor[1])) if anchor is not None and anchor[0] in models else None
    return StyleControlFit(
        models=list(models),
        rating=rating,
        ci_low=ci_low,
        ci_high=ci_high,
        coefficients=coef,
        coef_ci_low=coef_low,
        coef_ci_high=coef_high,
        feature_names=tuple(feature_names),
        feature_mean=mean,
        feature_std=std,
        anchor=applied,
        n_rows=len(rows),
    )
