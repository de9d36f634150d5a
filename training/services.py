"""Writes of the training app: datasets, launching, running and cancelling jobs, checkpoints.

The web and Celery processes never import torch: ``job_execute`` runs the recipe
(``training.recipes.run``) in a subprocess of the engine environment and follows
it through the job directory protocol of ``training.recipes.progress``.

Services send Celery tasks by their registered name (``JOB_RUN_TASK``) on commit; the thin
task wrappers in ``training.tasks`` import this module, never the other way round.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from arena.contestants import contestant_enter, contestant_hold
from serving.errors import EngineError
from serving.models import ServedModel
from serving.services import served_model_register_adapter
from training import formats, limits
from training.builtin import get_builtin
from training.gate import gate_after_registration, gate_holds
from training.models import Checkpoint, Dataset, Job
from training.recipes import progress
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


class TrainingError(Exception):
    """A request the training app refuses; ``problems`` lists every reason (e.g. each bad row)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        return "\n".join([self.message, *self.problems])


# --- datasets ---------------------------------------------------------------

def _dataset_name(name: str) -> str:
    slug = slugify(name or "")
    if not slug or slug != name:
        raise TrainingError(f"Dataset name {name!r} must be a slug (letters, digits, - and _), e.g. {slug or 'my-data'!r}.")
    if Dataset.objects.filter(name=slug).exists():
        raise TrainingError(f"A dataset named {slug!r} already exists.")
    return slug


