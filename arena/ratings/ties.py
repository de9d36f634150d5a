"""Tie models: Bradley–Terry extended with a tie outcome, fitted on aggregated counts.

Three ways to treat a tie (:data:`TIE_MODELS`); "both bad" counts as a tie in all of them:

* ``half`` (the public board's convention, :mod:`arena.ratings.bt`): a tie is half a win for each
  side of a plain BT model. Not a likelihood of the three outcomes, so it cannot predict ties.
* ``davidson`` (Davidson 1970; leaderbot's default): with x = β_i − β_j and ν = e^η,
  ``P(i) ∝ e^{x/2}``, ``P(j) ∝ e^{−x/2}``, ``P(tie) ∝ ν`` (normalised by their sum). Equal
  models tie with probability ν / (2 + ν).
* ``rao-kupper`` (Rao & Kupper 1967; LMArena's posts): with threshold κ > 0,
  ``P(i) = σ(x − κ)``, ``P(j) = σ(−x − κ)``, ``P(tie) = 1 − P(i) − P(j)``: a tie when the
  logistic preference falls within ±κ.

Each has one tie parameter shared by all pairs. Both negative log-likelihoods are jointly convex
in (β, tie parameter) (Davidson's is linear minus log-sum-exp; Rao–Kupper's is the log of a
log-concave interval probability), so damped Newton on the n+1 parameters converges from zero in
a handful of steps, each one pass over the pairs and one (n+1)² solve. β is in logits (1 logit =
``POINTS_PER_LOGIT`` Elo points); the prior is the same Gaussian ridge ``lam/2 · Σ β²`` as BT's,
and the tie parameter has a weak prior of its own (:data:`TIE_PRIOR_PRECISION`).

Intervals (:func:`tie_sandwich_cov`): the sandwich covariance of the centred ratings, Huber–White
on the full parameter vector with the prior counted as pseudo-data (as :mod:`arena.ratings.sandwich`).
Bootstrap intervals refit every resample by Newton warm-started at the point estimate
(:func:`tie_bootstrap_betas`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from arena.ratings.counts import PairCounts
from arena.ratings.linalg import _solve_spd
from arena.ratings.logistic import sigmoid

#: The tie models offered by ``compute_board(ties=...)``, ``compute_ratings --ties`` and
#: ``ARENA_LEADERBOARD_TIES``, in the order they are offered.
TIE_MODELS: tuple[str, ...] = ("half", "davidson", "rao-kupper")
#: The live board's default (``ARENA_LEADERBOARD_TIES``), chosen by ``bench/predictive.py``.
DEFAULT_TIES = "half"

_TOL = 1e-10
_MAX_ITER = 100

#: A weak Gaussian prior on the tie parameter, precision 1 around the value at which two equal
#: models tie a third of the time (about what people do in the public arena): worth a few votes,
#: it keeps the fit finite when no tie has been seen yet (the unpenalised Davidson ν → 0, and
#: Rao–Kupper's κ would leave its domain) and is negligible once there are hundreds of votes.
TIE_PRIOR_PRECISION = 1.0


@dataclass(frozen=True, eq=False)
class TieFit:
    """A fitted tie model. ``beta``: logits (each component's mean 0 when ``lam`` > 0, else
    the overall mean 0); ``tie``: η = log ν (Davidson) or κ (Rao–Kupper); ``hess``: the
    Hessian of the penalised negative log-likelihood at the optimum, shape ``(n+1, n+1)``."""

    model: str
    beta: np.ndarray
    tie: float
    hess: np.ndarray


def _check(model: str) -> None:
    if model not in ("davidson", "rao-kupper"):
        raise ValueError(f"tie model must be one of {', '.join(TIE_MODELS[1:])}, got {model!r}")


def _cells(counts: PairCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i wins, j wins, ties) per pair, "both bad" counted as a tie."""
    c = counts.counts
    return c[:, 0], c[:, 1], c[:, 2] + c[:, 3]


