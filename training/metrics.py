"""The training app's Prometheus metrics, read from the database when Prometheus scrapes (every
process reports the same truth; take ``max`` across replicas): ``arena_training_jobs{status}``.
``config.metrics`` exports them with the arena's at /metrics."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import REGISTRY, GaugeMetricFamily

from training.models import Job


class TrainingJobsCollector:
    """Training jobs by status (``describe`` keeps registration off the database)."""

    def describe(self):
        yield GaugeMetricFamily("arena_training_jobs", "Training jobs by status", labels=["status"])

    def collect(self):
        jobs = GaugeMetricFamily("arena_training_jobs", "Training jobs by status", labels=["status"])
        counts = dict(Job.objects.values_list("status").annotate(n=Count("id")))
        for status in Job.Status.values:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs


if not any(isinstance(c, TrainingJobsCollector) for c in list(REGISTRY._collector_to_names)):
    REGISTRY.register(TrainingJobsCollector())
