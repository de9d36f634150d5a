"""Dataset previews: the rows as a recipe sees them, their token lengths and what each preset's
``max_length`` would cut or drop, computed by a worker and stored on the dataset.

``dataset_preview_request`` marks the dataset "computing" and sends ``DATASET_PREVIEW_TASK`` (the
default queue: it takes seconds, and must not wait behind a training run) on commit;
``dataset_preview_compute`` (the task's body) runs ``training.tools.token_lengths`` in the engine
environment, where the tokenizers are, with the base model's local directory, and stores either
the summary (``training.preview_stats``) or a one-line reason the admin can act on. Nothing is
downloaded: a base model without local tokenizer files fails, saying so.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from serving.models import ServedModel
from training.errors import TrainingError
from training.models import Dataset, PreviewStatus
from training.preview_stats import preview_summary

logger = logging.getLogger(__name__)

#: The registered name of ``training.tasks.dataset_preview_task`` (default queue).
DATASET_PREVIEW_TASK = "training.tasks.dataset_preview"
#: How many of the first rows the page renders.
PREVIEW_ROWS = 5
#: A hang guard for the tool; measuring its 20,000-row cap takes about a minute of CPU.
PREVIEW_TIMEOUT_S = 600
#: Still "computing" this long after the request, a preview has no live task: the tool's own timeout
#: has passed, so no worker took the task (none serves the default queue) or the worker died.
PREVIEW_STALLED_S = PREVIEW_TIMEOUT_S + 120


def preview_bases():
    """Base models whose weights (and so tokenizer) are on this server: the choices of the page's form."""
    return ServedModel.objects.filter(kind=ServedModel.Kind.BASE, active=True).exclude(endpoint__model_dir="") \
        .select_related("endpoint").order_by("public_name")


def default_preview_base() -> ServedModel | None:
    """The base a first preview uses: the local SmolLM2 (the starter jobs' base) when there, else the first."""
    bases = preview_bases()
    return bases.filter(endpoint__name="local-smollm2").first() or bases.first()


def dataset_preview_request(dataset: Dataset, base: ServedModel | None = None) -> Dataset:
    """Mark the preview computing for ``base`` (default: ``default_preview_base``) and queue its task.

    Raises TrainingError when no base model has local weights to tokenize with.
    """
    base = base or default_preview_base()
    if base is None:
        raise TrainingError("No active base model has local weights to take a tokenizer from (its endpoint's "
                            "model_dir); register one to preview datasets.")
    if base.kind != ServedModel.Kind.BASE or not base.endpoint.model_dir:
        raise TrainingError(f"{base} is not a base model with local weights; pick another.")
    with transaction.atomic():
        Dataset.objects.filter(pk=dataset.pk).update(
            preview_status=PreviewStatus.COMPUTING, preview_base=base, preview_error="", preview_at=timezone.now())
        transaction.on_commit(lambda: _send(dataset.pk, base.pk))
    dataset.refresh_from_db()
    return dataset


def preview_stalled(dataset: Dataset) -> bool:
    """True when the preview has been "computing" for longer than ``PREVIEW_STALLED_S``: the page
    stops waiting and says why (the status is left alone: a late result still lands)."""
    return (dataset.preview_status == PreviewStatus.COMPUTING and dataset.preview_at is not None
            and (timezone.now() - dataset.preview_at).total_seconds() > PREVIEW_STALLED_S)


def dataset_preview_ensure(dataset: Dataset) -> Dataset:
    """Request the first preview of a dataset that has none; a no-op otherwise (or with no base to use)."""
    if dataset.preview_status != PreviewStatus.NONE:
        return dataset
    try:
        return dataset_preview_request(dataset)
    except TrainingError as exc:
        Dataset.objects.filter(pk=dataset.pk, preview_status=PreviewStatus.NONE).update(
            preview_status=PreviewStatus.FAILED, preview_error=exc.message, preview_at=timezone.now())
        dataset.refresh_from_db()
        return dataset


def _send(dataset_id: int, base_id: int) -> None:
    try:
        current_app.send_task(DATASET_PREVIEW_TASK, args=[dataset_id, base_id])
    except Exception:  # noqa: BLE001 - any broker error: say so on the page, where "compute again" retries
        logger.exception("could not queue the preview of dataset %s", dataset_id)
        Dataset.objects.filter(pk=dataset_id, preview_status=PreviewStatus.COMPUTING).update(
            preview_status=PreviewStatus.FAILED,
            preview_error="The preview could not be queued (the task broker did not answer); compute it again.")


def dataset_preview_compute(dataset_id: int, base_id: int) -> Dataset:
    """Run the tool for one dataset and base model and store its summary, or why it failed."""
    dataset = Dataset.objects.get(pk=dataset_id)
    base = ServedModel.objects.select_related("endpoint").filter(pk=base_id).first()
    try:
        if base is None:
            raise TrainingError("The base model chosen for this preview no longer exists; compute it again.")
        measured = _measure(dataset, base)
    except TrainingError as exc:
        fields = {"preview_status": PreviewStatus.FAILED, "preview_error": exc.message, "preview": {}}
    else:
        summary = preview_summary(measured, dataset.kind)
        fields = {"preview_status": PreviewStatus.READY, "preview_error": "",
                  "preview": {**summary, "base": base.public_name, "tokenizer_dir": base.endpoint.model_dir}}
    # a newer request (another base) wins over this result
    Dataset.objects.filter(pk=dataset_id, preview_base_id=base_id).update(preview_at=timezone.now(), **fields)
    dataset.refresh_from_db()
    return dataset


def _measure(dataset: Dataset, base: ServedModel) -> dict:
    """What ``training.tools.token_lengths`` prints; raises TrainingError with its one-line reason."""
    python = settings.ARENA_ENGINE_PYTHON
    if not Path(python).exists():
        raise TrainingError(f"The engine environment ({python}, ARENA_ENGINE_PYTHON) is missing on this worker: "
                            "the tokenizers live there.")
    command = [python, "-m", "training.tools.token_lengths", dataset.file, "--kind", dataset.kind,
               "--tokenizer", base.endpoint.model_dir, "--rows", str(PREVIEW_ROWS)]
    try:
        result = subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True, text=True,
                                timeout=PREVIEW_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TrainingError(f"Measuring the rows took over {PREVIEW_TIMEOUT_S} s and was stopped.") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {result.returncode}"
        raise TrainingError(f"With {base}'s tokenizer: {reason[:600]}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise TrainingError("The measuring tool printed no readable result.") from None
