import math
import random
from collections import Counter

import pytest

from arena.pairing.weighted import PairingError, sample_pair


class TestSamplePair:
    def test_it_never_pairs_a_model_with_itself(self):
        rng = random.Random(1)
        for _ in range(500):
            a, b = sample_pair(["x", "y", "z"], [1, 1, 1], rng)
            assert a != b

    def test_it_survives_weights_that_crash_fastchat(self):
        rng = random.Random(2)
        for weights in ([0, 0, 0], [math.nan, math.nan, 1], [-1, math.inf, 0], [0.0, 0.0, 0.0]):
            a, b = sample_pair(["x", "y", "z"], weights, rng)
            assert a != b and {a, b} <= {"x", "y", "z"}

    def test_a_zero_weight_model_can_still_be_the_rival_when_only_it_remains(self):
        rng = random.Random(3)
        pairs = {frozenset(sample_pair(["x", "y"], [1, 0], rng)) for _ in range(20)}
        assert pairs == {frozenset({"x", "y"})}

    def test_heavier_models_battle_more_and_sides_are_balanced(self):
        rng = random.Random(4)
        seen, first = Counter(), Counter()
        for _ in range(4000):
            a, b = sample_pair(["heavy", "l1", "l2", "l3"], [5, 1, 1, 1], rng)
            seen.update([a, b])
            first[a] += 1
        assert seen["heavy"] > 1.5 * seen["l1"]
        # The side is random: the heavy model is model A about half the time it plays.
        assert 0.4 < first["heavy"] / seen["heavy"] < 0.6

    def test_it_refuses_fewer_than_two_models(self):
        with pytest.raises(PairingError):
            sample_pair(["only"], [1])
        with pytest.raises(PairingError):
            sample_pair([], [])
        with pytest.raises(PairingError):
            sample_pair(["same", "same"], [1, 1])
