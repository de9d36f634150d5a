"""Celery tasks of serving: thin wrappers that call their service (registered names are stable)."""

from celery import shared_task

from serving import health


@shared_task(name="serving.tasks.endpoints_check_health", ignore_result=True)
def endpoints_check_health_task() -> dict:
    """See :func:`serving.health.endpoints_refresh_all`."""
    return health.endpoints_refresh_all()
