"""Writes of the training app: datasets, launching and cancelling jobs, checkpoints.

Running a job (the recipe subprocess and its progress) is :mod:`training.execution`; it
registers the result through :func:`job_register_checkpoint` here.

Services send Celery tasks by their registered name (``JOB_RUN_TASK``) on commit; the thin
task wrappers in ``training.tasks`` import this module, never the other way round.
"""

from __future__ import annotations

import logging
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from arena.pairing.contestants import contestant_enter, contestant_hold
from arena.selectors import arena_prompts, preference_pairs, unpaired_feedback
from serving.models import ServedModel
from serving.services import served_model_register_adapter, served_model_register_full
from training import formats, limits
from training.builtin import get_builtin
from training.errors import TrainingError
from training.gate import gate_after_registration, gate_holds
from training.models import Checkpoint, Dataset, Job
from training.recipes.backends import gpu_refusal
from training.recipes.config import (
    RecipeConfigError,
    apply_overrides,
    config_class,
    config_from_dict,
    preset,
)

logger = logging.getLogger(__name__)

#: The registered name of ``training.tasks.job_run_task`` (routed to the training queue in settings).
JOB_RUN_TASK = "training.tasks.job_run"


# --- datasets ---------------------------------------------------------------

def _dataset_name(name: str) -> str:
    slug = slugify(name or "")
    if not slug or slug != name:
        raise TrainingError(f"Dataset name {name!r} must be a slug (letters, digits, - and _), e.g. {slug or 'my-data'!r}.")
    if Dataset.objects.filter(name=slug).exists():
        raise TrainingError(f"A dataset named {slug!r} already exists.")
    return slug


def _store_rows(*, name: str, kind: str, rows: list[dict], **fields) -> Dataset:
    path = settings.ARENA_DATA_DIR / "datasets" / f"{name}.jsonl"
    formats.write_jsonl(rows, path)
    try:
        return Dataset.objects.create(name=name, kind=kind, file=str(path), row_count=len(rows), **fields)
    except Exception:
        path.unlink(missing_ok=True)
        raise


def dataset_import(*, name: str, data, fmt: str, source: str = Dataset.Source.UPLOAD, source_ref: str = "",
                   license: str = "", commercial_use: bool | None = None, description: str = "",
                   created_by=None, skip_invalid: bool = False) -> Dataset:
    """Validate every row of ``data`` (bytes, a path or a binary file object such as an upload; JSON Lines,
    JSON array, gzip) and store them normalised, within the bounds of ``training.limits``.

    Strict (the default): raises TrainingError listing each bad row's line number and reason; then
    nothing is stored. ``skip_invalid``: stores the valid rows and records every skipped line with
    its reason on the dataset (``skipped_count``, ``skipped_rows``); a file-level problem (not
    UTF-8, not JSON, no valid row at all) is still refused whole.
    """
    name = _dataset_name(name)
    if fmt not in formats.FORMATS:
        raise TrainingError(f"Unknown format {fmt!r}; choose from {', '.join(formats.FORMATS)}.")
    try:
        limits.check_size(data)
    except limits.ImportRefused as exc:
        raise TrainingError(str(exc)) from None
    result = formats.parse_dataset(data, fmt, max_bytes=settings.ARENA_IMPORT_MAX_BYTES,
                                   max_errors=formats.UNLIMITED_ERRORS if skip_invalid else formats.MAX_REPORTED_ERRORS)
    if result.too_large:
        raise TrainingError(f"The file cannot be imported: {result.errors[-1].reason} (ARENA_IMPORT_MAX_BYTES); "
                            "nothing was stored.")
    file_level = [e for e in result.errors if e.line == 0]
    if not result.ok and (not skip_invalid or file_level or not result.rows):
        why = "no valid row is left" if skip_invalid and not file_level else "nothing was stored"
        raise TrainingError(f"The file has {result.error_count} invalid row(s); {why}.",
                            result.error_lines())
    skipped = [{"line": e.line, "reason": e.reason} for e in result.errors]
    return _store_rows(name=name, kind=result.kind, rows=result.rows, format=fmt, source=source,
                       source_ref=source_ref, license=license, commercial_use=commercial_use,
                       description=description, created_by=created_by, skipped_count=len(skipped),
                       skipped_rows=skipped)


def dataset_from_builtin(key: str, *, name: str | None = None, created_by=None) -> Dataset:
    builtin = get_builtin(key)
    path = builtin.resolve(settings.ARENA_BUILTIN_DATA_DIR)
    if not path.is_file():
        raise TrainingError(f"Built-in dataset file {path} is missing (ARENA_BUILTIN_DATA_DIR).")
    return dataset_import(name=name or builtin.name, data=path, fmt=builtin.format, source=Dataset.Source.BUILTIN,
                          source_ref=builtin.path, license=builtin.license, commercial_use=builtin.commercial_use,
                          description=f"{builtin.source}. {builtin.notes}".strip(), created_by=created_by)


