"""Tie models (Davidson, Rao–Kupper): the Newton fit against scipy's optimiser on a likelihood
written out here, their intervals, the board and the public 1.67M battles."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy.optimize import minimize

from arena.leaderboard.text import about_intervals
from arena.ratings import POINTS_PER_LOGIT, PairCounts, compute_board, fit_ties, outcome_probs
from arena.ratings.ties import TIE_PRIOR_PRECISION, tie_prior_centre
from tests.helpers import shared_data_file


def league(seed: int = 1, n: int = 6, per_pair: int = 40) -> PairCounts:
    """Battles drawn from a Davidson model with known strengths (ties and "both bad" both present)."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 0.8, n)
    rows = []
    for a in range(n):
        for b in range(a + 1, n):
            x = strength[a] - strength[b]
            p = np.array([math.exp(x / 2), math.exp(-x / 2), 0.8])
            w, lo, t = rng.multinomial(per_pair, p / p.sum())
            rows += [(f"m{a}", f"m{b}", "model_a", w), (f"m{a}", f"m{b}", "model_b", lo),
                     (f"m{a}", f"m{b}", "tie", t - t // 3), (f"m{a}", f"m{b}", "tie (bothbad)", t // 3)]
    return PairCounts.from_grouped(rows)


def scipy_fit(model: str, counts: PairCounts, lam: float) -> tuple[np.ndarray, float]:
    """The same penalised likelihood, battle cell by battle cell, minimised by BFGS."""
    n = counts.n_models
    rows = [(int(i), int(j), c) for (i, j), c in zip(counts.pairs, counts.counts, strict=True)]

    def loss(params: np.ndarray) -> float:
        beta, tau = params[:n], params[n]
        total = 0.5 * lam * beta @ beta + 0.5 * TIE_PRIOR_PRECISION * (tau - tie_prior_centre(model)) ** 2
        for i, j, (wi, wj, tie, bothbad) in rows:
            x = beta[i] - beta[j]
            if model == "davidson":
                nu = math.exp(tau)
                denom = math.exp(x / 2) + math.exp(-x / 2) + nu
                p = (math.exp(x / 2) / denom, math.exp(-x / 2) / denom, nu / denom)
            else:
                pi, pj = 1 / (1 + math.exp(-(x - tau))), 1 / (1 + math.exp(-(-x - tau)))
                p = (pi, pj, max(1 - pi - pj, 1e-300))
            total -= wi * math.log(p[0]) + wj * math.log(p[1]) + (tie + bothbad) * math.log(p[2])
        return total

    start = np.r_[np.zeros(n), 0.5]
    result = minimize(loss, start, method="BFGS", options={"gtol": 1e-9})
    return result.x[:n] - result.x[:n].mean(), float(result.x[n])


@pytest.mark.parametrize("model", ["davidson", "rao-kupper"])
@pytest.mark.parametrize("lam", [0.0, 0.75])
def test_the_newton_fit_matches_scipys_optimiser_on_the_same_likelihood(model, lam):
    counts = league()
    fit = fit_ties(model, counts, lam)
    beta, tau = scipy_fit(model, counts, lam)
    assert fit.beta - fit.beta.mean() == pytest.approx(beta, abs=2e-5)
    assert fit.tie == pytest.approx(tau, abs=2e-5)


def test_the_outcome_probabilities_are_the_published_formulas():
    x = np.array([-2.0, 0.0, 1.3])
    pi, pj, pt = outcome_probs("davidson", x, math.log(0.5))
    assert pi + pj + pt == pytest.approx(np.ones(3))
    assert pt[1] == pytest.approx(0.5 / 2.5)  # equal models tie with probability ν / (2 + ν)
    assert pi / pj == pytest.approx(np.exp(x))  # decisive odds are BT's
    pi, pj, pt = outcome_probs("rao-kupper", x, 0.7)
    assert pi == pytest.approx(1 / (1 + np.exp(-(x - 0.7)))) and pt[1] == pytest.approx(1 - 2 / (1 + math.exp(0.7)))
    with pytest.raises(ValueError, match="tie model"):
        outcome_probs("half", x, 0.0)


@pytest.mark.parametrize("ties", ["davidson", "rao-kupper"])
def test_a_tie_models_board_has_sandwich_and_bootstrap_intervals_around_its_ratings(ties):
    counts = league(seed=3, per_pair=200)
    sandwich = compute_board(counts, ties=ties, ci="sandwich", reg=1.0)
    boot = compute_board(counts, ties=ties, ci="bootstrap", rounds=200, seed=2, reg=1.0)
    assert sandwich.ties == ties and sandwich.tie_param is not None
    assert sandwich.rating == pytest.approx(boot.rating)
    assert np.mean(sandwich.rating) == pytest.approx(1000.0)
    assert np.all(sandwich.ci_low < sandwich.rating) and np.all(sandwich.rating < sandwich.ci_high)
    # Two estimates of one spread: within a quarter of each other with 200 replicates.
    width_s = sandwich.ci_high - sandwich.ci_low
    width_b = boot.ci_high - boot.ci_low
    assert np.all(np.abs(width_b / width_s - 1) < 0.25)
    # The half-win board of the same votes orders the models the same way here.
    assert compute_board(counts, rounds=0, reg=1.0).models == sandwich.models


def test_a_tie_model_refuses_reweighting_and_unknown_names():
    with pytest.raises(ValueError, match="reweighting"):
        compute_board(league(), ties="davidson", reweighted=True)
    with pytest.raises(ValueError, match="ties must be one of"):
        compute_board(league(), ties="thurstone")


def test_a_tie_model_with_no_tie_seen_yet_stays_finite():
    counts = PairCounts.from_grouped([("a", "b", "model_a", 3), ("b", "c", "model_a", 2), ("c", "a", "model_b", 1)])
    for ties in ("davidson", "rao-kupper"):
        board = compute_board(counts, ties=ties, rounds=20, reg=1.0)
        assert np.all(np.isfinite(board.rating)) and np.all(np.isfinite(board.ci_low)) and board.models[0] == "a"


def leaderbot_table() -> list[tuple[str, int, tuple[int, ...], tuple[int, ...]]]:
    """(name prefix, matches, observed %, predicted %) per row of leaderbot's README Davidson table."""
    out = []
    for line in shared_data_file("arena_battles/leaderbot_readme_davidson_top20.txt").read_text().splitlines():
        m = re.match(r"\|\s+\d+\. (\S+?)(?:\.\.\.)?\s+\|\s+\S+\s+\|\s+(\d+) \|(.*)\|(.*)\|", line)
        if m:
            obs = tuple(int(v) for v in re.findall(r"(\d+)%", m.group(3)))
            pred = tuple(int(v) for v in re.findall(r"(\d+)%", m.group(4)))
            out.append((m.group(1), int(m.group(2)), obs, pred))
    return out


def test_the_davidson_fit_on_the_public_battles_agrees_with_leaderbots_table():
    """leaderbot loads the pair counts with "both bad" dropped (its ``load(tie='tie')``) and its
    README's Davidson has a scale and a tie factor per model; ours has one tie parameter. What
    must agree: the battle counts and observed rates exactly, and the same twenty models at the
    top, each within three places. leaderbot's own model, refitted, reproduces the order but for
    one adjacent swap (arena/ratings/leaderbot.py, test_compute_ratings.py)."""
    data = json.loads(shared_data_file("arena_battles/lmsys_clean_battle_20240814_pair_counts.json").read_text())
    full = PairCounts.from_leaderbot_json(data)
    counts = PairCounts(full.models, full.pairs, full.counts * [1, 1, 1, 0])  # leaderbot's tie="tie"
    fit = fit_ties("davidson", counts, 0.0)
    order = [counts.models[k] for k in np.argsort(-fit.beta)]
    n = counts.n_models
    i, j = counts.pairs[:, 0], counts.pairs[:, 1]
    w, lo, t = counts.counts[:, 0], counts.counts[:, 1], counts.counts[:, 2]
    games = np.bincount(i, w + lo + t, n) + np.bincount(j, w + lo + t, n)
    wins = np.bincount(i, w, n) + np.bincount(j, lo, n)
    table = leaderbot_table()
    assert len(table) == 20
    for rank, (prefix, matches, observed, _predicted) in enumerate(table):
        mine = [m for m in order[:20] if m.startswith(prefix) and games[counts.models.index(m)] == matches]
        assert len(mine) == 1, prefix
        k = counts.models.index(mine[0])
        assert round(100 * wins[k] / games[k]) == observed[0]
        assert abs(order.index(mine[0]) - rank) <= 3, (mine[0], order.index(mine[0]), rank)
    pi, pj, pt = outcome_probs("davidson", fit.beta[i] - fit.beta[j], fit.tie)
    total = w + lo + t
    predicted_ties = (np.bincount(i, total * pt, n) + np.bincount(j, total * pt, n)) / games
    assert float(np.sum(total * pt)) == pytest.approx(float(t.sum()), rel=1e-4)  # the tie share is fitted exactly
    assert 0.19 < float(np.median(predicted_ties)) < 0.23
    assert POINTS_PER_LOGIT * (fit.beta.max() - np.sort(fit.beta)[-20]) > 100  # the optimum's spread, in points


def test_the_page_text_states_the_prior_and_the_tie_model():
    text = about_intervals({"ci": "sandwich", "prior_sd": 100.0, "ties": "davidson"})
    assert "give or take 100 points" in text and "Davidson's tie model" in text
    assert "tie model" not in about_intervals({"ci": "bootstrap", "prior_sd": 100.0, "ties": "half"})
