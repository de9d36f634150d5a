"""The arena's Prometheus metrics and the guarded /metrics view.

Events are counted in the process where they happen (prometheus_client's default registry,
one per process; Prometheus sums the web replicas):

* ``arena_battles_total`` -- battles created;
* ``arena_votes_total`` -- votes recorded; ``arena_votes_excluded_total{reason}`` -- those
  of them the leaderboard leaves out when they are stored, by reason (``vote_exclusion_reasons``:
  identity leak, side error, and the quality reason of ``arena/quality.py``, e.g. ``too_fast``);
* ``arena_generation_errors_total{model}`` and ``arena_time_to_first_token_seconds{model}``
  -- per served model (public name), from each finished battle side.

State that lives in the database is read at scrape time, so every process reports the same
truth (take ``max`` across replicas): ``arena_training_jobs{status}``, and
``arena_votes_left_out{reason}`` -- stored votes per quality reason now, including the key rules
(``outlier_rater``, ``key_share``) that are recomputed before each refit and so can change.

``metrics_view`` answers only a direct peer (the TCP peer, never an ``X-Forwarded-For`` address,
even from a trusted proxy) in ``ARENA_METRICS_ALLOWED_NETS`` or a request bearing
``ARENA_METRICS_TOKEN``; everyone else gets 404. Django's own request metrics come from
django-prometheus' middleware.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import Http404
from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily

logger = logging.getLogger(__name__)

BATTLES = Counter("arena_battles", "Battles created")
VOTES = Counter("arena_votes", "Votes recorded")
VOTES_EXCLUDED = Counter("arena_votes_excluded", "Votes left out of the leaderboard, by reason", ["reason"])
GENERATION_ERRORS = Counter("arena_generation_errors", "Battle answers that ended in an error", ["model"])
TIME_TO_FIRST_TOKEN = Histogram(
    "arena_time_to_first_token_seconds", "Time to the first streamed token of a battle answer", ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)


def vote_exclusion_reasons(vote) -> list[str]:
    """Why the leaderboard leaves this vote out when it is stored (empty: it counts)."""
    return [reason for reason, flagged in (("identity_leak", vote.identity_leak), ("side_error", vote.side_error),
                                           (vote.exclusion, bool(vote.exclusion))) if flagged]


def vote_recorded(vote) -> None:
    VOTES.inc()
    for reason in vote_exclusion_reasons(vote):
        VOTES_EXCLUDED.labels(reason=reason).inc()


def _model_name(model_id: int) -> str:
    """The public name, read each time (one primary-key lookup): names can change, ids are reused."""
    from serving.models import ServedModel

    return ServedModel.objects.filter(pk=model_id).values_list("public_name", flat=True).first() or str(model_id)


def generation_finished(*, model_id: int, errored: bool, ttft_ms: float | None) -> None:
    """Count one finished battle side. Metrics never break a battle: failures are logged."""
    try:
        name = _model_name(model_id)
        if errored:
            GENERATION_ERRORS.labels(model=name).inc()
        if ttft_ms is not None:
            TIME_TO_FIRST_TOKEN.labels(model=name).observe(ttft_ms / 1000.0)
    except Exception:  # noqa: BLE001 - a metric is never worth a failed answer
        logger.exception("could not record generation metrics")


class DatabaseCollector:
    """Gauges read from the database when Prometheus scrapes (``describe`` keeps registration off the database)."""

    def describe(self):
        yield GaugeMetricFamily("arena_training_jobs", "Training jobs by status", labels=["status"])
        yield GaugeMetricFamily("arena_votes_left_out", "Stored votes left out, by quality reason", labels=["reason"])

    def collect(self):
        from django.db.models import Count

        from arena.models import Vote
        from training.models import Job

        jobs = GaugeMetricFamily("arena_training_jobs", "Training jobs by status", labels=["status"])
        counts = dict(Job.objects.values_list("status").annotate(n=Count("id")))
        for status in Job.Status.values:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        left_out = GaugeMetricFamily("arena_votes_left_out", "Stored votes left out, by quality reason",
                                     labels=["reason"])
        counts = dict(Vote.objects.exclude(exclusion="").values_list("exclusion").annotate(n=Count("id")))
        for reason in Vote.Exclusion.values:
            if reason:
                left_out.add_metric([reason], counts.get(reason, 0))
        yield left_out


if not any(isinstance(c, DatabaseCollector) for c in list(REGISTRY._collector_to_names)):
    REGISTRY.register(DatabaseCollector())


def _allowed(request) -> bool:
    token = settings.ARENA_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        # The direct peer, never an address a proxy forwarded: a trusted proxy in front of a
        # reachable port would otherwise let any client claim 127.0.0.1 in X-Forwarded-For.
        peer = ipaddress.ip_address(request.META.get("ARENA_PEER_ADDR", request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(net, strict=False) for net in settings.ARENA_METRICS_ALLOWED_NETS)


def metrics_view(request):
    if not _allowed(request):
        raise Http404
    from django_prometheus.exports import ExportToDjangoView

    return ExportToDjangoView(request)
