"""The key rules' maths (arena/quality/outliers.py): leave-one-key-out test with ties, the share cap.

Expected values come from independent code: the board's own fit (``arena.ratings.fit_bt``) on
the votes without the key, plain Python sums over the three outcomes, and hand counts.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from arena import ratings
from arena.quality import outliers
from bench import key_attack

MODELS = 4


def honest(rng, count, strength=(1.3, 0.4, -0.3, -1.4), tie_rate=0.15):
    a = rng.integers(0, MODELS, count)
    b = (a + rng.integers(1, MODELS, count)) % MODELS
    s = np.asarray(strength)
    p = 1 / (1 + np.exp(-(s[a] - s[b])))
    outcome = np.where(rng.random(count) < tie_rate, 2, np.where(rng.random(count) < p, 0, 1))
    return a, b, outcome


class TestFit:
    def test_the_fit_matches_the_boards_fit(self):
        a, b, outcome = honest(np.random.default_rng(1), 400)
        pair, y = outliers._oriented(MODELS, a, b, outcome)
        wins = np.bincount(pair, y, MODELS**2)
        total = np.bincount(pair, minlength=MODELS**2).astype(float)
        beta, _ = outliers.bt_fit(MODELS, *outliers._pairs_of(MODELS, wins, total),
                                  lam=outliers._ridge(ratings.DEFAULT_REG))
        board = ratings.fit_bt(ratings.PairCounts.from_arrays([str(m) for m in range(MODELS)], a, b, outcome))
        points = 1000 + ratings.POINTS_PER_LOGIT * (beta - beta.mean())
        np.testing.assert_allclose(points, board, atol=1e-4)

    def test_a_warm_start_reaches_the_same_optimum_in_fewer_steps(self):
        a, b, outcome = honest(np.random.default_rng(2), 600)
        pair, y = outliers._oriented(MODELS, a, b, outcome)
        inputs = outliers._pairs_of(MODELS, np.bincount(pair, y, 16), np.bincount(pair, minlength=16).astype(float))
        cold, cold_steps = outliers.bt_fit(MODELS, *inputs, lam=0.002)
        near = cold + 0.05
        warm, warm_steps = outliers.bt_fit(MODELS, *inputs, lam=0.002, beta0=near)
        np.testing.assert_allclose(warm, cold, atol=1e-7)
        assert warm_steps < cold_steps


def independent_z(a, b, outcome, key, k) -> float:
    """Key ``k``'s z from the board's own fit without its votes and plain sums over the 3 outcomes."""
    rest, mine = key != k, key == k
    board = ratings.fit_bt(ratings.PairCounts.from_arrays([str(m) for m in range(MODELS)],
                                                            a[rest], b[rest], outcome[rest]))
    tie = float(np.mean(outcome[rest] >= 2))
    dev = var = 0.0
    for x, y, o in zip(a[mine], b[mine], outcome[mine], strict=True):
        p = 1 / (1 + 10 ** ((board[y] - board[x]) / 400))
        t = min(tie, 2 * min(p, 1 - p))
        values = {0: math.log(p), 1: math.log(1 - p), 2: 0.5 * math.log(p * (1 - p))}
        probs = {0: p - t / 2, 1: 1 - p - t / 2, 2: t}
        mean = sum(probs[c] * values[c] for c in values)
        var += sum(probs[c] * (values[c] - mean) ** 2 for c in values)
        dev += values[min(int(o), 2)] - mean
    return dev / math.sqrt(var)


class TestKeyScores:
    def test_the_score_is_against_a_board_fitted_without_the_key(self):
        rng = np.random.default_rng(3)
        a, b, outcome = honest(rng, 300)
        key = rng.integers(0, 6, 300)
        scores = outliers.key_scores(MODELS, a, b, outcome, key, min_votes=20)
        assert (scores.votes >= 20).all()
        for k in range(6):
            assert scores.z[k] == pytest.approx(independent_z(a, b, outcome, key, k), abs=1e-4)

    def test_a_dominant_key_is_refitted_exactly_from_the_warm_start(self):
        """300 votes for the weakest among 2,000: the board without them is far from the full fit."""
        rng = np.random.default_rng(7)
        a, b, outcome = honest(rng, 2000)
        a, b = np.r_[a, np.full(300, MODELS - 1)], np.r_[b, rng.integers(0, MODELS - 1, 300)]
        outcome = np.r_[outcome, np.zeros(300, int)]
        key = np.r_[rng.integers(0, 40, 2000), np.full(300, 40)]
        scores = outliers.key_scores(MODELS, a, b, outcome, key, min_votes=20)
        for k in (0, 17, 40):
            assert scores.z[k] == pytest.approx(independent_z(a, b, outcome, key, k), abs=1e-4)
        assert scores.z[40] < -20

    def test_a_key_voting_for_the_weakest_is_flagged_once_it_no_longer_feeds_the_board(self):
        rng = np.random.default_rng(4)
        a, b, outcome = honest(rng, 300)
        rival = rng.integers(0, MODELS - 1, 40)  # the attacker: always for model 3, the weakest
        a, b = np.r_[a, np.full(40, MODELS - 1)], np.r_[b, rival]
        outcome = np.r_[outcome, np.zeros(40, int)]
        key = np.r_[rng.integers(0, 30, 300), np.full(40, 30)]
        scores = outliers.key_scores(MODELS, a, b, outcome, key, min_votes=20)
        assert scores.z[30] < -4
        assert (scores.z[:30][scores.votes[:30] >= 20] > -4).all()

    def test_ties_against_a_confident_board_count_as_evidence(self):
        rng = np.random.default_rng(5)
        a, b, outcome = honest(rng, 400, strength=(2.0, 0.5, -0.5, -2.0), tie_rate=0.05)
        a, b = np.r_[a, np.zeros(40, int)], np.r_[b, np.full(40, 3)]
        outcome = np.r_[outcome, np.full(40, 2)]  # the best and the worst model, always a tie
        key = np.r_[np.full(400, -1), np.zeros(40, int)]
        assert outliers.key_scores(MODELS, a, b, outcome, key, min_votes=20).z[0] < -4

    def test_a_coin_flip_board_gives_no_evidence_and_few_votes_are_never_tested(self):
        a, b = np.zeros(40, int), np.ones(40, int)
        outcome = np.tile([0, 1], 20)
        scores = outliers.key_scores(2, a, b, outcome, np.r_[np.zeros(20, int), np.ones(20, int)], min_votes=21)
        assert scores.votes.tolist() == [20, 20] and scores.z.tolist() == [0.0, 0.0]
        _, mean, var = outliers.vote_loglik_moments(np.array([0.5]), np.array([1.0]), 0.2)
        assert var[0] == pytest.approx(0.0, abs=1e-12) and mean[0] == pytest.approx(math.log(0.5))


class TestShareCap:
    def test_a_key_keeps_its_share_of_a_model_and_its_earliest_votes(self):
        # Model 0 gets 45 votes from other keys (key -1: no key) and 20 from key 7, all against model 1.
        a = np.r_[np.zeros(10, int), np.zeros(45, int), np.zeros(10, int)]
        b = np.ones(65, int)
        key = np.r_[np.full(10, 7), np.full(45, -1), np.full(10, 7)]
        capped = outliers.share_capped(a, b, key, share=0.1, floor=3)
        # others = 45 → the key keeps ⌊0.1·45/0.9⌋ = 5 votes: its first five.
        assert np.flatnonzero(~capped & (key == 7)).tolist() == [0, 1, 2, 3, 4]
        assert not capped[key == -1].any()

    def test_the_floor_protects_a_small_arena_and_zero_turns_the_cap_off(self):
        a, b, key = np.zeros(12, int), np.ones(12, int), np.r_[np.zeros(8, int), np.ones(4, int)]
        assert not outliers.share_capped(a, b, key, share=0.1, floor=8).any()
        assert outliers.share_capped(a, b, key, share=0.1, floor=5).sum() == 3
        assert not outliers.share_capped(a, b, key, share=0, floor=1).any()

    def test_a_vote_is_capped_when_either_of_its_models_is_over(self):
        # Key 0 votes 0-vs-1 ten times and 2-vs-3 ten times; model 1 is rarely seen by others.
        a = np.r_[np.zeros(10, int), np.full(10, 2), np.zeros(40, int), np.full(40, 2)]
        b = np.r_[np.ones(10, int), np.full(10, 3), np.full(40, 3), np.full(40, 3)]
        key = np.r_[np.zeros(20, int), np.full(80, -1)]
        capped = outliers.share_capped(a, b, key, share=0.2, floor=2)
        # model 1: others 0 → floor 2 kept; model 0: others 40 → 10 kept; model 2: others 80 → 20 kept.
        assert capped[:10].sum() == 8 and not capped[10:].any()


def test_vote_marks_caps_only_the_keys_the_test_did_not_flag():
    rng = np.random.default_rng(6)
    a, b, outcome = honest(rng, 300)
    a, b = np.r_[a, np.full(40, MODELS - 1)], np.r_[b, rng.integers(0, MODELS - 1, 40)]
    outcome = np.r_[outcome, np.zeros(40, int)]
    key = np.r_[rng.integers(0, 30, 300), np.full(40, 30)]
    marks = outliers.vote_marks(MODELS, a, b, outcome, [key], threshold=4, min_votes=20, share=0.1, floor=10)
    assert marks.flagged[0].tolist() == [30] and not marks.capped[key == 30].any()
    off = outliers.vote_marks(MODELS, a, b, outcome, [key], threshold=0, min_votes=20, share=0.1, floor=10)
    assert off.flagged[0].size == 0 and off.capped[key == 30].sum() > 20


def test_the_bench_uses_the_documented_defaults():
    source = (Path(__file__).resolve().parents[2] / "config" / "settings.py").read_text()
    defaults = {name: float(re.search(rf'env_(?:int|float)\("{name}", ([0-9.]+)', source).group(1))
                for name in ("ARENA_OUTLIER_Z", "ARENA_OUTLIER_MIN_VOTES", "ARENA_KEY_SHARE_CAP",
                             "ARENA_KEY_SHARE_MIN_VOTES")}
    assert (key_attack.Z, key_attack.MIN_VOTES, key_attack.SHARE, key_attack.SHARE_MIN) == tuple(defaults.values())
