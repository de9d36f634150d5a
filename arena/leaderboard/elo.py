"""The online Elo column, carried from snapshot to snapshot.

Elo depends on the order of the votes, so it is replayed in time order; :func:`elo_state_advance`
replays only the votes a snapshot has not seen yet whenever that gives the same result as a full
replay, and everything otherwise. The update rule itself is :func:`arena.ratings.elo_update`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import Count, Min, Sum

from arena.leaderboard.categories import SNAPSHOT_VERSION, categories_of
from arena.leaderboard.selectors import counted_with_facts
from arena.models import Vote
from arena.ratings import elo_update


def elo_state_advance(previous: Mapping[str, Any] | None, last_vote_id: int, names: Mapping[int, str]) -> dict:
    """The Elo state after the counted votes up to ``last_vote_id``.

    Replays only the votes after ``previous["last_vote_id"]`` when that is exact, and every
    counted vote otherwise: when there is no previous state, when the votes it covered changed
    since (a vote deleted, re-flagged, or committed late with a smaller id: the count and the sum
    of their ids tell), when a newer vote is older than the last one replayed (imported
    history), or when a model was renamed. State: ``{"version", "last_vote_id", "counted",
    "id_sum", "last_time", "ratings": {category: {model: rating}}}``; votes in time order.
    """
    valid = bool(previous) and previous.get("version") == SNAPSHOT_VERSION
    if valid:
        done = Vote.objects.counted().filter(pk__lte=previous["last_vote_id"]).aggregate(n=Count("pk"), s=Sum("pk"))
        # PostgreSQL sums a bigint as numeric: int() so that 5 == Decimal(5) is not left to chance.
        valid = (done["n"], int(done["s"] or 0)) == (previous["counted"], previous["id_sum"])
    if valid and previous["last_time"]:
        oldest_new = (
            Vote.objects.counted().filter(pk__gt=previous["last_vote_id"], pk__lte=last_vote_id)
            .aggregate(t=Min("created_at"))["t"]
        )
        valid = oldest_new is None or oldest_new >= datetime.fromisoformat(previous["last_time"])
    if valid:
        known = set(names.values())
        valid = all(set(r) <= known for r in previous["ratings"].values())
    start = previous["last_vote_id"] if valid else 0
    ratings: dict[str, dict[str, float]] = {k: dict(v) for k, v in previous["ratings"].items()} if valid else {}
    last_time = previous["last_time"] if valid else None

    new = (
        counted_with_facts(last_vote_id).filter(pk__gt=start)
        .order_by("created_at", "pk")
        .values_list("created_at", "battle__model_a_id", "battle__model_b_id", "winner", "battle__language",
                     "multi", "long")
    )
    per_category: dict[str, list[tuple[str, str, str]]] = {}
    for created_at, a_id, b_id, winner, language, multi, long in new.iterator(chunk_size=20_000):
        battle = (names[a_id], names[b_id], winner)
        for key in categories_of(winner, language, multi, long):
            per_category.setdefault(key, []).append(battle)
        last_time = created_at.isoformat()
    for key, battles in per_category.items():
        ratings[key] = elo_update(ratings.get(key, {}), battles)
    covered = Vote.objects.counted().filter(pk__lte=last_vote_id).aggregate(n=Count("pk"), s=Sum("pk"))
    return {
        "version": SNAPSHOT_VERSION,
        "last_vote_id": last_vote_id,
        "counted": covered["n"],
        "id_sum": int(covered["s"] or 0),
        "last_time": last_time,
        "ratings": ratings,
        "full_recompute": not valid,
    }
