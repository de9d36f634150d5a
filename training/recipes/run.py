"""Training subprocess: ``<engine python> -m training.recipes.run JOB_DIR`` (cwd = repo root).

Reads ``JOB_DIR/job.json``, trains a LoRA adapter with the method's TRL trainer
(``training.recipes.methods``: SFT, DPO, KTO, reward, GRPO, pretrain) -- a new one, or the saved
adapter at ``init_adapter_path`` continued (SFT → DPO lineage) -- and saves only the final
adapter (``adapter_config.json`` + ``adapter_model.safetensors``, servable by vLLM) to
``output_dir``. With ``finetuning_type="full"`` every weight trains instead (an init adapter
is merged into the base first) and the whole model is saved there (config, safetensors,
tokenizer with its chat template: a directory a vLLM engine of its own serves). Progress goes to ``JOB_DIR/progress.jsonl``; the protocol (events, cancel
file, exit codes) is documented in ``training.recipes.progress``. Logs go to stdout/stderr.

This module is the flow of one run; what every method shares is in ``training.recipes.common``.
Engine environment only (torch, transformers, trl, peft, datasets); never imports Django.
Nothing is fetched from the Hugging Face hub: the base model is a local directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# before transformers / tokenizers / datasets are imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from training.recipes import common, progress, unsloth_backend  # noqa: E402
from training.recipes.common import Cancelled, JobError, RecipeRun  # noqa: E402
from training.recipes.config import RecipeConfig, config_from_dict  # noqa: E402
from training.recipes.methods import RECIPES  # noqa: E402
from training.recipes.servability import (  # noqa: E402
    DEFAULT_MAX_LORA_RANK,
    adapter_servability_problems,
    full_model_problems,
)

log = logging.getLogger("training.recipes.run")


def _checked_spec(run: RecipeRun) -> tuple[dict[str, Any], RecipeConfig, int, Path, Path | None]:
    """job.json, its recipe config, the vLLM max rank, the base model dir and the init adapter dir."""
    spec = run.read()
    try:
        cfg = config_from_dict(spec["method"], spec["config"])
    except ValueError as exc:
        raise JobError(str(exc)) from None
    max_rank = int(spec.get("max_lora_rank") or DEFAULT_MAX_LORA_RANK)
    problems = cfg.servability_problems(max_rank)
    if problems:
        raise JobError("the adapter would not be servable by vLLM:\n" + "\n".join(problems))
    base = Path(spec["base_model_path"]).resolve()
    if not (base / "config.json").is_file():
        raise JobError(f"base model {base} is not a local model directory (no config.json)")
    init_adapter = spec.get("init_adapter_path")
    init_dir = common.check_init_adapter(init_adapter, base, max_rank) if init_adapter else None
    return spec, cfg, max_rank, base, init_dir


def train(run: RecipeRun) -> int:
    spec, cfg, max_rank, base, init_dir = _checked_spec(run)
    if run.cancel_requested():
        raise Cancelled()

    import torch
    from datasets import Dataset

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = _device_for(spec, cfg)
    recipe = RECIPES[cfg.method]
    if hasattr(recipe, "check_device"):
        recipe.check_device(cfg, device)
    rows = common.load_rows(spec["dataset_path"], cfg)
    # optional hooks of a method module: check_device, split_rows, MODEL, PEFT_TASK_TYPE, fit_rows, extra_parts,
    # heldout_metrics
    train_rows, heldout = recipe.split_rows(rows, cfg) if hasattr(recipe, "split_rows") else (rows, [])
    log.info("%s: %d rows (%d held out) from %s, base %s, device %s, %d threads", cfg.method, len(rows),
             len(heldout), spec["dataset_path"], base, device, torch.get_num_threads())
    seq_cls = getattr(recipe, "MODEL", "") == "seq-cls"
    if cfg.backend == "unsloth":
        tokenizer, model = unsloth_backend.load(base, cfg, init_dir)  # already LoRA-wrapped
    else:
        tokenizer, model = common.load_tokenizer_and_model(base, device, init_dir, seq_cls=seq_cls,
                                                           quantization=common.quantization_kwargs(cfg), full=cfg.full)
    if hasattr(recipe, "fit_rows"):
        kept = recipe.fit_rows(train_rows, tokenizer, cfg)
        log.info("%s: %d of %d training rows fit max_length=%d", cfg.method, len(kept), len(train_rows),
                 cfg.max_length)
        train_rows = kept
    extra = recipe.extra_parts(spec, base, device) if hasattr(recipe, "extra_parts") else {}
    dataset = Dataset.from_list(train_rows)
    if run.cancel_requested():
        raise Cancelled()

    scratch = run.dir / "trainer"
    callback = common.progress_callback(run, len(rows), cfg, device)
    trainer = recipe.build_trainer(dict(
        model=model,
        args=recipe.trainer_config(common.trainer_fields(cfg, scratch, device), cfg),
        train_dataset=dataset,
        processing_class=tokenizer,
        # TRL refuses a peft_config for a model that already is a PeftModel (a scorer merges its init);
        # a full fine-tune has none: every weight trains
        peft_config=None if cfg.full or cfg.backend == "unsloth" or (init_dir and not seq_cls) else common.lora_config(
            cfg, getattr(recipe, "PEFT_TASK_TYPE", "CAUSAL_LM")),
        callbacks=[callback],
        **extra,
    ))
    callback.start_fields = {
        "num_processes": trainer.args.world_size,
        "init_adapter_path": str(init_dir) if init_dir else None,
        "lora": common.lora_summary(trainer.model),
        **recipe.start_fields(trainer, init_dir),
    }
    callback.num_train_rows = len(trainer.train_dataset)
    if callback.num_train_rows == 0:
        raise JobError(f"no training rows left within max_length={cfg.max_length}")
    try:
        result = trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # checkpoints are off; nothing to keep there
    state = trainer.state
    if callback.cancelled:
        run.event("cancelled", step=state.global_step, total_steps=state.max_steps,
                  elapsed_s=round(time.monotonic() - callback.t0, 3))
        log.info("cancelled at step %d/%d", state.global_step, state.max_steps)
        return progress.EXIT_CANCELLED
    if not progress.is_main_process():
        return progress.EXIT_OK  # the main process saves and reports
    extra_metrics = recipe.heldout_metrics(trainer, heldout, tokenizer, cfg) if hasattr(recipe, "heldout_metrics") else {}
    saved = _save(trainer, tokenizer, Path(spec["output_dir"]).resolve(), cfg, base, max_rank)
    _report(run, trainer, result, callback, saved=saved, full=cfg.full, num_rows=len(rows), device=device,
            extra_metrics=extra_metrics)
    return progress.EXIT_OK


def _device_for(spec: dict, cfg: RecipeConfig) -> str:
    """The device the job trains on, once the config's quantization, deepspeed and backend fit it."""
    device = common.pick_device(spec.get("device"))
    common.check_quantization(cfg, device)
    if cfg.deepspeed != "none" and device != "cuda":
        raise JobError(f"deepspeed={cfg.deepspeed} needs NVIDIA CUDA GPUs; this job runs on the CPU (no GPU here). "
                       "Train the full fine-tune without deepspeed here, or on GPU training workers.")
    if cfg.backend == "unsloth":
        unsloth_backend.check(device)  # also imports unsloth before transformers/TRL build anything
    return device


