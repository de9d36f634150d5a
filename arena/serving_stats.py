"""Serving statistics per model, from the battles' own recorded responses (admin-only).

Over a window: finished responses (done or error; cancelled ones are the rater's
doing and not counted, nor are errors the rater's input caused, ``Response.rater_caused``,
which are counted apart as ``rater_errors``), mean time to first token, mean tokens/s,
error rate and timeout rate (errors the consumer recorded as ``TimeoutError``/``APITimeoutError``).
``error_holds`` takes a model out of pairing while its error rate over
``ARENA_PAIRING_ERROR_WINDOW_S`` is at least ``ARENA_PAIRING_MAX_ERROR_RATE`` with
at least ``ARENA_PAIRING_ERROR_MIN_RESPONSES`` responses, and its errors came from at least
``ARENA_PAIRING_ERROR_MIN_RATERS`` distinct rater ids and as many distinct IP hashes (one
client, however many battles it opens, cannot take a model out). It recovers when the failures
age out of the window (or an admin lowers the threshold). Whether a hold may apply at all (the
floor of two battle-ready models) is ``arena.pairing.holds``'s.
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
_MODEL_ERROR = Q(state=Response.State.ERROR, rater_caused=False)


def serving_stats(model_ids: list[int] | None, window: timedelta) -> dict[int, dict]:
    """``{model id: {responses, errors, timeouts, error_rate, timeout_rate, ttft_ms, tokens_per_s, rater_errors,
    error_raters, error_ips}}`` (one query); ``error_raters``/``error_ips``: distinct rater ids and IP hashes
    of the battles where the model failed."""
    rows = Response.objects.filter(started_at__gte=timezone.now() - window, state__in=_FINISHED)
    if model_ids is not None:
        rows = rows.filter(model_id__in=model_ids)
    grouped = rows.values("model_id").annotate(
        responses=Count("id", filter=Q(rater_caused=False)),
        errors=Count("id", filter=_MODEL_ERROR),
        timeouts=Count("id", filter=_MODEL_ERROR & _TIMEOUT),
        rater_errors=Count("id", filter=Q(state=Response.State.ERROR, rater_caused=True)),
        error_raters=Count("turn__battle__rater_id", filter=_MODEL_ERROR, distinct=True),
        error_ips=Count("turn__battle__ip_hash", filter=_MODEL_ERROR, distinct=True),
        ttft_ms=Avg("ttft_ms", filter=Q(state=Response.State.DONE)),
        tokens_per_s=Avg("tokens_per_s", filter=Q(state=Response.State.DONE)),
    )
    stats = {}
    for row in grouped:
        total = row["responses"]
        stats[row.pop("model_id")] = {
            **row, "error_rate": row["errors"] / total if total else 0.0,
            "timeout_rate": row["timeouts"] / total if total else 0.0,
        }
    return stats


def model_serving_stats(model: ServedModel) -> dict[str, dict | None]:
    """The model's statistics over the last hour and day (None where it answered nothing)."""
    return {name: serving_stats([model.pk], window).get(model.pk) for name, window in WINDOWS.items()}


def error_holds(models: list[ServedModel]) -> dict[int, str]:
    """Models whose recent error rate keeps them out of pairing, with the reason an admin reads;
    the highest error rate first."""
    window = timedelta(seconds=settings.ARENA_PAIRING_ERROR_WINDOW_S)
    holds = {}
    raters = settings.ARENA_PAIRING_ERROR_MIN_RATERS
    stats = serving_stats([m.pk for m in models], window)
    for model_id, row in sorted(stats.items(), key=lambda item: (-item[1]["error_rate"], item[0])):
        if row["responses"] >= settings.ARENA_PAIRING_ERROR_MIN_RESPONSES and (
            row["error_rate"] >= settings.ARENA_PAIRING_MAX_ERROR_RATE
        ) and min(row["error_raters"], row["error_ips"]) >= raters:
            holds[model_id] = (
                f"error rate {row['error_rate']:.0%} over the last {window.total_seconds() / 60:.0f} min "
                f"({row['errors']} of {row['responses']}, from {row['error_raters']} raters)"
            )
    return holds