def dataset_from_path(path: str, *, name: str, fmt: str, created_by=None, roots: list[Path] | None = None,
                      **fields) -> Dataset:
    """Import a file on the server. Only files under ``roots`` (default: ARENA_IMPORT_ROOTS) are read;
    the command line, whose user can read the disk anyway, passes its own file's directory."""
    try:
        resolved = limits.server_path(path, roots)
    except limits.ImportRefused as exc:
        raise TrainingError(str(exc)) from None
    return dataset_import(name=name, data=resolved, fmt=fmt, source=Dataset.Source.PATH, source_ref=str(resolved),
                          created_by=created_by, **fields)


def dataset_from_hub(hub_id: str, *, name: str, fmt: str, split: str = "train", created_by=None,
                     skip_invalid: bool = False) -> Dataset:
    """Load a Hugging Face hub dataset in the engine environment (which has ``datasets``) and import it.

    Fails with TrainingError, saying so, when the hub cannot be reached. The id and split are
    checked (``training.limits``) before any subprocess sees them.
    """
    try:
        hub_id, split = limits.hub_id(hub_id), limits.hub_split(split)
    except limits.ImportRefused as exc:
        raise TrainingError(str(exc)) from None
    out = settings.ARENA_DATA_DIR / "tmp" / f"hub-{slugify(hub_id)}-{int(time.time())}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [settings.ARENA_ENGINE_PYTHON, "-m", "training.tools.hub_export", hub_id, "--split", split, "--out", str(out)]
    try:
        result = subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True, text=True,
                                timeout=settings.ARENA_TRAINING_HUB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TrainingError(f"Loading {hub_id!r} from the Hugging Face hub timed out.") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise TrainingError(f"Could not load {hub_id!r} from the Hugging Face hub: "
                            f"{lines[-1] if lines else 'unknown error'}")
    if not out.is_file():
        raise TrainingError(f"Loading {hub_id!r} from the Hugging Face hub wrote no file.")
    try:
        return dataset_import(name=name, data=out, fmt=fmt, source=Dataset.Source.HUB, source_ref=hub_id,
                              created_by=created_by, skip_invalid=skip_invalid)
    finally:
        out.unlink(missing_ok=True)


def dataset_from_arena_votes(*, name: str, created_by=None, unpaired: bool = False) -> Dataset:
    """The arena's votes as a dataset: the loop no other arena closes.

    Preference pairs from decisive votes (DPO, reward models), or with ``unpaired`` every
    counted vote as KTO rows: ties and "both are bad" votes count too.
    """
    name = _dataset_name(name)
    rows = unpaired_feedback() if unpaired else preference_pairs()
    if not rows:
        what = "counted" if unpaired else "decisive, counted"
        raise TrainingError(f"There are no {what} votes yet to build a dataset from.")
    if unpaired:
        kind, fmt = Dataset.Kind.UNPAIRED, "kto"
        description = ("Prompt = each side's conversation up to the last user turn, completion = its answer; label "
                       "true for a winner or a tie, false for a loser or a 'both are bad' vote. Identity leaks and "
                       "errored sides excluded.")
    else:
        kind, fmt = Dataset.Kind.PREFERENCE, "preference"
        description = ("Prompt = conversation up to the last user turn; chosen = the winner's answer, rejected = "
                       "the loser's. Ties, both-bad, identity leaks and errored sides excluded.")
    return _store_rows(name=name, kind=kind, rows=rows, format=fmt, source=Dataset.Source.ARENA,
                       source_ref=f"{len(rows)} {'answers' if unpaired else 'votes'}",
                       license="Arena votes of this deployment", created_by=created_by, description=description)


def dataset_from_arena_prompts(*, name: str, source: str = "arena-hard", created_by=None) -> Dataset:
    """A prompt dataset (online RL) from the arena's shipped real prompts (ARENA_PROMPTS_DIR), less
    the arena-hard prompts the gate keeps held out (``training.gate``)."""
    name = _dataset_name(name)
    try:
        prompts = arena_prompts(source)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if source == "arena-hard":  # the gate's held-out prompts never train
        prompts = prompts[: -settings.ARENA_GATE_HELDOUT_PROMPTS]
    if not prompts:
        raise TrainingError(f"No {source} prompts found in {settings.ARENA_PROMPTS_DIR}.")
    rows = [{"prompt": [{"role": "user", "content": p}]} for p in prompts]
    return _store_rows(name=name, kind=Dataset.Kind.PROMPT, rows=rows, format="prompts", source=Dataset.Source.ARENA,
                       source_ref=f"{source} prompts", license="See the prompt source's license",
                       created_by=created_by, description=f"{len(rows)} {source} prompts from the arena's prompt set.")


