"""Running one training job: the recipe in a subprocess of the engine environment, followed to its end.

The web and Celery processes never import torch: :func:`job_execute` (called by
``training.tasks.job_run_task``) claims a QUEUED job, runs ``training.recipes.run`` in the engine
environment and follows it through the job-directory protocol of ``training.recipes.progress``
(progress events, log, cancel flag, heartbeat); on success it registers the checkpoint through
:func:`training.services.job_register_checkpoint`. Any error in the loop stops the recipe and
records the real reason; a recipe never outlives its worker (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from serving.errors import EngineError
from training.models import Job
from training.recipes import backends, progress
from training.services import job_register_checkpoint, jobs_reap_stale

logger = logging.getLogger(__name__)


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
        dataset_path=job.dataset.file, config=job.config,
        output_dir=directory / ("model" if job.config.get("finetuning_type") == "full" else "adapter"),
        max_lora_rank=settings.ARENA_VLLM_MAX_LORA_RANK, device=settings.ARENA_TRAINING_DEVICE or None,
        **({"init_adapter_path": job.init_checkpoint.weights_dir} if job.init_checkpoint else {}),
        **({"reward_model_path": job.reward_model.weights_dir} if job.reward_model else {}),
    )
    log_path = directory / "train.log"
    events_path = directory / progress.PROGRESS_FILE
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            progress.runner_command(settings.ARENA_ENGINE_PYTHON, directory, num_processes=settings.ARENA_TRAINING_PROCESSES,
                                    accelerate_config=_deepspeed_config(job.config)),
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


def _deepspeed_config(config: dict):
    """The accelerate config file of the job's DeepSpeed stage, or None. On a worker not declared
    cuda the runner starts plain, so that it refuses the job naming the missing GPU (accelerate's
    DeepSpeed launcher would fail first, less clearly)."""
    stage = config.get("deepspeed", "none")
    if stage == "none" or settings.ARENA_TRAINING_DEVICE != "cuda":
        return None
    return backends.accelerate_config(stage)


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
        elif cancel_sent_at is not None and time.monotonic() - cancel_sent_at > settings.ARENA_TRAINING_CANCEL_GRACE_S:
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
            what = "serve the model" if final.get("finetuning_type") == "full" else "load the adapter"
            Job.objects.filter(pk=job.pk).update(
                status=Job.Status.FAILED, finished_at=now,
                error=f"Training succeeded but vLLM could not {what}, so no contestant was created: {exc}",
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


