"""Active pair sampling (pure maths, no database)."""

from __future__ import annotations

import numpy as np
import pytest

from arena.pairing.sampling import (
    ActiveRule,
    choose_pairs,
    covariance,
    eligible_models,
    focus_matrix,
    pair_gains,
)


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


@pytest.mark.parametrize("floor", [0.0, 0.1, 1.0])
def test_a_held_model_is_never_drawn_while_two_others_can_battle(floor):
    # The case of issue 21: an unrated held model at the mean of a 10-model arena (it used to take 93%).
    battles, beta = arena(10, 30.0)
    battles[4, :] = battles[:, 4] = 0.0
    beta[4] = 0.0
    weight = np.ones(10)
    weight[4] = 0.0
    picks = choose_pairs(battles, beta, weight, 300, np.random.default_rng(3), ActiveRule(floor=floor))
    assert not any(4 in p for p in picks)
    assert len({m for p in picks for m in p}) >= 2


def test_held_models_are_drawn_only_when_fewer_than_two_others_remain():
    battles, beta = arena(4)
    picks = choose_pairs(battles, beta, np.array([1.0, 0.0, 0.0, 0.0]), 50, np.random.default_rng(4),
                         ActiveRule(floor=0.1))
    assert {m for p in picks for m in p} & {1, 2, 3}  # the only positive model needs a held rival
    assert eligible_models(np.array([0.0, 2.0, 0.0, 1.0])).tolist() == [False, True, False, True]
    assert eligible_models(np.zeros(3)).all()


def test_no_pair_takes_more_than_its_cap_of_a_models_battles():
    battles, beta = arena(16, 100.0)
    battles[15, :] = battles[:, 15] = 0.0  # a newcomer, level with model 7
    beta[15] = beta[7]
    weight = np.ones(16)
    weight[15] = 5.0
    picks = choose_pairs(battles, beta, weight, 400, np.random.default_rng(5), ActiveRule(floor=0.0, repeat_cap=2.0))
    newcomer = [p for p in picks if 15 in p]
    busiest = max(newcomer.count(p) for p in set(newcomer))
    # Once the newcomer has CAP_AFTER battles no opponent exceeds twice the even share (2/15) of them,
    # give or take the one pick that crosses it.
    assert busiest <= 2 / 15 * len(newcomer) + 1
    uncapped = choose_pairs(battles, beta, weight, 400, np.random.default_rng(5),
                            ActiveRule(floor=0.0, repeat_cap=np.inf))
    newcomer = [p for p in uncapped if 15 in p]
    assert max(newcomer.count(p) for p in set(newcomer)) > 2 / 15 * len(newcomer) + 1  # the cap is what holds it
    with pytest.raises(ValueError, match="repeat_cap"):
        ActiveRule(repeat_cap=0.5)
