"""Choosing the two models of a battle, as Chatbot Arena does: first by weight, rival by weight among the rest."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


class PairingError(Exception):
    pass


def _clean(weights: Sequence[float]) -> list[float]:
    """Negative, NaN or infinite weights count as zero; all-zero weights fall back to uniform.

    FastChat divides by the sum of the weights and crashes with "probabilities
    contain NaN" when they are empty or all zero; here that can never happen.
    """
    cleaned = [w if isinstance(w, (int, float)) and math.isfinite(w) and w > 0 else 0.0 for w in weights]
    if not any(cleaned):
        return [1.0] * len(cleaned)
    return cleaned


def sample_pair(ids: Sequence, weights: Sequence[float], rng: random.Random | None = None) -> tuple:
    """Return (a, b), two distinct ids; sides are swapped at random so the first pick has no side bias.

    Raises PairingError when fewer than two distinct ids are given.
    """
    rng = rng or random.SystemRandom()
    if len(ids) != len(weights):
        raise PairingError("ids and weights differ in length")
    unique: dict = {}
    for item, weight in zip(ids, weights, strict=True):
        unique.setdefault(item, weight)
    if len(unique) < 2:
        raise PairingError("at least two models must be available to battle")
    items = list(unique)
    first = rng.choices(items, weights=_clean([unique[i] for i in items]))[0]
    rest = [i for i in items if i != first]
    second = rng.choices(rest, weights=_clean([unique[i] for i in rest]))[0]
    return (first, second) if rng.random() < 0.5 else (second, first)
