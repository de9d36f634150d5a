"""Exports asked for in the admin, written by a training worker.

The weights (and, for a merge, the base model and the engine environment) are where the training
workers run, which in a scaled-out deployment is not the web machine, and merging a 7B model takes
minutes, longer than a proxy waits for a request. So the admin's export action only records a
:class:`~training.models.ModelExport` and sends ``EXPORT_TASK`` on commit (the training queue, behind
any running fine-tune); the worker runs :func:`training.export.checkpoint_export` and records the
folder and files, or the reason it failed, which the checkpoint's page shows.

Contract:
* :func:`export_request` refuses at once (TrainingError) what cannot be exported: a job that did not
  succeed, a merged reward model. The folder is ``ARENA_DATA_DIR/exports/<name>-<format>-<time>``
  on the worker.
* :func:`export_run` claims a queued export (a redelivered message finds it claimed and does
  nothing), writes it, and ends it done or failed; an unexpected error is logged in full and
  recorded as a one-line reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training.errors import TrainingError
from training.export import checkpoint_export
from training.models import Checkpoint, ModelExport

logger = logging.getLogger(__name__)

#: The registered name of ``training.tasks.checkpoint_export_task`` (routed to the training queue).
EXPORT_TASK = "training.tasks.checkpoint_export"


def export_request(checkpoint: Checkpoint, *, merge: bool, created_by=None) -> ModelExport:
    """Record an export of ``checkpoint`` and queue it for a training worker; raises TrainingError."""
    if checkpoint.job.status != checkpoint.job.Status.SUCCEEDED:
        raise TrainingError(f"Job {checkpoint.job_id} did not succeed: there is nothing to export.")
    if merge and checkpoint.kind == Checkpoint.Kind.SCORER:
        raise TrainingError("A reward model is an adapter with a score head: export its adapter, not a merge.")
    name = checkpoint.served_model.public_name if checkpoint.served_model else checkpoint.job.contestant_name()
    fmt = "full" if checkpoint.is_full() else "merged" if merge else "adapter"
    folder = Path(settings.ARENA_DATA_DIR) / "exports" / f"{name}-{fmt}-{timezone.now():%Y%m%d-%H%M%S-%f}"
    with transaction.atomic():
        export = ModelExport.objects.create(checkpoint=checkpoint, merge=merge, folder=str(folder),
                                            created_by=created_by)
        transaction.on_commit(lambda: _send(export.pk))
    return export


def _send(export_id: int) -> None:
    try:
        current_app.send_task(EXPORT_TASK, args=[export_id])
    except Exception:  # noqa: BLE001 - any broker error: recorded on the export, where the admin looks
        logger.exception("could not queue export %s", export_id)
        ModelExport.objects.filter(pk=export_id, status=ModelExport.Status.QUEUED).update(
            status=ModelExport.Status.FAILED, finished_at=timezone.now(),
            error="The export could not be queued (the task broker did not answer); ask for it again.")


def export_run(export_id: int) -> ModelExport:
    """The task's body: write a queued export and record how it ended (see the module contract)."""
    claimed = ModelExport.objects.filter(pk=export_id, status=ModelExport.Status.QUEUED).update(
        status=ModelExport.Status.RUNNING)
    export = ModelExport.objects.select_related("checkpoint__job").get(pk=export_id)
    if not claimed:
        return export  # already taken (a redelivered message) or ended
    fields: dict = {}
    try:
        Path(export.folder).parent.mkdir(parents=True, exist_ok=True)  # ARENA_DATA_DIR/exports on this worker
        result = checkpoint_export(export.checkpoint, Path(export.folder), merge=export.merge)
    except TrainingError as exc:
        fields.update(status=ModelExport.Status.FAILED, error=exc.message)
    except Exception as exc:  # noqa: BLE001 - recorded (a safe line) and logged (in full), never lost
        logger.exception("export %s failed", export_id)
        fields.update(status=ModelExport.Status.FAILED,
                      error=f"Unexpected {type(exc).__name__}; the worker's log has the details.")
    else:
        fields.update(status=ModelExport.Status.DONE, format=result.format, files=result.files,
                      folder=str(result.folder))
    fields["finished_at"] = timezone.now()
    ModelExport.objects.filter(pk=export_id).update(**fields)
    export.refresh_from_db()
    return export
