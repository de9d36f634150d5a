"""Training subprocess: ``<engine python> -m training.recipes.run JOB_DIR`` (cwd = repo root).

Reads ``JOB_DIR/job.json``, trains a LoRA adapter with TRL's ``SFTTrainer`` or
``DPOTrainer`` -- a new one, or the saved adapter at ``init_adapter_path`` continued (SFT
→ DPO lineage) -- and saves only the final adapter (``adapter_config.json`` +
``adapter_model.safetensors``, servable by vLLM) to ``output_dir``. Progress goes to
``JOB_DIR/progress.jsonl``; the protocol (events, cancel file, exit codes) is documented
in ``training.recipes.progress``. Logs go to stdout/stderr.

Engine environment only (torch, transformers, trl, peft, datasets); never imports Django.
Nothing is fetched from the Hugging Face hub: the base model is a local directory.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
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

from training import formats  # noqa: E402
from training.recipes import progress  # noqa: E402
from training.recipes.config import (  # noqa: E402
    ALL_LINEAR,
    DEFAULT_MAX_LORA_RANK,
    RecipeConfig,
    adapter_servability_problems,
    config_from_dict,
)

log = logging.getLogger("training.recipes.run")

KIND_OF_METHOD = {"sft": formats.SFT, "dpo": formats.PREFERENCE}


class JobError(Exception):
    """A problem with job.json or its inputs (reported without a traceback)."""


class Cancelled(Exception):
    pass


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Job:
    def __init__(self, job_dir: Path):
        self.dir = job_dir
        self.progress_path = job_dir / progress.PROGRESS_FILE
        self.cancel_path = job_dir / progress.CANCEL_FILE
        self.sigterm = False

    def event(self, name: str, **fields: Any) -> None:
        progress.append_event(self.progress_path, name, **fields)

    def cancel_requested(self) -> bool:
        return self.sigterm or self.cancel_path.exists()

    def read(self) -> dict[str, Any]:
        path = self.dir / progress.JOB_FILE
        try:
            job = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise JobError(f"{path} not found") from None
        except ValueError as exc:
            raise JobError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(job, dict):
            raise JobError(f"{path} must hold a JSON object")
        missing = [
            k for k in ("method", "base_model_path", "dataset_path", "output_dir", "config") if k not in job
        ]
        if missing:
            raise JobError(f"job.json is missing {', '.join(missing)}")
        if job["method"] not in KIND_OF_METHOD:
            raise JobError(
                f"job.json method must be one of {', '.join(KIND_OF_METHOD)}, got {job['method']!r}"
            )
        return job


# ---------------------------------------------------------------------- trainer glue


def make_callback(job: Job, total_rows: int, cfg: RecipeConfig, device: str, method: str):
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self):
            self.t0 = time.monotonic()
            self.cancelled = False
            self.summary: dict[str, Any] = {}
            self.last_log: dict[str, Any] = {}
            self.num_train_rows: int | None = None
            self.start_fields: dict[str, Any] = {}  # set once the trainer has wrapped the model

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.monotonic()
            job.event(
                "start",
                method=method,
                total_steps=state.max_steps,
                num_rows=total_rows,
                # after TRL's preprocessing, which drops rows truncated to nothing
                num_train_rows=self.num_train_rows,
                num_epochs=args.num_train_epochs,
                device=device,
                num_threads=_torch_threads(),
                config=cfg.to_dict(),
                **self.start_fields,
            )

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if "train_runtime" in logs:  # the end-of-training summary
                self.summary = logs
                return
            self.last_log = logs
            fields = {k: v for k, v in logs.items() if k not in ("event", "ts")}
            fields.update(
                step=state.global_step,
                total_steps=state.max_steps,
                elapsed_s=round(time.monotonic() - self.t0, 3),
            )
            job.event("log", **fields)

        def on_step_end(self, args, state, control, **kwargs):
            if job.cancel_requested():
                self.cancelled = True
                control.should_training_stop = True
            return control

    return ProgressCallback()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def load_rows(path: str, kind: str, cfg: RecipeConfig) -> list[dict[str, Any]]:
    try:
        rows = formats.load_normalised(path, kind)
    except FileNotFoundError:
        raise JobError(f"dataset {path} not found") from None
    except ValueError as exc:
        raise JobError(str(exc)) from None
    if cfg.max_train_rows and len(rows) > cfg.max_train_rows:
        keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), cfg.max_train_rows))
        rows = [rows[i] for i in keep]
    return rows


def trainer_args(method: str, cfg: RecipeConfig, scratch_dir: Path, device: str):
    common: dict[str, Any] = dict(
        output_dir=str(scratch_dir),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        # transformers 5: warmup_steps < 1 is a ratio of the total steps
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        gradient_checkpointing=cfg.gradient_checkpointing,
        seed=cfg.seed,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        max_length=cfg.max_length,
        use_cpu=device == "cpu",
        bf16=device == "cuda" and _cuda_bf16(),
        fp16=False,
    )
    if method == "sft":
        from trl import SFTConfig

        # assistant_only_loss needs {% generation %} markers in the chat template, which
        # SmolLM2's (and most) templates lack: train on the whole conversation.
        return SFTConfig(**common, packing=False, assistant_only_loss=False)
    from trl import DPOConfig

    return DPOConfig(**common, beta=cfg.beta, loss_type=[cfg.loss_type])


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def lora_config(cfg: RecipeConfig):
    from peft import LoraConfig

    targets = cfg.lora_target_modules
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=ALL_LINEAR if targets == ALL_LINEAR else list(targets),
        bias="none",
        use_dora=False,
        modules_to_save=None,
        task_type="CAUSAL_LM",
    )


# Fields of a base model's config.json that an adapter's tensor shapes depend on.
_BASE_SHAPE_KEYS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)


def check_init_adapter(path: str, base: Path, max_rank: int) -> Path:
    """The adapter to continue, checked before any model is loaded; raises JobError."""
    adapter_dir = Path(path).resolve()
    if not adapter_dir.is_dir():
        raise JobError(f"init adapter {adapter_dir} is not a directory")
    problems = adapter_servability_problems(adapter_dir, max_rank)
    if problems:
        raise JobError(
            f"init adapter {adapter_dir} cannot be continued into a servable adapter:\n" + "\n".join(problems)
        )
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    # PEFT records the base as the path (or hub id) it was loaded from. A path that is gone
    # or moved proves nothing, so only a different, existing base directory is compared here;
    # load_init_adapter then checks every tensor against the base actually loaded.
    recorded = cfg.get("base_model_name_or_path") or ""
    recorded_dir = Path(recorded) if recorded else None
    if recorded_dir and (recorded_dir / "config.json").is_file() and recorded_dir.resolve() != base:
        theirs = json.loads((recorded_dir / "config.json").read_text(encoding="utf-8"))
        ours = json.loads((base / "config.json").read_text(encoding="utf-8"))
        differ = [k for k in _BASE_SHAPE_KEYS if theirs.get(k) != ours.get(k)]
        if differ:
            raise JobError(
                f"init adapter {adapter_dir} was trained on {recorded}, a different model than the base "
                f"{base} ({', '.join(f'{k}: {theirs.get(k)} vs {ours.get(k)}' for k in differ)})"
            )
    return adapter_dir


def load_init_adapter(model, adapter_dir: Path, base: Path):
    """The base model with the saved adapter loaded as trainable; raises JobError when it does not fit."""
    from peft import PeftModel, get_peft_model_state_dict
    from peft.utils import load_peft_weights

    try:
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch, target module not found
        raise JobError(
            f"init adapter {adapter_dir} does not fit the base model {base}: {_one_line(exc)}"
        ) from None
    # PEFT only warns about adapter tensors it could not place, or modules it left freshly
    # initialised (an adapter of a model with the same module names but fewer layers): compare.
    saved = {k: tuple(v.shape) for k, v in load_peft_weights(str(adapter_dir), device="cpu").items()}
    loaded = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(model).items()}
    if saved != loaded:
        extra = sorted(set(saved) - set(loaded))[:3]
        missing = sorted(set(loaded) - set(saved))[:3]
        shapes = sorted(k for k in set(saved) & set(loaded) if saved[k] != loaded[k])[:3]
        raise JobError(
            f"init adapter {adapter_dir} does not match the base model {base}: "
            f"not in the model {extra}, not in the adapter {missing}, other shapes {shapes}"
        )
    return model


def lora_summary(model) -> dict[str, Any]:
    """The adapter actually being trained (a continued adapter keeps its own rank and targets)."""
    peft_cfg = model.peft_config["default"]
    targets = peft_cfg.target_modules
    return {
        "r": peft_cfg.r,
        "lora_alpha": peft_cfg.lora_alpha,
        "target_modules": sorted(targets) if isinstance(targets, set | list | tuple) else targets,
    }


def save_adapter(model, output_dir: Path) -> Path:
    """Save the adapter to a sibling temp dir, then swap it in (no half-written adapter)."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # Only the trained adapter: a continued DPO run also holds TRL's frozen "ref" copy,
    # which save_pretrained would otherwise write into a ref/ subdirectory.
    try:
        model.save_pretrained(str(tmp), safe_serialization=True, selected_adapters=["default"])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk: free what was written, so the error event fits
        raise
    (tmp / "README.md").unlink(missing_ok=True)  # PEFT's generated model card
    for f in tmp.iterdir():
        f.chmod(0o644)  # safetensors writes 0600; the serving process may be another user
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(tmp, output_dir)
    return output_dir


