"""What every training method shares, for ``training.recipes.run``: the job directory
(``RecipeRun``), loading rows, the base model and tokenizer, a new or continued LoRA adapter,
the TrainingArguments fields every TRL config takes, the progress callback, and saving the
adapter (``save_adapter``) or, for a full fine-tune, the whole model (``save_full_model``).
The method-specific parts live in ``training.recipes.methods``.

Engine environment only (torch, transformers, trl, peft, datasets are imported lazily, inside
the functions that need them); never imports Django.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from training import formats
from training.recipes import progress
from training.recipes.config import ALL_LINEAR, METHODS, RecipeConfig
from training.recipes.servability import adapter_servability_problems

log = logging.getLogger(__name__)


class JobError(Exception):
    """A problem with job.json or its inputs (reported without a traceback)."""


class Cancelled(Exception):
    pass


class RecipeRun:
    """One run of the recipe in its job directory: reads job.json, writes progress events,
    and says whether a cancel was asked (cancel file or SIGTERM)."""

    def __init__(self, job_dir: Path):
        self.dir = job_dir
        self.progress_path = job_dir / progress.PROGRESS_FILE
        self.cancel_path = job_dir / progress.CANCEL_FILE
        self.sigterm = False

    def event(self, name: str, **fields: Any) -> None:
        if progress.is_main_process():  # one writer in a multi-process run
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
        if job["method"] not in METHODS:
            raise JobError(f"job.json method must be one of {', '.join(METHODS)}, got {job['method']!r}")
        return job


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def one_line(exc: BaseException, with_type: bool = True) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if with_type:
        text = f"{type(exc).__name__}: {text}".rstrip(": ")
    return text[:500]


# ---------------------------------------------------------------------- progress


def progress_callback(run: RecipeRun, total_rows: int, cfg: RecipeConfig, device: str):
    """A TrainerCallback writing start/log events and stopping after the step a cancel arrives in."""
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
            run.event(
                "start",
                method=cfg.method,
                total_steps=state.max_steps,
                num_rows=total_rows,
                # after TRL's preprocessing, which drops rows truncated to nothing
                num_train_rows=self.num_train_rows,
                num_epochs=args.num_train_epochs,
                device=device,
                num_threads=torch_threads(),
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
            run.event("log", **fields)

        def on_step_end(self, args, state, control, **kwargs):
            if run.cancel_requested():
                self.cancelled = True
                control.should_training_stop = True
            return control

    return ProgressCallback()


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# ---------------------------------------------------------------------- inputs


def pick_device(asked: str | None) -> str:
    import torch

    device = asked or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise JobError(f"job.json device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise JobError("job.json asks for cuda but no CUDA device is available")
    return device


def load_rows(path: str, cfg: RecipeConfig) -> list[dict[str, Any]]:
    """The normalised rows of the method's dataset kind, sampled down to ``cfg.max_train_rows``."""
    try:
        rows = formats.load_normalised(path, cfg.dataset_kind)
    except FileNotFoundError:
        raise JobError(f"dataset {path} not found") from None
    except ValueError as exc:
        raise JobError(str(exc)) from None
    if cfg.max_train_rows and len(rows) > cfg.max_train_rows:
        keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), cfg.max_train_rows))
        rows = [rows[i] for i in keep]
    return rows


def check_quantization(cfg: RecipeConfig, device: str) -> None:
    """QLoRA (``load_in_4bit``) needs bitsandbytes on a CUDA GPU: refused clearly anywhere else."""
    if not cfg.load_in_4bit:
        return
    if device != "cuda":
        raise JobError("load_in_4bit (QLoRA, bitsandbytes 4-bit) needs a CUDA GPU; this job runs on the CPU. "
                       "Train a plain LoRA adapter here (load_in_4bit=false).")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise JobError("load_in_4bit (QLoRA) needs the bitsandbytes package in the engine environment") from None


