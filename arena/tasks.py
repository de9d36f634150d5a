"""Celery tasks of the arena: the leaderboard refresh.

Every committed vote calls :func:`ratings_refresh_soon`, which queues one
:func:`ratings_refresh` a few seconds later unless one is already pending, so a burst of votes
causes one refit. The "pending" flag lives in the ``shared`` cache (Redis in the Redis mode,
files under ``DATA_DIR`` in the embedded mode: both are seen by the web and worker processes)
and expires on its own, so a message lost with a broker outage only delays the next refit.
Celery beat also runs :func:`ratings_refresh` every few minutes as a safety net; it does
nothing when the latest snapshot is still current.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import caches

from arena import leaderboard

logger = logging.getLogger(__name__)

PENDING_KEY = "arena:leaderboard:refresh-pending"
#: How long a pending flag outlives its refit's countdown before another vote may queue again
#: (covers a busy worker; a lost message costs at most this long).
PENDING_GRACE_S = 120.0
GROUP = "leaderboard"


def _pending_cache():
    return caches["shared"]


@shared_task(ignore_result=True)
def ratings_refresh(force: bool = False) -> int | None:
    """Store a new rating snapshot (unless ``force`` is false and the latest is still current)
    and tell the leaderboard pages; returns the new snapshot's id, or None when skipped."""
    # Cleared first: a vote cast while this refit runs may not be in it, so it must be able to
    # queue the next one.
    try:
        _pending_cache().delete(PENDING_KEY)
    except Exception:  # noqa: BLE001 - the flag is an optimisation; the refit still runs
        logger.warning("could not clear the leaderboard refresh flag", exc_info=True)
    if not force and leaderboard.snapshot_is_current():
        return None
    snapshot = leaderboard.snapshot_create()
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


def ratings_refresh_soon() -> None:
    """Queue a leaderboard refresh in ``ARENA_LEADERBOARD_REFRESH_DELAY_S`` seconds, once per burst.

    Never raises: a vote must not fail because the leaderboard cannot be refreshed (broker or
    cache down, no worker in tests). Then it logs and lets the next vote or beat try again.
    """
    delay = settings.ARENA_LEADERBOARD_REFRESH_DELAY_S
    try:
        if not _pending_cache().add(PENDING_KEY, 1, timeout=delay + PENDING_GRACE_S):
            return  # a refresh is already queued and will include this vote
    except Exception:  # noqa: BLE001
        logger.warning("leaderboard refresh flag unavailable; queueing a refresh anyway", exc_info=True)
    try:
        _publish(delay)
    except Exception:  # noqa: BLE001
        logger.warning("could not queue the leaderboard refresh; the next vote or beat will", exc_info=True)
        try:
            _pending_cache().delete(PENDING_KEY)
        except Exception:  # noqa: BLE001
            pass


def _publish(countdown: float) -> None:
    """Queue :func:`ratings_refresh`, failing fast: one connection attempt, no publish retries.

    Celery's defaults retry a dead broker for about 6 s, and this runs in the request that
    recorded the vote. A connection of its own carries the fail-fast options without changing
    them for the app's other messages (training jobs keep their patient retries).
    """
    app = ratings_refresh.app
    options = {**(app.conf.broker_transport_options or {}), "max_retries": 0}
    with app.connection_for_write(connect_timeout=1.0, transport_options=options) as connection:
        ratings_refresh.apply_async(countdown=countdown, retry=False, connection=connection)


@shared_task(ignore_result=True)
def responses_reap_stale() -> list[int]:
    """Close answers left pending by a web process that died (see arena.reaper)."""
    from arena import reaper

    return reaper.responses_reap_stale()