def train(job: Job) -> int:
    spec = job.read()
    method = spec["method"]
    try:
        cfg = config_from_dict(method, spec["config"])
    except ValueError as exc:
        raise JobError(str(exc)) from None
    max_rank = int(spec.get("max_lora_rank") or DEFAULT_MAX_LORA_RANK)
    problems = cfg.servability_problems(max_rank)
    if problems:
        raise JobError("the adapter would not be servable by vLLM:\n" + "\n".join(problems))
    base = Path(spec["base_model_path"]).resolve()
    if not (base / "config.json").is_file():
        raise JobError(f"base model {base} is not a local model directory (no config.json)")
    output_dir = Path(spec["output_dir"]).resolve()
    init_adapter = spec.get("init_adapter_path")
    init_dir = check_init_adapter(init_adapter, base, max_rank) if init_adapter else None

    if job.cancel_requested():
        raise Cancelled()

    import torch

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = spec.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise JobError(f"job.json device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise JobError("job.json asks for cuda but no CUDA device is available")

    rows = load_rows(spec["dataset_path"], KIND_OF_METHOD[method], cfg)
    log.info(
        "%s: %d rows from %s, base %s, device %s, %d threads",
        method,
        len(rows),
        spec["dataset_path"],
        base,
        device,
        torch.get_num_threads(),
    )

    import datasets
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()

    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise JobError(f"the tokenizer in {base} has no chat template")
    dtype = torch.bfloat16 if device == "cuda" and _cuda_bf16() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype, local_files_only=True)
    if init_dir is not None:
        model = load_init_adapter(model, init_dir, base)
    dataset = Dataset.from_list(rows)

    if job.cancel_requested():
        raise Cancelled()

    scratch = job.dir / "trainer"
    args = trainer_args(method, cfg, scratch, device)
    callback = make_callback(job, len(rows), cfg, device, method)
    common = dict(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        # TRL refuses a peft_config for a model that already is a PeftModel
        peft_config=None if init_dir else lora_config(cfg),
        callbacks=[callback],
    )
    if method == "sft":
        from trl import SFTTrainer

        trainer = SFTTrainer(**common)
    else:
        from trl import DPOTrainer

        # DPO's reference should be the policy it starts from (π_ref = π_SFT). With a new
        # adapter that is the base model, which TRL gets by disabling the adapter. Given a
        # PeftModel, TRL 1.16 adds a "ref" adapter copied from the loaded one and runs the
        # reference pass through it: the SFT policy, at the cost of one more adapter's weights
        # (20 MB for SmolLM2 at r16) and no second base model -- cheap on a CPU, so we take it.
        trainer = DPOTrainer(ref_model=None, **common)
        # PEFT 0.21 leaves an added, inactive adapter frozen; make sure of it across versions,
        # since a reference that trains (or holds optimizer state) would be no reference.
        for name, param in trainer.model.named_parameters():
            if ".ref." in name:
                param.requires_grad_(False)

    peft_model = trainer.model
    callback.start_fields = {
        "init_adapter_path": str(init_dir) if init_dir else None,
        "lora": lora_summary(peft_model),
    }
    if method == "dpo":
        has_ref = "ref" in peft_model.peft_config
        if init_dir and not has_ref:  # TRL's fallback for old PEFT with target_parameters
            log.warning("DPO reference is the base model (adapter disabled), not the init adapter")
        callback.start_fields["reference"] = "init_adapter" if has_ref else "base"

    callback.num_train_rows = len(trainer.train_dataset)
    if callback.num_train_rows == 0:
        raise JobError(f"no training rows left after truncation to max_length={cfg.max_length}")
    try:
        result = trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # checkpoints are off; nothing to keep there
    state = trainer.state
    if callback.cancelled:
        job.event(
            "cancelled",
            step=state.global_step,
            total_steps=state.max_steps,
            elapsed_s=round(time.monotonic() - callback.t0, 3),
        )
        log.info("cancelled at step %d/%d", state.global_step, state.max_steps)
        return progress.EXIT_CANCELLED

    adapter_dir = save_adapter(trainer.model, output_dir)
    problems = adapter_servability_problems(adapter_dir, max_rank)
    if problems:
        raise RuntimeError("saved adapter is not servable by vLLM: " + "; ".join(problems))

    runtime = float(callback.summary.get("train_runtime") or result.metrics.get("train_runtime") or 0.0)
    steps = state.global_step
    metrics: dict[str, Any] = {
        **{k: v for k, v in result.metrics.items() if isinstance(v, int | float)},
        "steps": steps,
        "total_steps": state.max_steps,
        "epoch": state.epoch,
        "num_rows": len(rows),
        "num_train_rows": callback.num_train_rows,
        "s_per_step": round(runtime / steps, 3) if steps else None,
        "peak_rss_mb": peak_rss_mb(),
        "num_threads": torch.get_num_threads(),
        "device": device,
    }
    for key, value in callback.last_log.items():
        if isinstance(value, int | float):
            metrics.setdefault(f"last_{key}" if key in metrics else key, value)
    job.event("done", adapter_dir=str(adapter_dir), metrics=metrics)
    log.info(
        "done: %s in %.1fs (%s s/step, peak RSS %s MB)",
        adapter_dir,
        runtime,
        metrics["s_per_step"],
        metrics["peak_rss_mb"],
    )
    return progress.EXIT_OK


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
    job = Job(job_dir)

    def on_sigterm(signum, frame):
        log.warning("SIGTERM: stopping after the current step")
        job.sigterm = True

    signal.signal(signal.SIGTERM, on_sigterm)
    t0 = time.monotonic()
    try:
        job.event("init", pid=os.getpid(), method=_peek_method(job_dir))
        return train(job)
    except Cancelled:
        job.event("cancelled", step=0, total_steps=None, elapsed_s=round(time.monotonic() - t0, 3))
        log.info("cancelled before training started")
        return progress.EXIT_CANCELLED
    except JobError as exc:
        log.error("job error: %s", exc)
        job.event(
            "error", error=str(exc)[-progress.ERROR_TAIL_CHARS :], message=_one_line(exc, with_type=False)
        )
        return progress.EXIT_ERROR
    except BaseException as exc:  # noqa: BLE001 - everything must end in an event
        tb = traceback.format_exc()
        log.error("training failed:\n%s", tb)
        try:
            job.event("error", error=tb[-progress.ERROR_TAIL_CHARS :], message=_one_line(exc))
        except Exception:  # noqa: BLE001
            log.exception("could not write the error event")
        return progress.EXIT_ERROR


def _one_line(exc: BaseException, with_type: bool = True) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if with_type:
        text = f"{type(exc).__name__}: {text}".rstrip(": ")
    return text[:500]


def _peek_method(job_dir: Path) -> str | None:
    try:
        return json.loads((job_dir / progress.JOB_FILE).read_text(encoding="utf-8")).get("method")
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":
    sys.exit(main())
