"""Closing answers nobody is generating any more.

A side's response is PENDING while a web process streams it. When that process dies (a
crash, a deploy, an OOM kill) or cannot record the end of the stream, the row would stay
pending for good: the battle could take no prompt and no vote. :func:`responses_reap_stale`
(run by Celery beat, see ``ARENA_REAP_EVERY_S``) closes every response pending for longer
than the generation timeout plus a grace period as an ERROR with an empty answer (text is
stored only when a side ends), through the same ``battle_side_finish`` the consumer uses.
The battle then stays votable (its vote is marked ``side_error``, so ratings leave it out) or takes a new prompt.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from arena import services
from arena.models import Response

logger = logging.getLogger(__name__)

#: What the reaper records as the response's (staff-only) error.
REAPED_ERROR = "reaped: no web process finished this answer within the generation timeout (process ended?)"


def responses_reap_stale(*, grace_s: float | None = None) -> list[int]:
    """Close responses pending for longer than ``ARENA_GENERATION_TIMEOUT_S`` + grace; return their ids."""
    grace = settings.ARENA_REAP_GRACE_S if grace_s is None else grace_s
    limit = timezone.now() - timedelta(seconds=settings.ARENA_GENERATION_TIMEOUT_S + grace)
    stale = list(Response.objects.filter(state=Response.State.PENDING, started_at__lt=limit).values_list("pk", flat=True))
    reaped = []
    for response_id in stale:
        # battle_side_finish leaves a response that was finished meanwhile untouched.
        response = services.battle_side_finish(
            response_id=response_id, state=Response.State.ERROR, finish_reason="error", content="",
            error=REAPED_ERROR,
        )
        if response.error == REAPED_ERROR:
            reaped.append(response_id)
    if reaped:
        logger.warning("closed %d answer(s) left pending by a web process: %s", len(reaped), reaped)
    return reaped