def _save(trainer, tokenizer, output_dir: Path, cfg: RecipeConfig, base: Path, max_rank: int) -> Path:
    """Save the full model or the adapter, and refuse one that vLLM could not serve."""
    if cfg.full:
        saved = common.save_full_model(trainer.model, tokenizer, output_dir, base)
        problems = full_model_problems(saved, base)
    else:
        saved = common.save_adapter(trainer.model, output_dir)
        problems = adapter_servability_problems(saved, max_rank) if cfg.servable else []
    if problems:
        raise RuntimeError(f"saved {'model' if cfg.full else 'adapter'} is not servable by vLLM: " + "; ".join(problems))
    return saved


def _report(run: RecipeRun, trainer, result, callback, *, saved: Path, full: bool, num_rows: int, device: str,
            extra_metrics: dict[str, Any]) -> None:
    """Write the ``done`` event with the run's metrics (``adapter_dir`` is also the full model's directory)."""
    state = trainer.state
    runtime = float(callback.summary.get("train_runtime") or result.metrics.get("train_runtime") or 0.0)
    steps = state.global_step
    metrics: dict[str, Any] = {
        **{k: v for k, v in result.metrics.items() if isinstance(v, int | float)},
        "steps": steps,
        "total_steps": state.max_steps,
        "epoch": state.epoch,
        "num_rows": num_rows,
        "num_train_rows": callback.num_train_rows,
        "s_per_step": round(runtime / steps, 3) if steps else None,
        "peak_rss_mb": common.peak_rss_mb(),
        "num_threads": common.torch_threads(),
        "device": device,
        **extra_metrics,
    }
    for key, value in callback.last_log.items():
        if isinstance(value, int | float):
            metrics.setdefault(f"last_{key}" if key in metrics else key, value)
    run.event("done", adapter_dir=str(saved), model_dir=str(saved) if full else None,
              finetuning_type="full" if full else "lora", metrics=metrics)
    log.info("done: %s in %.1fs (%s s/step, peak RSS %s MB)", saved, runtime, metrics["s_per_step"],
             metrics["peak_rss_mb"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if len(argv) != 1:
        print("usage: python -m training.recipes.run JOB_DIR", file=sys.stderr)
        return progress.EXIT_ERROR
    job_dir = Path(argv[0]).resolve()
    if not job_dir.is_dir():
        print(f"job directory {job_dir} does not exist", file=sys.stderr)
        return progress.EXIT_ERROR
    run = RecipeRun(job_dir)

    def on_sigterm(signum, frame):
        log.warning("SIGTERM: stopping after the current step")
        run.sigterm = True

    signal.signal(signal.SIGTERM, on_sigterm)
    t0 = time.monotonic()
    try:
        run.event("init", pid=os.getpid(), method=_peek_method(job_dir))
        return train(run)
    except Cancelled:
        run.event("cancelled", step=0, total_steps=None, elapsed_s=round(time.monotonic() - t0, 3))
        log.info("cancelled before training started")
        return progress.EXIT_CANCELLED
    except JobError as exc:
        log.error("job error: %s", exc)
        run.event(
            "error", error=str(exc)[-progress.ERROR_TAIL_CHARS :], message=common.one_line(exc, with_type=False)
        )
        return progress.EXIT_ERROR
    except BaseException as exc:  # noqa: BLE001 - everything must end in an event
        tb = traceback.format_exc()
        log.error("training failed:\n%s", tb)
        try:
            run.event("error", error=tb[-progress.ERROR_TAIL_CHARS :], message=common.one_line(exc))
        except Exception:  # noqa: BLE001
            log.exception("could not write the error event")
        return progress.EXIT_ERROR


def _peek_method(job_dir: Path) -> str | None:
    try:
        return json.loads((job_dir / progress.JOB_FILE).read_text(encoding="utf-8")).get("method")
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":
    sys.exit(main())
