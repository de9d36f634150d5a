"""arena.chart_ticks: the one axis-tick helper of the arena's and the training pages' charts."""

from __future__ import annotations

import math

import pytest

from arena.chart_ticks import nice_ticks


@pytest.mark.parametrize(
    ("low", "high", "count", "expected"),
    [
        (0.0, 10.0, 5, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]),
        (0.0, 1.0, 5, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (931.5, 1187.2, 6, [950.0, 1000.0, 1050.0, 1100.0, 1150.0]),
        (-0.03, 0.07, 5, [-0.02, 0.0, 0.02, 0.04, 0.06]),
        (1.0, 1.0, 5, [1.0]),
        (0.0, math.inf, 5, []),
        (math.nan, 1.0, 5, []),
    ],
)
def test_ticks_are_round_multiples_inside_the_range(low, high, count, expected):
    assert nice_ticks(low, high, count) == expected


def test_the_step_is_one_two_or_five_times_a_power_of_ten_and_the_count_stays_near_the_target():
    for low, high in [(0, 7), (3, 3000), (-5.5, 91.25), (0.001, 0.0042), (812.0, 1403.0)]:
        ticks = nice_ticks(low, high, 6)
        assert 2 <= len(ticks) <= 7
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
        assert low <= ticks[0] and ticks[-1] <= high + step * 1e-9
