"""The job-directory protocol between the training task and ``training.recipes.run``.

Standard library only (used by the web/Celery side and by the engine-side runner).

``JOB_DIR/job.json`` (written by the caller, see ``write_job``)::

    {"method": "sft" | "dpo" | "kto" | "reward" | "grpo" | "pretrain",
     "base_model_path": str, "dataset_path": str,
     "output_dir": str, "config": {...recipe config...},
     "max_lora_rank": 16,          # optional, the vLLM server's --max-lora-rank
     "device": "cpu" | "cuda",     # optional, default: cuda when available, else cpu
     "init_adapter_path": str,     # optional, continue training this saved LoRA adapter
                                   # (same base model) instead of creating a new one
     "reward_model_path": str}     # GRPO: the reward model (a scorer's saved adapter)

With ``init_adapter_path`` the saved adapter keeps the init adapter's rank, alpha and
target modules (the config's ``lora_*`` fields are not applied), so it stays servable by
the same vLLM server; DPO then uses a frozen copy of the init adapter (the SFT policy) as
its reference model, not the bare base model.

``JOB_DIR/progress.jsonl`` (appended by the runner, one JSON object per line, each line
written with a single ``write`` + flush + fsync, so a reader sees whole lines; a reader
should still ignore a last line without its newline). Non-finite numbers are written as
null. Every event has ``event`` and
``ts`` (unix time). Events, in order:

* ``init``: ``pid``, ``method`` -- the process is up (model loading follows).
* ``start``: ``total_steps``, ``num_rows`` (rows read), ``num_train_rows`` (left after
  TRL drops rows truncated to nothing or too long, and GRPO its over-long prompts), ``num_epochs``, ``method``, ``config``,
  ``device``, ``num_threads``, ``init_adapter_path`` (null for a new adapter), ``lora``
  (the adapter actually trained: ``r``, ``lora_alpha``, ``target_modules``; null for a full
  fine-tune) and, for DPO, ``reference``: ``"base"`` (a new adapter: the base model with the
  adapter disabled), ``"init_adapter"`` (a frozen copy of the adapter being continued) or
  ``"model_copy"`` (a full fine-tune: TRL's frozen copy of the starting model).
* ``log`` (every ``logging_steps``): ``step``, ``total_steps``, ``epoch``, ``elapsed_s``
  and the trainer's numbers as logged: ``loss``, ``learning_rate``, ``grad_norm``; DPO
  adds ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies``,
  ``rewards/margins``, ``logps/chosen``, ``logps/rejected``, ... (TRL's names).
* exactly one final event:
  ``done``: ``adapter_dir`` (the saved adapter, or the full model's directory),
  ``finetuning_type`` (``"lora"`` or ``"full"``), ``model_dir`` (the full model's
  directory, null for an adapter), ``metrics`` (``train_loss``, ``train_runtime``, ``steps``,
  ``s_per_step``, ``peak_rss_mb``, ``num_rows``, ...);
  ``cancelled``: ``step``, ``total_steps``, ``elapsed_s`` (no adapter is saved);
  ``error``: ``error`` (traceback tail, at most ``ERROR_TAIL_CHARS``), ``message``
  (one line: ``ExceptionType: text``).

Cancel: create ``JOB_DIR/cancel`` (``request_cancel``); the runner checks it after every
optimizer step (and before training starts) and stops. SIGTERM does the same.

Exit codes: ``EXIT_OK`` 0 (done), ``EXIT_ERROR`` 1 (error), ``EXIT_CANCELLED`` 3.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
PROGRESS_FILE = "progress.jsonl"
CANCEL_FILE = "cancel"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CANCELLED = 3

FINAL_EVENTS = ("done", "error", "cancelled")
ERROR_TAIL_CHARS = 4000


def write_job(
    job_dir: str | os.PathLike,
    *,
    method: str,
    base_model_path: str | os.PathLike,
    dataset_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: dict[str, Any],
    max_lora_rank: int | None = None,
    device: str | None = None,
    init_adapter_path: str | os.PathLike | None = None,
    reward_model_path: str | os.PathLike | None = None,
) -> Path:
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    job: dict[str, Any] = {
        "method": method,
        "base_model_path": str(base_model_path),
        "dataset_path": str(dataset_path),
        "output_dir": str(output_dir),
        "config": config,
    }
    if max_lora_rank is not None:
        job["max_lora_rank"] = max_lora_rank
    if device is not None:
        job["device"] = device
    if init_adapter_path is not None:
        job["init_adapter_path"] = str(init_adapter_path)
    if reward_model_path is not None:
        job["reward_model_path"] = str(reward_model_path)
    path = job_dir / JOB_FILE
    tmp = path.with_name(JOB_FILE + ".tmp")
    tmp.write_text(json.dumps(job, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def runner_command(python: str, job_dir: str | os.PathLike, *, num_processes: int = 1,
                   accelerate_config: str | os.PathLike | None = None) -> list[str]:
    """The command that runs a job: the runner itself, or with ``num_processes`` > 1 the runner
    under ``accelerate launch`` (data-parallel; on the CPU, processes joined by gloo). Only the
    main process writes progress events and saves the adapter. With ``accelerate_config`` (a
    DeepSpeed ZeRO config of ``training/recipes/deepspeed``) it always runs under ``accelerate
    launch`` with that file, ``num_processes`` GPUs."""
    run = ["-m", "training.recipes.run", str(job_dir)]
    if accelerate_config:
        return [python, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
                "--num_processes", str(max(1, num_processes)), "--main_process_port", str(_free_port()), *run]
    if num_processes <= 1:
        return [python, *run]
    # --multi_gpu is accelerate's torch.distributed launcher (its --cpu would start one process);
    # on the CPU the runner's TrainingArguments(use_cpu=True) make the processes join with gloo.
    return [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
            str(_free_port()), *run]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_main_process() -> bool:
    """False in the other processes of a multi-process (``accelerate launch``) run."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def append_event(path: str | os.PathLike, event: str, **fields: Any) -> dict[str, Any]:
    """Append one event line (open, write, flush, fsync, close)."""
    record = _finite({"event": event, "ts": round(time.time(), 3), **fields})
    line = json.dumps(record, ensure_ascii=False, allow_nan=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return record


def _finite(value: Any) -> Any:
    """NaN / infinity (a diverged loss) become null: progress lines stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete events so far (a missing file is no events; a torn last line is skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for line in text.split("\n")[:-1]:  # the part after the last newline is incomplete
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def final_event(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    for ev in reversed(events):
        if ev.get("event") in FINAL_EVENTS:
            return ev
    return None


def request_cancel(job_dir: str | os.PathLike) -> None:
    (Path(job_dir) / CANCEL_FILE).touch()


def cancel_requested(job_dir: str | os.PathLike) -> bool:
    return (Path(job_dir) / CANCEL_FILE).exists()