def quantization_kwargs(cfg: RecipeConfig) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments of a QLoRA base (NF4, double quantisation, bf16 compute)."""
    if not cfg.load_in_4bit:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16)}


def load_tokenizer_and_model(base: Path, device: str, init_dir: Path | None, *, seq_cls: bool = False,
                             quantization: dict[str, Any] | None = None, full: bool = False):
    """The local base model's tokenizer (needs a chat template) and model, with the init adapter if any.

    ``seq_cls``: a one-output sequence-classification model (a reward model's scorer); an init
    adapter (an SFT policy) is then merged into its body, and the new adapter trains on top.
    ``full`` (a full fine-tune): an init adapter is merged into the base too, and every weight trains.
    """
    import datasets
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()

    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise JobError(f"the tokenizer in {base} has no chat template")
    dtype = torch.bfloat16 if device == "cuda" and cuda_bf16() else torch.float32
    if seq_cls:
        model = AutoModelForSequenceClassification.from_pretrained(str(base), dtype=dtype, num_labels=1,
                                                                   local_files_only=True, **(quantization or {}))
        model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
        if init_dir is not None:
            model = load_init_adapter(model, init_dir, base).merge_and_unload()
        return tokenizer, model
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype, local_files_only=True, **(quantization or {}))
    if quantization:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    if init_dir is not None:
        model = load_init_adapter(model, init_dir, base)
        if full:
            model = model.merge_and_unload()
            model.requires_grad_(True)  # PEFT froze the base it wrapped; a full fine-tune trains all of it
    return tokenizer, model


def trainer_fields(cfg: RecipeConfig, scratch_dir: Path, device: str) -> dict[str, Any]:
    """The TrainingArguments every method's TRL config takes (checkpoints and reports off)."""
    return dict(
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
        bf16=device == "cuda" and cuda_bf16(),
        fp16=False,
    )


def cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


# ---------------------------------------------------------------------- the adapter


def lora_config(cfg: RecipeConfig, task_type: str = "CAUSAL_LM"):
    """The new adapter; ``task_type="SEQ_CLS"`` also trains and saves the score head (a reward model)."""
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
        task_type=task_type,
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
            f"init adapter {adapter_dir} does not fit the base model {base}: {one_line(exc)}"
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


def freeze_reference_adapter(model) -> None:
    """DPO and KTO continuing an adapter get TRL's "ref" copy of it as their reference; PEFT 0.21
    leaves an added, inactive adapter frozen: make sure of it across versions, since a reference
    that trains (or holds optimizer state) would be no reference."""
    for name, param in model.named_parameters():
        if ".ref." in name:
            param.requires_grad_(False)


def reference_fields(trainer, init_dir: Path | None, method: str) -> dict[str, Any]:
    """The ``start`` event's ``reference``: the init adapter (TRL's "ref" copy) or the base model;
    for a full fine-tune, TRL's frozen copy of the starting model (``model_copy``)."""
    if not hasattr(trainer.model, "peft_config"):
        return {"reference": "model_copy"}
    has_ref = "ref" in trainer.model.peft_config
    if init_dir and not has_ref:  # TRL's fallback for old PEFT with target_parameters
        log.warning("%s reference is the base model (adapter disabled), not the init adapter", method)
    return {"reference": "init_adapter" if has_ref else "base"}


def lora_summary(model) -> dict[str, Any] | None:
    """The adapter actually being trained (a continued adapter keeps its own rank and targets);
    None for a full fine-tune."""
    if not hasattr(model, "peft_config"):
        return None
    peft_cfg = model.peft_config["default"]
    targets = peft_cfg.target_modules
    return {
        "r": peft_cfg.r,
        "lora_alpha": peft_cfg.lora_alpha,
        "target_modules": sorted(targets) if isinstance(targets, set | list | tuple) else targets,
    }


def save_adapter(model, output_dir: Path) -> Path:
    """Save the adapter to a sibling temp dir, then swap it in (no half-written adapter)."""
    # Only the trained adapter: a continued DPO run also holds TRL's frozen "ref" copy,
    # which save_pretrained would otherwise write into a ref/ subdirectory.
    return _save_atomically(output_dir, lambda tmp: model.save_pretrained(
        str(tmp), safe_serialization=True, selected_adapters=["default"]))


def save_full_model(model, tokenizer, output_dir: Path, base: Path) -> Path:
    """Save a fully fine-tuned model the way vLLM loads one (config.json, model.safetensors,
    generation_config.json, tokenizer files with the chat template), atomically like
    ``save_adapter``. The weights are cast back to the base's dtype (an fp32 CPU run of a bf16
    base would otherwise double the file and the engine's load)."""
    import torch

    base_cfg = json.loads((base / "config.json").read_text(encoding="utf-8"))
    dtype = getattr(torch, str(base_cfg.get("dtype") or base_cfg.get("torch_dtype") or ""), None)
    if isinstance(dtype, torch.dtype) and dtype != next(model.parameters()).dtype:
        model = model.to(dtype)

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))

    return _save_atomically(output_dir, write)


def _save_atomically(output_dir: Path, write) -> Path:
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
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