# --- jobs -------------------------------------------------------------------

def job_config(method: str, preset_name: str, overrides) -> dict:
    """The full recipe config: a preset plus ``key=value`` overrides (a list) or a dict. Raises TrainingError."""
    try:
        config = preset(method, preset_name) if preset_name else config_from_dict(method, {})
        if isinstance(overrides, dict):
            config = config.updated(overrides)
        elif overrides:
            config = apply_overrides(config, overrides)
        config.validate()
        config.check_servable(settings.ARENA_VLLM_MAX_LORA_RANK)
    except (RecipeConfigError, KeyError, ValueError) as exc:
        problems = list(getattr(exc, "problems", []) or [str(exc)])
        raise TrainingError("The recipe configuration is invalid.", problems) from None
    return config.to_dict()


@transaction.atomic
def job_launch(*, base_model: ServedModel, method: str, dataset: Dataset, preset_name: str = "",
               overrides=None, created_by=None, init_checkpoint: Checkpoint | None = None,
               reward_model: Checkpoint | None = None) -> Job:
    """Validate and queue a fine-tune on the training queue; the same path for the admin, CLI and starter jobs."""
    if method not in Job.Method.values:
        raise TrainingError(f"Unknown method {method!r}; choose one of {', '.join(Job.Method.values)}.")
    _check_checkpoints(method, base_model, init_checkpoint, reward_model)
    kind = config_class(method).dataset_kind
    if dataset.kind != kind:
        raise TrainingError(f"{method.upper()} needs {'an' if kind[0] in 'aeiou' else 'a'} {kind} dataset; {dataset.name} is {dataset.kind}.")
    if base_model.kind != ServedModel.Kind.BASE:
        raise TrainingError("Pick a base model; to continue an adapter, pass its checkpoint as init_checkpoint.")
    if not base_model.endpoint.model_dir:
        raise TrainingError(f"{base_model} has no weights directory on this server (its endpoint's model_dir).")
    if init_checkpoint is not None and init_checkpoint.base_model_id != base_model.pk:
        raise TrainingError("The checkpoint to continue was trained on another base model.")
    if init_checkpoint is not None and init_checkpoint.is_full():
        # the job's base weights would have to be that directory, and its result a child of that
        # checkpoint's own engine: not supported, so refused rather than trained on the wrong base
        raise TrainingError("Continuing a full fine-tune is not supported: pick a LoRA checkpoint, or train "
                            "from the base model again.")
    config = job_config(method, preset_name, overrides)
    refusal = gpu_refusal(config, settings.ARENA_TRAINING_DEVICE)
    if refusal:
        raise TrainingError(refusal)
    job = Job.objects.create(base_model=base_model, method=method, dataset=dataset, preset=preset_name,
                             config=config, created_by=created_by, init_checkpoint=init_checkpoint,
                             reward_model=reward_model)
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _check_checkpoints(method: str, base_model: ServedModel, init: Checkpoint | None,
                       reward_model: Checkpoint | None) -> None:
    """A policy continues a contestant, never a scorer; GRPO, and only GRPO, needs a scorer of the same base."""
    if init is not None and init.kind == Checkpoint.Kind.SCORER:
        raise TrainingError("A reward model cannot be continued as a policy; pick a contestant checkpoint.")
    if method == Job.Method.GRPO:
        if reward_model is None or reward_model.kind != Checkpoint.Kind.SCORER:
            raise TrainingError("GRPO trains against a reward model: pick a reward-model checkpoint (a scorer).")
        if reward_model.base_model_id != base_model.pk:
            raise TrainingError("The reward model was trained on another base model.")
    elif reward_model is not None:
        raise TrainingError(f"Only GRPO takes a reward model, not {method.upper()}.")


def _enqueue(job_id: int) -> None:
    """Send ``job_run_task`` to the training queue. A broker failure is logged, not raised: the job
    stays queued without a task id, and ``jobs_dispatch_unsent`` (periodic) sends it again."""
    try:
        result = current_app.send_task(JOB_RUN_TASK, args=[job_id])
    except Exception:  # noqa: BLE001 - any broker error; the periodic dispatcher retries
        logger.exception("could not send job %s to the training queue; it will be retried", job_id)
        return
    Job.objects.filter(pk=job_id, celery_task_id="").update(celery_task_id=result.id or "")


