"""Celery tasks of the training queue (a GPU worker in production: -Q training -c 1 --prefetch-multiplier 1)."""

from celery import shared_task

from training import services


# acks_late: the message is acknowledged only when the run ends, so a lost worker's job
# is not silently dropped by the broker; job_execute's claim makes a redelivery harmless.
@shared_task(bind=True, acks_late=True, ignore_result=True)
def job_run(self, job_id: int) -> str:
    return services.job_execute(job_id, task_id=self.request.id or "", worker=self.request.hostname or "").status


@shared_task(ignore_result=True)
def jobs_reap_stale() -> list[int]:
    return services.jobs_reap_stale()


@shared_task(ignore_result=True)
def jobs_dispatch_unsent() -> list[int]:
    return services.jobs_dispatch_unsent()