def outcome_probs(model: str, x: np.ndarray, tie: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P(i wins), P(j wins), P(tie))`` for rating differences ``x = β_i − β_j`` (logits)."""
    _check(model)
    x = np.asarray(x, dtype=np.float64)
    if model == "davidson":
        log_d = np.logaddexp(np.logaddexp(0.5 * x, -0.5 * x), tie)
        return np.exp(0.5 * x - log_d), np.exp(-0.5 * x - log_d), np.exp(tie - log_d)
    pi, pj = sigmoid(x - tie), sigmoid(-x - tie)
    return pi, pj, np.clip(1.0 - pi - pj, 0.0, 1.0)


def _pair_terms(model: str, x: np.ndarray, tie: float, w: np.ndarray, lo: np.ndarray, t: np.ndarray):
    """Per pair: loss, then the derivatives ``f_x, f_τ, f_xx, f_xτ, f_ττ`` of the negative
    log-likelihood in the difference x and the tie parameter τ. Loss is inf where a
    Rao–Kupper tie has no probability (κ ≤ 0 with ties observed)."""
    n = w + lo + t
    if model == "davidson":
        log_d = np.logaddexp(np.logaddexp(0.5 * x, -0.5 * x), tie)
        pi, pj, pt = np.exp(0.5 * x - log_d), np.exp(-0.5 * x - log_d), np.exp(tie - log_d)
        loss = -(w - lo) * 0.5 * x - t * tie + n * log_d
        diff = pi - pj
        f_x = 0.5 * (n * diff - (w - lo))
        f_t = n * pt - t
        f_xx = 0.25 * n * (pi + pj - diff * diff)
        f_xt = -0.5 * n * diff * pt
        f_tt = n * pt * (1.0 - pt)
        return loss, f_x, f_t, f_xx, f_xt, f_tt
    u, v = x - tie, -x - tie
    su, sv = sigmoid(u), sigmoid(v)
    pt = 1.0 - su - sv
    fu, fv = su * (1.0 - su), sv * (1.0 - sv)  # logistic densities at u and v
    dfu, dfv = fu * (1.0 - 2.0 * su), fv * (1.0 - 2.0 * sv)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pt = np.where(pt > 0, np.log(np.where(pt > 0, pt, 1.0)), -np.inf)
        loss = w * np.logaddexp(0.0, -u) + lo * np.logaddexp(0.0, -v) - np.where(t > 0, t * log_pt, 0.0)
        # Derivatives of P(tie) in x and τ (f: logistic density, f': its derivative).
        pt_x, pt_t = fv - fu, fu + fv
        pt_xx, pt_tt, pt_xt = -dfv - dfu, -dfu - dfv, dfu - dfv
        r = np.where(t > 0, t / np.where(pt > 0, pt, np.inf), 0.0)
    f_x = -w * (1.0 - su) + lo * (1.0 - sv) - r * pt_x
    f_t = w * (1.0 - su) + lo * (1.0 - sv) - r * pt_t
    rr = np.where(pt > 0, r / np.where(pt > 0, pt, 1.0), 0.0)
    f_xx = w * fu + lo * fv - r * pt_xx + rr * pt_x * pt_x
    f_tt = w * fu + lo * fv - r * pt_tt + rr * pt_t * pt_t
    f_xt = -w * fu + lo * fv - r * pt_xt + rr * pt_x * pt_t
    return loss, f_x, f_t, f_xx, f_xt, f_tt


def tie_prior_centre(model: str) -> float:
    """Where :data:`TIE_PRIOR_PRECISION` centres the tie parameter: a third of ties between equals."""
    return math.log(1.0) if model == "davidson" else math.log(2.0)  # ν/(2+ν) = 1/3; 1 − 2σ(−κ) = 1/3


def _objective(model, beta, tie, i, j, cells, lam) -> float:
    loss = _pair_terms(model, beta[i] - beta[j], tie, *cells)[0]
    d = tie - tie_prior_centre(model)
    return float(np.sum(loss) + 0.5 * lam * beta @ beta + 0.5 * TIE_PRIOR_PRECISION * d * d)


def _grad_hess(model, beta, tie, i, j, cells, lam) -> tuple[np.ndarray, np.ndarray]:
    n = len(beta)
    _, f_x, f_t, f_xx, f_xt, f_tt = _pair_terms(model, beta[i] - beta[j], tie, *cells)
    g = np.empty(n + 1)
    g[:n] = np.bincount(i, f_x, n) - np.bincount(j, f_x, n) + lam * beta
    g[n] = f_t.sum() + TIE_PRIOR_PRECISION * (tie - tie_prior_centre(model))
    hess = np.zeros((n + 1, n + 1))
    hess[i, j] = -f_xx
    hess[j, i] = -f_xx
    hess[np.arange(n), np.arange(n)] = np.bincount(i, f_xx, n) + np.bincount(j, f_xx, n) + lam
    cross = np.bincount(i, f_xt, n) - np.bincount(j, f_xt, n)
    hess[:n, n] = cross
    hess[n, :n] = cross
    hess[n, n] = f_tt.sum() + TIE_PRIOR_PRECISION
    return g, hess


def _start_tie(model: str, cells: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """The tie parameter that matches the overall tie share between equal models."""
    total = sum(float(c.sum()) for c in cells)
    share = min(max(float(cells[2].sum()) / total if total else 1 / 3, 0.01), 0.98)
    if model == "davidson":
        return math.log(2.0 * share / (1.0 - share))  # ν/(2+ν) = share
    return math.log((1.0 + share) / (1.0 - share))  # 1 − 2σ(−κ) = share


def fit_ties(model: str, counts: PairCounts, lam: float, *, cells=None, beta0=None, tie0=None) -> TieFit:
    """The penalised maximum-likelihood fit of ``model`` (Davidson or Rao–Kupper) on ``counts``.

    ``lam``: the Gaussian prior's precision on every β (logit units, as BT's ``_reg_logit``);
    with ``lam == 0`` the free shift of the ratings is fixed by a gauge term (overall mean 0).
    ``cells`` (i wins, j wins, ties per pair) replaces the counts' own, e.g. a resample.
    """
    _check(model)
    n = counts.n_models
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    cells = _cells(counts) if cells is None else cells
    beta = np.zeros(n) if beta0 is None else np.array(beta0, dtype=np.float64)
    tie = _start_tie(model, cells) if tie0 is None else float(tie0)
    gauge = np.zeros((n + 1, n + 1))
    if lam == 0 and n:
        gauge[:n, :n] = 1.0 / n
    f0 = _objective(model, beta, tie, i, j, cells, lam)
    for _ in range(_MAX_ITER):
        g, hess = _grad_hess(model, beta, tie, i, j, cells, lam)
        step = _solve_spd(hess + gauge, g)
        slope = float(g @ step)
        t = 1.0
        while True:
            nb, nt = beta - t * step[:n], tie - t * step[n]
            f1 = _objective(model, nb, nt, i, j, cells, lam)
            if f1 <= f0 - 1e-4 * t * slope or t < 1e-10 or not slope > 0:
                break
            t *= 0.5
        if not np.isfinite(f1):
            break
        beta, tie, f0 = nb, nt, f1
        if t * float(np.max(np.abs(step), initial=0.0)) < _TOL:
            break
    if lam == 0 and n:
        beta -= beta.mean()
    _, hess = _grad_hess(model, beta, tie, i, j, cells, lam)
    return TieFit(model, beta, float(tie), hess)


def tie_sandwich_cov(fit: TieFit, counts: PairCounts, lam: float) -> np.ndarray:
    """Sandwich covariance ``H⁻¹ B H⁻¹`` of the centred ratings (logits², shape ``(n, n)``).

    B sums, per pair and outcome cell, count × (score of one battle)(score)ᵀ, the score being
    the gradient of that battle's negative log-likelihood in (β, τ); the prior adds ``lam`` to
    B's β block (pseudo-data, as :func:`arena.ratings.sandwich.sandwich_half_widths`). A small
    ridge (1e-9 per battle) fixes the free shift when ``lam`` is 0.
    """
    n = counts.n_models
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    x = fit.beta[i] - fit.beta[j]
    one = np.ones(len(i))
    zero = np.zeros(len(i))
    meat = np.zeros((n + 1, n + 1))
    for cell, count in zip(((one, zero, zero), (zero, one, zero), (zero, zero, one)), _cells(counts), strict=True):
        _, f_x, f_t, *_ = _pair_terms(fit.model, x, fit.tie, *cell)
        scores = np.zeros((len(i), n + 1))
        rows = np.arange(len(i))
        scores[rows, i] = f_x
        scores[rows, j] = -f_x
        scores[:, n] = f_t
        meat += (scores * count[:, None]).T @ scores
    meat[np.arange(n), np.arange(n)] += lam
    hess = fit.hess.copy()
    hess[np.arange(n), np.arange(n)] += 1e-9 * max(counts.n_battles, 1.0)
    inv = _solve_spd(hess, np.eye(n + 1))
    cov = (inv @ meat @ inv)[:n, :n]
    cov -= cov.mean(axis=0, keepdims=True)
    cov -= cov.mean(axis=1, keepdims=True)
    return cov


def tie_bootstrap_betas(fit: TieFit, counts: PairCounts, lam: float, rounds: int, seed: int) -> np.ndarray:
    """Refits on ``rounds`` multinomial resamples of the (pair, outcome) cells, shape ``(rounds, n)``.

    The prior of each replicate is centred at a draw from itself (the randomised prior of
    :mod:`arena.ratings.bootstrap`), so a model with few votes shows the prior's spread.
    """
    rng = np.random.default_rng(seed)
    z_rng = np.random.default_rng([seed, 1])
    w, lo, t = _cells(counts)
    flat = np.column_stack([w, lo, t]).ravel()
    total = int(round(flat.sum()))
    p = flat / flat.sum() if total else flat
    n = counts.n_models
    out = np.empty((rounds, n))
    for r in range(rounds):
        draw = rng.multinomial(total, p).reshape(-1, 3).astype(np.float64)
        z = z_rng.standard_normal(n) / math.sqrt(lam) if lam > 0 else np.zeros(n)
        # A prior centred at z: shift β by z, fit with the prior at 0 on β − z (ratings enter
        # only through differences, so shifting the counts' models is the same as shifting β).
        sub = _shifted_fit(fit, counts, (draw[:, 0], draw[:, 1], draw[:, 2]), lam, z)
        out[r] = sub - sub.mean()
    return out


def _shifted_fit(fit: TieFit, counts: PairCounts, cells, lam: float, z: np.ndarray) -> np.ndarray:
    """β of the fit with the prior centred at ``z`` (warm-started at the point estimate)."""
    n = counts.n_models
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    beta, tie = fit.beta.copy(), fit.tie
    for _ in range(_MAX_ITER):
        g, hess = _grad_hess(fit.model, beta, tie, i, j, cells, lam)
        g[:n] -= lam * z
        if lam == 0:
            hess[:n, :n] += 1.0 / max(n, 1)
        step = _solve_spd(hess, g)
        # Damping: a resample is close to the data, so full steps rarely overshoot; guard anyway.
        t = 1.0
        f0 = _objective(fit.model, beta, tie, i, j, cells, lam) - lam * float(z @ beta)
        while t > 1e-8:
            nb, nt = beta - t * step[:n], tie - t * step[n]
            if _objective(fit.model, nb, nt, i, j, cells, lam) - lam * float(z @ nb) <= f0:
                break
            t *= 0.5
        beta, tie = nb, nt
        if t * float(np.max(np.abs(step), initial=0.0)) < 1e-8:
            break
    return beta


def tie_cells(fit: TieFit, counts: PairCounts) -> tuple[np.ndarray, ...]:
    """The (pair × outcome) cells for :mod:`arena.ratings.fragility`: ``(cell_i, cell_j, per-vote
    score in β_i − β_j, count, per-vote score in the tie parameter)``."""
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    x = fit.beta[i] - fit.beta[j]
    one, zero = np.ones(len(i)), np.zeros(len(i))
    fx, ft = [], []
    for cell in ((one, zero, zero), (zero, one, zero), (zero, zero, one)):
        _, f_x, f_t, *_ = _pair_terms(fit.model, x, fit.tie, *cell)
        fx.append(f_x)
        ft.append(f_t)
    return (np.concatenate([i, i, i]), np.concatenate([j, j, j]), np.concatenate(fx),
            np.concatenate(_cells(counts)), np.concatenate(ft))


def tie_board_fit(model: str, counts: PairCounts, lam: float, ci: str, rounds: int,
                  seed: int) -> tuple[TieFit, np.ndarray | None, np.ndarray | None]:
    """What :func:`arena.ratings.board.compute_board` needs from a tie model: the fit (β centred)
    and the 95% bounds of β in logits (None when there is nothing to say: fewer than two
    models, no battles, or bootstrap with 0 rounds)."""
    raw = fit_ties(model, counts, lam)
    fit = TieFit(model, raw.beta - raw.beta.mean() if counts.n_models else raw.beta, raw.tie, raw.hess)
    beta = fit.beta
    if counts.n_models < 2 or counts.n_battles <= 0:
        return fit, None, None
    if ci == "sandwich":
        half = 1.959963984540054 * np.sqrt(np.clip(np.diag(tie_sandwich_cov(fit, counts, lam)), 0.0, None))
        return fit, beta - half, beta + half
    if rounds <= 0:
        return fit, None, None
    boot = tie_bootstrap_betas(fit, counts, lam, rounds, seed)
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return fit, low, high