def jobs_dispatch_unsent(min_age_s: float = 30.0) -> list[int]:
    """Send queued jobs whose message never reached the broker. Harmless if one did: only a QUEUED job is claimed."""
    limit = timezone.now() - timedelta(seconds=min_age_s)
    job_ids = list(Job.objects.filter(status=Job.Status.QUEUED, celery_task_id="", created_at__lt=limit)
                   .values_list("pk", flat=True))
    for job_id in job_ids:
        _enqueue(job_id)
    return job_ids


def job_cancel(job: Job) -> Job:
    """Queued jobs are cancelled at once; running ones stop after their current step."""
    if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now(), cancel_requested=True
    ):
        pass
    else:
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def job_register_checkpoint(job: Job, done: dict) -> Checkpoint:
    """Record the adapter, hot-load it into the base model's vLLM server and create its contestant.
    A full fine-tune gets a managed endpoint of its own instead (its engine starts in the background:
    the contestant battles once it is healthy). A reward model is recorded as a scorer checkpoint
    only (never served).

    Raises EngineError when vLLM refuses the adapter; the checkpoint row stays, with no contestant.
    """
    scorer = not config_class(job.method).servable
    full = done.get("finetuning_type") == Checkpoint.FinetuningType.FULL
    checkpoint, created = Checkpoint.objects.get_or_create(
        job=job,
        defaults={"weights_dir": done["adapter_dir"], "base_model": job.base_model,
                  "parent": job.init_checkpoint, "final_metrics": done.get("metrics") or {},
                  "kind": Checkpoint.Kind.SCORER if scorer else Checkpoint.Kind.CONTESTANT,
                  "finetuning_type": Checkpoint.FinetuningType.FULL if full else Checkpoint.FinetuningType.LORA},
    )
    if scorer:  # a reward model scores; it never enters the arena (its skipped gate run says so)
        if created:
            gate_after_registration(checkpoint)
        return checkpoint
    # the model page shows the description: the lineage reaches the leaderboard's model details through it
    what = "Full fine-tune" if full else "LoRA adapter"
    description = (f"{job.get_method_display()} of {job.base_model} on {job.dataset} ({what}; job {job.pk}, preset "
                   f"{job.preset or 'custom'}). Lineage: {' → '.join(checkpoint.lineage())}.")
    if full:  # a whole model: served by an engine of its own, which the engine supervisor starts
        model = served_model_register_full(parent=job.base_model, name=job.contestant_name(),
                                           model_dir=checkpoint.weights_dir, description=description)
    else:
        model = served_model_register_adapter(parent=job.base_model, name=job.contestant_name(),
                                              adapter_path=checkpoint.weights_dir, description=description)
    checkpoint.served_model, checkpoint.adapter_sha256 = model, model.adapter_sha256
    checkpoint.save(update_fields=["served_model", "adapter_sha256"])
    # the arena boosts a new contestant for its first votes; with ARENA_GATE_HOLD it waits for the gate
    (contestant_hold if gate_holds() else contestant_enter)(model)
    gate_after_registration(checkpoint)
    return checkpoint


def jobs_reap_stale() -> list[int]:
    """Mark RUNNING jobs whose worker stopped sending heartbeats as failed, saying why."""
    limit = timezone.now() - timedelta(seconds=settings.ARENA_TRAINING_HEARTBEAT_TIMEOUT_S)
    reaped = []
    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=limit):
        updated = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=limit).update(
            status=Job.Status.FAILED, finished_at=timezone.now(),
            error=(f"The worker running this job ({job.worker or 'unknown'}) stopped at step {job.step}: "
                   f"no heartbeat for over {settings.ARENA_TRAINING_HEARTBEAT_TIMEOUT_S} s (killed or crashed)."),
        )
        if updated:
            reaped.append(job.pk)
    return reaped


def starter_jobs_queue() -> list[Job]:
    """On a fresh `make run`: an SFT on real OpenAssistant conversations and a DPO on real HH-RLHF pairs."""
    if not settings.ARENA_STARTER_JOBS or Job.objects.exists():
        return []
    base = ServedModel.objects.filter(kind=ServedModel.Kind.BASE, active=True).exclude(endpoint__model_dir="")
    base = base.filter(endpoint__name="local-smollm2").first() or base.first()
    if base is None:
        return []
    jobs = []
    for method, key in ((Job.Method.SFT, "oasst-en-messages"), (Job.Method.DPO, "hh-rlhf-helpful-base-test")):
        try:
            dataset = Dataset.objects.filter(name=key).first() or dataset_from_builtin(key)
        except TrainingError as exc:
            logger.warning("starter %s job skipped: %s", method, exc)
            continue
        jobs.append(job_launch(base_model=base, method=method, dataset=dataset, preset_name="cpu-smoke"))
    return jobs
