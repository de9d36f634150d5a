"""Serving statistics per model, from the battles' own recorded responses (admin-only).

Over a window: finished responses (done or error; cancelled ones are the rater's
doing and not counted), mean time to first token, mean tokens/s, error rate and
timeout rate (errors the consumer recorded as ``TimeoutError``/``APITimeoutError``).
``error_holds`` takes a model out of pairing while its error rate over
``ARENA_PAIRING_ERROR_WINDOW_S`` is at least ``ARENA_PAIRING_MAX_ERROR_RATE`` with
at least ``ARENA_PAIRING_ERROR_MIN_RESPONSES`` responses; it recovers when the
failures age out of the window (or an admin lowers the threshold).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, Q
from django.utils import timezone

from arena.models import Response
from serving.models import ServedModel

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_FINISHED = [Response.State.DONE, Response.State.ERROR]
_TIMEOUT = Q(error__startswith="TimeoutError") | Q(error__startswith="APITimeoutError")


def serving_stats(model_ids: list[int] | None, window: timedelta) -> dict[int, dict]:
    """``{model id: {responses, errors, timeouts, error_rate, timeout_rate, ttft_ms, tokens_per_s}}`` (one query)."""
    rows = Response.objects.filter(started_at__gte=timezone.now() - window, state__in=_FINISHED)
    if model_ids is not None:
        rows = rows.filter(model_id__in=model_ids)
    grouped = rows.values("model_id").annotate(
        responses=Count("id"),
        errors=Count("id", filter=Q(state=Response.State.ERROR)),
        timeouts=Count("id", filter=Q(state=Response.State.ERROR) & _TIMEOUT),
        ttft_ms=Avg("ttft_ms", filter=Q(state=Response.State.DONE)),
        tokens_per_s=Avg("tokens_per_s", filter=Q(state=Response.State.DONE)),
    )
    stats = {}
    for row in grouped:
        total = row["responses"]
        stats[row.pop("model_id")] = {
            **row, "error_rate": row["errors"] / total, "timeout_rate": row["timeouts"] / total,
        }
    return stats


def model_serving_stats(model: ServedModel) -> dict[str, dict | None]:
    """The model's statistics over the last hour and day (None where it answered nothing)."""
    return {name: serving_stats([model.pk], window).get(model.pk) for name, window in WINDOWS.items()}


def error_holds(models: list[ServedModel]) -> dict[int, str]:
    """Models whose recent error rate keeps them out of pairing, with the reason an admin reads."""
    window = timedelta(seconds=settings.ARENA_PAIRING_ERROR_WINDOW_S)
    holds = {}
    for model_id, row in serving_stats([m.pk for m in models], window).items():
        if row["responses"] >= settings.ARENA_PAIRING_ERROR_MIN_RESPONSES and (
            row["error_rate"] >= settings.ARENA_PAIRING_MAX_ERROR_RATE
        ):
            holds[model_id] = (
                f"error rate {row['error_rate']:.0%} over the last {window.total_seconds() / 60:.0f} min "
                f"({row['errors']} of {row['responses']})"
            )
    return holds
