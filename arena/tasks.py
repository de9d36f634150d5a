"""Celery tasks of the arena: thin wrappers that call their service.

``ratings_refresh_task`` runs :func:`arena.leaderboard.services.ratings_refresh`; votes schedule
it through :func:`arena.leaderboard.services.ratings_refresh_soon` (after their commit), and
Celery beat runs it every few minutes as a safety net. Its registered name stays
``arena.tasks.ratings_refresh`` (the beat schedule and queued messages use it).
"""

from __future__ import annotations

from celery import shared_task

from arena.battle import reaper
from arena.leaderboard import services
from arena.leaderboard.refresh import RATINGS_REFRESH_TASK


@shared_task(name=RATINGS_REFRESH_TASK, ignore_result=True)
def ratings_refresh_task(force: bool = False) -> int | None:
    """See :func:`arena.leaderboard.services.ratings_refresh`."""
    return services.ratings_refresh(force)


@shared_task(name="arena.tasks.responses_reap_stale", ignore_result=True)
def responses_reap_stale_task() -> list[int]:
    """See :func:`arena.battle.reaper.responses_reap_stale`."""
    return reaper.responses_reap_stale()
