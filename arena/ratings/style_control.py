"""Style control: FastChat's contextual Bradley–Terry, ratings fitted together with
coefficients for the answers' style (length, headers, lists, bold), with bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arena.ratings.bootstrap import _multinomial
from arena.ratings.bt import (
    _NEWTON_MAX_ITER,
    _NEWTON_TOL,
    DEFAULT_REG,
    _anchor_offset,
    _components,
    _gauge,
    _reg_logit,
    _to_points,
)
from arena.ratings.linalg import _solve_spd
from arena.ratings.logistic import sigmoid
from arena.ratings.scale import _MIRROR, A_WINS, B_WINS

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
        p = sigmoid(z)
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
