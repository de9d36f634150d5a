"""Leaderboard writes: rating snapshots, and the refresh that makes them after votes.

:func:`snapshot_create` is the one write. It aggregates the counted votes in SQL
(:mod:`arena.leaderboard.selectors`), fits every category with
:func:`arena.leaderboard.boards.board_build`, adds style control for the overall board, advances
the online Elo ratings with the votes cast since the previous snapshot
(:mod:`arena.leaderboard.elo`), and stores everything as one :class:`RatingSnapshot`.

Refresh: every committed vote calls :func:`ratings_refresh_soon`, which schedules one
``ratings_refresh_task`` (:mod:`arena.tasks`, a thin wrapper of :func:`ratings_refresh`) a few
seconds later unless one is already pending, so a burst of votes causes one refit. The
"pending" flag lives in the ``shared`` cache (Redis in the Redis mode, files under ``ARENA_DATA_DIR``
in the embedded mode: both are seen by the web and worker processes) and expires on its own, so
a message lost with a broker outage only delays the next refit. Celery beat also runs the task
every few minutes as a safety net; it does nothing when the latest snapshot is still current.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from arena.leaderboard.boards import anchor_dict, board_build, style_board_build
from arena.leaderboard.categories import (
    FIXED_CATEGORIES,
    SNAPSHOT_VERSION,
    STYLE_SPEC,
    CategorySpec,
    language_spec,
)
from arena.leaderboard.elo import elo_state_advance
from arena.leaderboard.refresh import PENDING_KEY, pending_cache
from arena.leaderboard.reproduce import reproduce_info
from arena.leaderboard.selectors import (
    category_groups,
    counted_vote_groups,
    language_vote_groups,
    model_info,
    retired_names,
    settings_key,
    snapshot_fingerprint,
    snapshot_is_current,
    style_vote_arrays,
)
from arena.leaderboard.settings import board_options, board_settings
from arena.models import RatingSnapshot, Vote
from arena.quality import exclusions
from arena.quality import rules as quality
from arena.ratings import PairCounts

logger = logging.getLogger(__name__)

#: Snapshots kept; older ones are deleted (a busy arena makes one every few seconds).
KEEP_SNAPSHOTS = 100


def _category_entry(spec: CategorySpec, votes: int, min_votes: int, *, style: bool = False) -> dict[str, Any]:
    return {
        "key": spec.key,
        "label": spec.label,
        "description": spec.description,
        "style_control": style,
        "votes": votes,
        "min_votes": min_votes,
        "enough_votes": votes >= min_votes,
        "board": None,
    }


#: A style-control fit faster than this is redone with every snapshot; a slower one (a big
#: arena: ~10 s per million votes) at most every ``ARENA_LEADERBOARD_STYLE_EVERY_S``.
STYLE_CHEAP_MS = 1000.0


def _settings_digest() -> str:
    return hashlib.sha256(json.dumps(settings_key(), sort_keys=True).encode()).hexdigest()[:16]


def _style_entry(
    previous: Mapping[str, Any] | None, last_vote_id: int, names: Mapping[int, str],
    info: Mapping[str, tuple[str, str]],
) -> dict[str, Any]:
    """The style-control entry: refitted, or the previous snapshot's when that fit was slow and
    is recent (same settings). ``last_vote_id``/``computed_at``/``compute_ms`` say which votes
    and when; pages show them, since a carried-over board can lag the others."""
    prev = previous.get("style_control") if previous and previous.get("version") == SNAPSHOT_VERSION else None
    if (
        prev and prev.get("board") and prev.get("settings") == _settings_digest()
        and prev.get("compute_ms", 0.0) >= STYLE_CHEAP_MS
        and (timezone.now() - datetime.fromisoformat(prev["computed_at"])).total_seconds()
        < settings.ARENA_LEADERBOARD_STYLE_EVERY_S
    ):
        return dict(prev)
    started = time.perf_counter()
    models, arrays, without_style = style_vote_arrays(last_vote_id, names)
    entry = _category_entry(STYLE_SPEC, len(arrays[0]), settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES, style=True)
    if entry["enough_votes"]:
        entry["board"] = style_board_build(
            models, *arrays, anchor=settings.ARENA_LEADERBOARD_ANCHOR,
            rounds=settings.ARENA_LEADERBOARD_STYLE_ROUNDS, seed=0, info=info,
            provisional=board_options()["provisional"], retired=retired_names(),
        )
    entry.update(
        without_style=without_style, last_vote_id=last_vote_id, computed_at=timezone.now().isoformat(),
        compute_ms=(time.perf_counter() - started) * 1000.0, settings=_settings_digest(),
    )
    return entry


def _category_entries(
    per_category: Mapping[str, list[tuple[str, str, str, int]]], elo: Mapping[str, Mapping[str, float]],
    info: Mapping[str, tuple[str, str]],
) -> list[dict[str, Any]]:
    """One entry per fixed category, then per detected language (most votes first), each with
    its board once it has enough votes (retired models marked)."""
    retired = retired_names()
    languages = sorted((k for k in per_category if k.startswith("lang-")),
                       key=lambda k: -sum(r[3] for r in per_category[k]))
    specs = [*FIXED_CATEGORIES, *(language_spec(k.removeprefix("lang-")) for k in languages)]
    categories: list[dict[str, Any]] = []
    for spec in specs:
        rows = per_category.get(spec.key, [])
        votes = int(sum(r[3] for r in rows))
        minimum = (settings.ARENA_LEADERBOARD_MIN_VOTES if spec.key == "overall"
                   else settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES)
        entry = _category_entry(spec, votes, minimum)
        if entry["enough_votes"]:
            entry["board"] = board_build(
                PairCounts.from_grouped(rows), anchor=settings.ARENA_LEADERBOARD_ANCHOR,
                rounds=settings.ARENA_LEADERBOARD_ROUNDS, seed=0, elo=elo.get(spec.key, {}), info=info,
                retired=retired, **board_options(),
            )
        categories.append(entry)
    return categories


def _vote_totals(last_vote_id: int, counted: int) -> tuple[dict[str, int], dict[str, int]]:
    """``(totals, excluded)`` of the votes up to ``last_vote_id``: all, counted and left out, and
    the reasons for leaving out (a vote may have several)."""
    excluded = Vote.objects.filter(pk__lte=last_vote_id).aggregate(
        votes=Count("pk"), **{key: Count("pk", filter=where) for key, where in exclusions.filters().items()})
    votes = excluded.pop("votes")
    return {"votes": votes, "counted": counted, "excluded": votes - counted}, excluded


def snapshot_create() -> RatingSnapshot:
    """Compute every category's board from the counted votes and store them as one snapshot.

    Reads only votes up to the largest vote id at the start, so a snapshot is consistent while
    votes keep arriving (newer ones go into the next). Elo is carried over from the latest
    snapshot (see :func:`arena.leaderboard.elo.elo_state_advance`). Keeps the newest
    :data:`KEEP_SNAPSHOTS` snapshots. Never fails on an empty arena: every category then reports
    zero votes.

    ``data`` layout (``SNAPSHOT_VERSION`` 1): ``{"version", "created_at", "last_vote_id",
    "totals": {"votes", "counted", "excluded"}, "excluded": {reason: votes} for every
    reason of :func:`arena.quality.exclusions.reasons`}, "anchor", "categories": [entry...], "style_control": entry, "settings",
    "reproduce"}`` (``settings``: :func:`arena.leaderboard.settings.board_settings`;
    ``reproduce``: :func:`arena.leaderboard.reproduce.reproduce_info`); an entry is
    ``{"key", "label", "description", "style_control", "votes", "min_votes", "enough_votes",
    "board"}`` with ``board`` as :func:`arena.leaderboard.boards.board_build` (None below the
    threshold).
    """
    started = time.perf_counter()
    fingerprint = snapshot_fingerprint()
    last_vote_id = Vote.objects.aggregate(last=Max("pk"))["last"] or 0
    names, info = model_info()

    groups = counted_vote_groups(last_vote_id)
    per_category = category_groups(groups, language_vote_groups(last_vote_id), names)
    previous = RatingSnapshot.objects.order_by("-pk").only("elo_state", "data").first()
    elo_state = elo_state_advance(previous.elo_state if previous else None, last_vote_id, names)
    categories = _category_entries(per_category, elo_state["ratings"], info)
    style_entry = _style_entry(previous.data if previous else None, last_vote_id, names, info)
    counted = int(sum(g[3] for g in groups))
    totals, excluded = _vote_totals(last_vote_id, counted)
    now = timezone.now()
    data = {
        "version": SNAPSHOT_VERSION,
        "created_at": now.isoformat(),
        "last_vote_id": last_vote_id,
        "totals": totals,
        "excluded": excluded,
        "anchor": anchor_dict(settings.ARENA_LEADERBOARD_ANCHOR),
        "categories": categories,
        "style_control": style_entry,
        "settings": board_settings(),
        "reproduce": reproduce_info(groups, names),
    }
    with transaction.atomic():
        snapshot = RatingSnapshot.objects.create(
            created_at=now, last_vote_id=last_vote_id, data=data, elo_state=elo_state,
            # A carried-over style board is not current: the next periodic refresh completes it.
            fingerprint=fingerprint if style_entry["last_vote_id"] == last_vote_id else "",
            compute_ms=(time.perf_counter() - started) * 1000.0,
        )
        stale = RatingSnapshot.objects.order_by("-pk").values_list("pk", flat=True)[KEEP_SNAPSHOTS:]
        RatingSnapshot.objects.filter(pk__in=list(stale)).delete()
    logger.info(
        "rating snapshot %s: %s counted votes, %s categories, %s Elo, style control %s, %.0f ms", snapshot.pk,
        counted, len(categories), "full" if elo_state["full_recompute"] else "incremental",
        "refitted" if style_entry["last_vote_id"] == last_vote_id else "carried over", snapshot.compute_ms,
    )
    return snapshot


# ---------------------------------------------------------------------------------------------
# Refreshing after votes
# ---------------------------------------------------------------------------------------------

#: The channel-layer group of the open leaderboard pages (``arena.consumers.LeaderboardConsumer``).
GROUP = "leaderboard"


def ratings_refresh(force: bool = False) -> int | None:
    """Store a new rating snapshot (unless ``force`` is false and the latest is still current)
    and tell the leaderboard pages; returns the new snapshot's id, or None when skipped."""
    # Cleared first: a vote cast while this refit runs may not be in it, so it must be able to
    # queue the next one.
    try:
        pending_cache().delete(PENDING_KEY)
    except Exception:  # noqa: BLE001 - the flag is an optimisation; the refit still runs
        logger.warning("could not clear the leaderboard refresh flag", exc_info=True)
    quality.outliers_refresh()  # may change which votes count, and so the snapshot's fingerprint
    if not force and snapshot_is_current():
        return None
    snapshot = snapshot_create()
    leaderboard_broadcast(snapshot.pk)
    return snapshot.pk
def leaderboard_broadcast(snapshot_id: int) -> None:
    """Push ``{"type": "leaderboard", "snapshot_id": N}`` to the open leaderboard pages.

    With the in-memory channel layer (embedded mode) only sockets of this very process hear it;
    the pages also poll, so a failure here is logged and ignored.
    """
    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "leaderboard.update", "snapshot_id": snapshot_id})
    except Exception:  # noqa: BLE001 - a page update is not worth failing the refit for
        logger.warning("leaderboard broadcast failed", exc_info=True)
