"""Scheduling the leaderboard's refit after votes: one queued refresh per burst, never failing a vote.

Pure scheduling, no rating code, so that any service that changes which votes count (votes,
quality decisions, retirements, imports) can ask for a refit without importing the snapshot
service (:mod:`arena.leaderboard.services`, whose ``ratings_refresh`` clears the flag set here).
The refresh is sent by the task's registered name, so :mod:`arena.tasks` is never imported.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

#: The registered name of ``arena.tasks.ratings_refresh_task``: services send tasks by name, so
#: that ``arena.tasks`` (which imports this module) is never imported back.
RATINGS_REFRESH_TASK = "arena.tasks.ratings_refresh"

PENDING_KEY = "arena:leaderboard:refresh-pending"
#: How long a pending flag outlives its refit's countdown before another vote may queue again
#: (covers a busy worker; a lost message costs at most this long).
PENDING_GRACE_S = 120.0


def pending_cache():
    return caches["shared"]


def ratings_refresh_soon() -> None:
    """Queue a leaderboard refresh in ``ARENA_LEADERBOARD_REFRESH_DELAY_S`` seconds, once per burst.

    Never raises: a vote must not fail because the leaderboard cannot be refreshed (broker or
    cache down, no worker in tests). Then it logs and lets the next vote or beat try again.
    """
    delay = settings.ARENA_LEADERBOARD_REFRESH_DELAY_S
    try:
        if not pending_cache().add(PENDING_KEY, 1, timeout=delay + PENDING_GRACE_S):
            return  # a refresh is already queued and will include this vote
    except Exception:  # noqa: BLE001
        logger.warning("leaderboard refresh flag unavailable; queueing a refresh anyway", exc_info=True)
    try:
        _publish(delay)
    except Exception:  # noqa: BLE001
        logger.warning("could not queue the leaderboard refresh; the next vote or beat will", exc_info=True)
        try:
            pending_cache().delete(PENDING_KEY)
        except Exception:  # noqa: BLE001
            pass


def _publish(countdown: float) -> None:
    """Queue ``ratings_refresh_task``, failing fast: one connection attempt, no publish retries.

    Celery's defaults retry a dead broker for about 6 s, and this runs in the request that
    recorded the vote. A connection of its own carries the fail-fast options without changing
    them for the app's other messages (training jobs keep their patient retries).
    """
    options = {**(current_app.conf.broker_transport_options or {}), "max_retries": 0}
    with current_app.connection_for_write(connect_timeout=1.0, transport_options=options) as connection:
        current_app.send_task(RATINGS_REFRESH_TASK, countdown=countdown, retry=False, connection=connection)
