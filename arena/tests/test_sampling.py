"""Active pair sampling (pure maths, no database)."""

from __future__ import annotations

import numpy as np
import pytest

from arena.sampling import ActiveRule, choose_pairs, covariance, focus_matrix, pair_gains


def arena(n: int = 5, votes: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    battles = np.full((n, n), votes)
    np.fill_diagonal(battles, 0.0)
    return battles, np.linspace(1.0, -1.0, n)


def test_gain_is_the_exact_drop_of_the_weighted_variance():
    battles, beta = arena()
    battles[0, 3] = battles[3, 0] = 7.0
    cov = covariance(battles, beta)
    focus = focus_matrix(beta, cov, np.array([1.0, 3.0, 1.0, 1.0, 2.0]), adjacent=1.0)
    gains = pair_gains(cov, focus, beta)
    for i, j in [(0, 3), (1, 4), (2, 3)]:
        more = battles.copy()
        more[i, j] += 1
        more[j, i] += 1
        # The information of one vote does not depend on its outcome: refit-free, exact.
        after = covariance(more, beta)
        assert gains[i, j] == pytest.approx(np.trace(focus @ cov) - np.trace(focus @ after), rel=1e-9)
    assert np.all(np.diag(gains) == 0) and np.allclose(gains, gains.T)


def test_a_new_model_gets_the_votes_against_close_opponents():
    battles, beta = arena(6)
    battles[5, :] = battles[:, 5] = 0.0  # model 5 just entered
    beta[5] = 0.1
    picks = choose_pairs(battles, beta, np.ones(6), 40, np.random.default_rng(0), ActiveRule(floor=0.0))
    assert sum(5 in p for p in picks) >= 35
    assert all(i < j for i, j in picks)
    opponents = [i for i, j in picks if j == 5]
    assert np.mean(np.abs(beta[opponents] - beta[5])) < np.mean(np.abs(beta[:5] - beta[5]))


def test_the_floor_keeps_every_pair_possible_and_zero_weights_leave_only_the_order_terms():
    battles, beta = arena(4)
    battles[3, :] = battles[:, 3] = 0.0
    picks = choose_pairs(battles, beta, np.ones(4), 600, np.random.default_rng(1), ActiveRule(floor=1.0))
    assert {p for p in picks} == {(i, j) for i in range(4) for j in range(i + 1, 4)}
    # Only the order terms: two level models (0, 1) far from the others get the votes.
    beta = np.array([0.0, 0.001, -3.0, -6.0])
    battles, _ = arena(4, 50.0)
    picks = choose_pairs(battles, beta, np.zeros(4), 10, np.random.default_rng(2), ActiveRule(floor=0.0))
    assert picks.count((0, 1)) >= 8


def test_bad_rules_and_too_few_models_are_errors():
    with pytest.raises(ValueError, match="floor"):
        ActiveRule(floor=1.5)
    with pytest.raises(ValueError, match="adjacent"):
        ActiveRule(adjacent=-1)
    with pytest.raises(ValueError, match="two models"):
        choose_pairs(np.zeros((1, 1)), np.zeros(1), np.ones(1), 1, np.random.default_rng(0))