def _store_rows(*, name: str, kind: str, rows: list[dict], **fields) -> Dataset:
    path = settings.DATA_DIR / "datasets" / f"{name}.jsonl"
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
    result = formats.parse_dataset(data, fmt, max_bytes=settings.TRAINING_IMPORT_MAX_BYTES,
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
    path = builtin.resolve(settings.BUILTIN_DATA_DIR)
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
    out = settings.DATA_DIR / "tmp" / f"hub-{slugify(hub_id)}-{int(time.time())}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [settings.ENGINE_PYTHON, "-m", "training.tools.hub_export", hub_id, "--split", split, "--out", str(out)]
    try:
        result = subprocess.run(command, cwd=settings.BASE_DIR, capture_output=True, text=True,
                                timeout=settings.TRAINING_HUB_TIMEOUT_S)
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
    from arena.selectors import preference_pairs, unpaired_feedback

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
    from arena.selectors import arena_prompts

    name = _dataset_name(name)
    try:
        prompts = arena_prompts(source)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if source == "arena-hard":  # the gate's held-out prompts never train
        prompts = prompts[: -settings.TRAINING_GATE_HELDOUT_PROMPTS]
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
        config.check_servable(settings.VLLM_MAX_LORA_RANK)
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
    config = job_config(method, preset_name, overrides)
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


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the worker dies, so no training is orphaned."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 16384))
            return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


_METRIC_KEYS = ("step", "epoch", "loss", "learning_rate", "grad_norm", "elapsed_s", "rewards/margins",
                "rewards/accuracies", "rewards/chosen", "rewards/rejected", "kl", "reward", "reward_std",
                "accuracy", "margin")


def job_execute(job_id: int, *, task_id: str = "", worker: str = "", poll_s: float = 1.0) -> Job:
    """Run one job to its end. Safe against redelivery: only a QUEUED job is claimed."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker, celery_task_id=task_id
    )
    job = Job.objects.select_related("base_model__endpoint", "dataset", "init_checkpoint", "reward_model").get(pk=job_id)
    if not claimed:
        logger.info("job %s is %s, not queued: not running it again", job_id, job.status)
        jobs_reap_stale()
        return job
    directory = job.directory()
    directory.mkdir(parents=True, exist_ok=True)
    progress.write_job(
        directory, method=job.method, base_model_path=job.base_model.endpoint.model_dir,
        dataset_path=job.dataset.file, output_dir=directory / "adapter", config=job.config,
        max_lora_rank=settings.VLLM_MAX_LORA_RANK, device=settings.TRAINING_DEVICE or None,
        **({"init_adapter_path": job.init_checkpoint.adapter_path} if job.init_checkpoint else {}),
        **({"reward_model_path": job.reward_model.adapter_path} if job.reward_model else {}),
    )
    log_path = directory / "train.log"
    events_path = directory / progress.PROGRESS_FILE
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            progress.runner_command(settings.ENGINE_PYTHON, directory, num_processes=settings.TRAINING_NUM_PROCESSES),
            cwd=settings.BASE_DIR,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
    try:
        returncode = _job_follow(job, process, directory, log_path, poll_s)
    except BaseException as exc:
        # The worker cannot follow the recipe any more (lost database, shutdown, a bug): stop the
        # recipe before this worker takes another job, and record why instead of "worker killed".
        _recipe_stop(process)
        _job_fail_unfollowed(job, exc)
        raise
    return _job_finish(job, returncode, progress.read_events(events_path), log_path)


def _job_follow(job: Job, process: subprocess.Popen, directory: Path, log_path: Path, poll_s: float) -> int:
    """Record progress and relay a cancel until the recipe exits; returns its exit code."""
    events_path = directory / progress.PROGRESS_FILE
    cancel_sent_at = None
    recorded = -1
    while True:
        returncode = process.poll()
        events = progress.read_events(events_path)
        recorded = _job_record_progress(job, events, log_path, recorded)
        if returncode is not None:
            return returncode
        if cancel_sent_at is None and Job.objects.filter(pk=job.pk, cancel_requested=True).exists():
            progress.request_cancel(directory)
            cancel_sent_at = time.monotonic()
        elif cancel_sent_at is not None and time.monotonic() - cancel_sent_at > settings.TRAINING_CANCEL_GRACE_S:
            process.terminate()  # a step that never ends: SIGTERM also makes the runner stop
        time.sleep(poll_s)


def _recipe_stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the recipe (it stops after its step), SIGKILL it if it does not exit in time; wait for it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _job_fail_unfollowed(job: Job, exc: BaseException, attempts: int = 5) -> None:
    """Mark the job failed with the real reason, retrying while the database comes back."""
    from django.db import close_old_connections

    reason = f"{exc.__class__.__name__}: {exc}".strip()[:1000]
    for attempt in range(attempts):
        try:
            close_old_connections()
            step = Job.objects.filter(pk=job.pk).values_list("step", flat=True).first()
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.FAILED, finished_at=timezone.now(),
                error=f"The worker stopped following this job at step {step} ({reason}); its recipe was stopped.",
            )
            return
        except Exception:  # noqa: BLE001 - the database may be what failed; try again shortly
            logger.warning("job %s: could not record the failure (attempt %d)", job.pk, attempt + 1, exc_info=True)
            time.sleep(2.0 * (attempt + 1))


def _job_record_progress(job: Job, events: list[dict], log_path: Path, recorded: int) -> int:
    """Heartbeat every poll; progress and metrics only when new events arrived. Returns the events recorded."""
    fields: dict = {"heartbeat_at": timezone.now()}
    if len(events) != recorded:
        logs = [e for e in events if e.get("event") == "log"]
        start = next((e for e in events if e.get("event") == "start"), None)
        fields["log_tail"] = _tail(log_path)
        if start:
            fields["total_steps"] = int(start.get("total_steps") or 0)
        if logs:
            fields["step"] = int(logs[-1].get("step") or 0)
            fields["metrics"] = [{k: e[k] for k in _METRIC_KEYS if k in e} for e in logs]
    Job.objects.filter(pk=job.pk).update(**fields)
    return len(events)


def _job_finish(job: Job, returncode: int, events: list[dict], log_path: Path) -> Job:
    final = progress.final_event(events) or {}
    now = timezone.now()
    if returncode == progress.EXIT_OK and final.get("event") == "done":
        try:
            job_register_checkpoint(job, final)
        except EngineError as exc:
            Job.objects.filter(pk=job.pk).update(
                status=Job.Status.FAILED, finished_at=now,
                error=f"Training succeeded but vLLM could not load the adapter, so no contestant was created: {exc}",
            )
        else:
            Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, finished_at=now, error="")
    elif returncode == progress.EXIT_CANCELLED or final.get("event") == "cancelled":
        Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED, finished_at=now)
    else:
        reason = final.get("error") or final.get("message") or _tail(log_path, 15) or "no output"
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            reason = f"killed by {name} (out of memory, or stopped by hand?)\n{reason}"
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED, finished_at=now, error=f"The recipe exited with code {returncode}:\n{reason}"
        )
    job.refresh_from_db()
    return job


def job_register_checkpoint(job: Job, done: dict) -> Checkpoint:
    """Record the adapter, hot-load it into the base model's vLLM server and create its contestant.
    A reward model is recorded as a scorer checkpoint only (never served).

    Raises EngineError when vLLM refuses the adapter; the checkpoint row stays, with no contestant.
    """
    scorer = not config_class(job.method).servable
    checkpoint, _ = Checkpoint.objects.get_or_create(
        job=job,
        defaults={"adapter_path": done["adapter_dir"], "base_model": job.base_model,
                  "parent": job.init_checkpoint, "final_metrics": done.get("metrics") or {},
                  "kind": Checkpoint.Kind.SCORER if scorer else Checkpoint.Kind.CONTESTANT},
    )
    if scorer:
        return checkpoint  # a reward model scores; it never enters the arena
    # the model page shows the description: the lineage reaches the leaderboard's model details through it
    description = (f"{job.get_method_display()} of {job.base_model} on {job.dataset} (job {job.pk}, preset "
                   f"{job.preset or 'custom'}). Lineage: {' → '.join(checkpoint.lineage())}.")
    model = served_model_register_adapter(parent=job.base_model, name=job.contestant_name(),
                                          adapter_path=checkpoint.adapter_path, description=description)
    checkpoint.served_model, checkpoint.adapter_sha256 = model, model.adapter_sha256
    checkpoint.save(update_fields=["served_model", "adapter_sha256"])
    # the arena boosts a new contestant for its first votes; with ARENA_GATE_HOLD it waits for the gate
    (contestant_hold if gate_holds() else contestant_enter)(model)
    gate_after_registration(checkpoint)
    return checkpoint


def jobs_reap_stale() -> list[int]:
    """Mark RUNNING jobs whose worker stopped sending heartbeats as failed, saying why."""
    limit = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT_S)
    reaped = []
    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=limit):
        updated = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=limit).update(
            status=Job.Status.FAILED, finished_at=timezone.now(),
            error=(f"The worker running this job ({job.worker or 'unknown'}) stopped at step {job.step}: "
                   f"no heartbeat for over {settings.TRAINING_HEARTBEAT_TIMEOUT_S} s (killed or crashed)."),
        )
        if updated:
            reaped.append(job.pk)
    return reaped


def starter_jobs_queue() -> list[Job]:
    """On a fresh `make run`: an SFT on real OpenAssistant conversations and a DPO on real HH-RLHF pairs."""
    if not settings.TRAINING_STARTER_JOBS or Job.objects.exists():
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
