"""The arena's Prometheus metrics (``config.metrics`` exports them at /metrics, guarded).

Events are counted in the process where they happen (prometheus_client's default registry,
one per process; Prometheus sums the web replicas):

* ``arena_battles_total`` -- battles created;
* ``arena_votes_total`` -- votes recorded; ``arena_votes_excluded_total{reason}`` -- those of
  them the leaderboard leaves out when they are stored, by reason (``arena.quality.exclusions``, the one
  list of reasons: a vote can carry one fact and one quality reason);
* ``arena_generation_errors_total{model}`` and ``arena_time_to_first_token_seconds{model}``
  -- per served model (public name), from each finished battle side.

State that lives in the database is read at scrape time, so every process reports the same truth
(take ``max`` across replicas): ``arena_votes_left_out{reason}`` -- stored votes per quality reason
now, including the key rules (``outlier_rater``, ``key_share``) that are recomputed before each
refit and so can change. The training app adds its own (``training.metrics``).
"""

from __future__ import annotations

import logging

from django.db.models import Count
from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily

from arena.models import Vote
from arena.quality.exclusions import vote_reasons
from serving.models import ServedModel

logger = logging.getLogger(__name__)

BATTLES = Counter("arena_battles", "Battles created")
VOTES = Counter("arena_votes", "Votes recorded")
VOTES_EXCLUDED = Counter("arena_votes_excluded", "Votes left out of the leaderboard, by reason", ["reason"])
GENERATION_ERRORS = Counter("arena_generation_errors", "Battle answers that ended in an error", ["model"])
TIME_TO_FIRST_TOKEN = Histogram(
    "arena_time_to_first_token_seconds", "Time to the first streamed token of a battle answer", ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)


def vote_recorded(vote: Vote) -> None:
    VOTES.inc()
    for reason in vote_reasons(vote):
        VOTES_EXCLUDED.labels(reason=reason).inc()


def _model_name(model_id: int) -> str:
    """The public name, read each time (one primary-key lookup): names can change, ids are reused."""
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


class VotesLeftOutCollector:
    """Stored votes per quality reason, read when Prometheus scrapes (``describe`` keeps
    registration off the database)."""

    def describe(self):
        yield GaugeMetricFamily("arena_votes_left_out", "Stored votes left out, by quality reason", labels=["reason"])

    def collect(self):
        left_out = GaugeMetricFamily("arena_votes_left_out", "Stored votes left out, by quality reason",
                                     labels=["reason"])
        counts = dict(Vote.objects.exclude(exclusion="").values_list("exclusion").annotate(n=Count("id")))
        for reason in Vote.Exclusion.values:
            if reason:
                left_out.add_metric([reason], counts.get(reason, 0))
        yield left_out


if not any(isinstance(c, VotesLeftOutCollector) for c in list(REGISTRY._collector_to_names)):
    REGISTRY.register(VotesLeftOutCollector())
