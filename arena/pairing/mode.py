"""Which pairing a new battle uses: ``ARENA_PAIRING`` = ``weighted`` or ``active``.

``weighted``: :func:`arena.pairing.weighted.sample_pair` by sampling weight (with the new-model boost).
``active``: :func:`arena.pairing.sampling.choose_pairs` (the rule is documented there) with the same
weights as ``w_k``, so a boosted model's uncertainty counts ``ARENA_NEW_MODEL_BOOST`` times, and
``ARENA_PAIRING_FLOOR`` of the pairs uniformly random. Its inputs: the ratings of the latest
snapshot's overall board (a model not on it yet sits at the mean) and the battles per pair,
every battle created so far (a pending battle's vote is information already on its way), read
with one GROUP BY and kept per process for :data:`STATE_TTL_S` seconds; the pairs this process
picked since are added to it, so that consecutive battles spread instead of all taking the
same pair. Sides are random either way.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.db.models import Count

from arena.leaderboard.selectors import board_get, snapshot_latest
from arena.models import Battle
from arena.pairing.sampling import ActiveRule, choose_pairs
from arena.pairing.weighted import PairingError, sample_pair
from arena.ratings import POINTS_PER_LOGIT
from serving.models import ServedModel

__all__ = ["STATE_TTL_S", "pair_for"]

STATE_TTL_S = 10.0
_lock = threading.Lock()
_state: dict = {"at": -np.inf, "pairs": {}}


def _pair_counts() -> dict[tuple[int, int], int]:
    with _lock:
        if time.monotonic() - _state["at"] > STATE_TTL_S:
            counts: dict[tuple[int, int], int] = {}
            for row in Battle.objects.order_by().values("model_a_id", "model_b_id").annotate(n=Count("pk")):
                key = tuple(sorted((row["model_a_id"], row["model_b_id"])))
                counts[key] = counts.get(key, 0) + row["n"]
            _state.update(at=time.monotonic(), pairs=counts)
        return dict(_state["pairs"])


def _note(a: int, b: int) -> None:
    with _lock:
        key = (min(a, b), max(a, b))
        _state["pairs"][key] = _state["pairs"].get(key, 0) + 1


def _ratings(ids: Sequence[int]) -> np.ndarray:
    """Logits of the latest overall board for these model ids (0, the mean, when unknown)."""
    snapshot = snapshot_latest()
    board = board_get(snapshot.data, "overall")["board"] if snapshot is not None else None
    rating = {row["model"]: row["rating"] for row in (board or {}).get("rows", [])}
    names = dict(ServedModel.objects.filter(pk__in=ids).values_list("pk", "public_name"))
    known = [rating[names[i]] for i in ids if names.get(i) in rating]
    mean = float(np.mean(known)) if known else 0.0
    return np.array([(rating.get(names.get(i), mean) - mean) / POINTS_PER_LOGIT for i in ids])


def _active_pair(ids: list[int], weights: list[float], rng: random.Random) -> tuple[int, int]:
    counts = _pair_counts()
    n = len(ids)
    battles = np.zeros((n, n))
    for x in range(n):
        for y in range(x + 1, n):
            battles[x, y] = battles[y, x] = counts.get((min(ids[x], ids[y]), max(ids[x], ids[y])), 0)
    weight = np.array([w if w > 0 else 0.0 for w in weights], dtype=np.float64)
    (i, j), = choose_pairs(battles, _ratings(ids), weight, 1, np.random.default_rng(rng.getrandbits(64)),
                           ActiveRule(floor=settings.ARENA_PAIRING_FLOOR))
    _note(ids[i], ids[j])
    return (ids[i], ids[j]) if rng.random() < 0.5 else (ids[j], ids[i])


def pair_for(ids: Sequence[int], weights: Sequence[float], rng: random.Random | None = None) -> tuple[int, int]:
    """Two distinct model ids for a new battle, by the configured pairing (see the module docstring).

    Raises :class:`arena.pairing.weighted.PairingError` with fewer than two distinct ids, as ``sample_pair``.
    """
    if settings.ARENA_PAIRING != "active":
        return sample_pair(ids, weights, rng)
    unique = dict(zip(ids, weights, strict=True))
    if len(unique) < 2:
        raise PairingError("at least two models must be available to battle")
    return _active_pair(list(unique), list(unique.values()), rng or random.SystemRandom())
