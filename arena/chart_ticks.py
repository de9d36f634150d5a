"""Round axis ticks for the server-drawn SVG charts (pure: standard library only).

Beside the arena's charts (:mod:`arena.leaderboard.plots`); the training pages' charts (:mod:`training.plots`)
use the same copy, as training already depends on the arena and never the other way round.
"""

from __future__ import annotations

import math

__all__ = ["nice_ticks"]


def _nice_step(span: float, target: int = 6) -> float:
    """A round tick step (1, 2 or 5 × 10^k) giving at most about ``target`` ticks over ``span``;
    1.0 for an empty or non-finite span."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` ticks from ``low`` to ``high`` (both included, up to rounding): the
    multiples of a round step (1, 2 or 5 × 10^k) between them; ``[]`` when either end is not
    finite, ``[low]`` when they are equal."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high == low:
        return [low]
    step = _nice_step(high - low, count)
    ticks, value = [], math.ceil(low / step) * step
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks
