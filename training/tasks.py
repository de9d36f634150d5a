"""Celery tasks of the training queue (a GPU worker in production: -Q training -c 1 --prefetch-multiplier 1).

One rule: a service does the work and sends ``*_task`` on commit; a task is a thin wrapper that
calls its service. Dependencies go one way: this module imports ``training.services``, and the
services send tasks by their registered name (``services.JOB_RUN_TASK``), never importing this
module. The registered names are kept explicit (``name=``) so that messages already queued and
the beat schedule and routes in ``config.settings`` keep working.
"""

from celery import shared_task

from training import execution, export_queue, gate, previews, services


# acks_late: the message is acknowledged only when the run ends, so a lost worker's job
# is not silently dropped by the broker; job_execute's claim makes a redelivery harmless.
@shared_task(name=services.JOB_RUN_TASK, bind=True, acks_late=True, ignore_result=True)
def job_run_task(self, job_id: int) -> str:
    return execution.job_execute(job_id, task_id=self.request.id or "", worker=self.request.hostname or "").status


@shared_task(name="training.tasks.jobs_reap_stale", ignore_result=True)
def jobs_reap_stale_task() -> list[int]:
    return services.jobs_reap_stale()


@shared_task(name="training.tasks.jobs_dispatch_unsent", ignore_result=True)
def jobs_dispatch_unsent_task() -> list[int]:
    return services.jobs_dispatch_unsent()


@shared_task(name=gate.GATE_TASK, ignore_result=True)
def gate_run_task(checkpoint_id: int) -> str:
    return gate.gate_run_for(checkpoint_id).status


@shared_task(name=previews.DATASET_PREVIEW_TASK, ignore_result=True)
def dataset_preview_task(dataset_id: int, base_id: int) -> str:
    return previews.dataset_preview_compute(dataset_id, base_id).preview_status


@shared_task(name=export_queue.EXPORT_TASK, ignore_result=True)
def checkpoint_export_task(export_id: int) -> str:
    return export_queue.export_run(export_id).status
