"""``backend=unsloth``: the base model loaded and wrapped for LoRA/QLoRA by Unsloth's
``FastLanguageModel``, then trained by the method's own TRL trainer (SFT or DPO), on a CUDA GPU.

Runs in the GPU engine environment only (``requirements/gpu.txt``); never imported on the CPU
path. ``unsloth`` is imported first, as its documentation asks, so that it patches transformers
and TRL before they build the model and trainer. The adapter is a plain PEFT LoRA adapter (saved
by ``common.save_adapter``), so vLLM hot-loads it like any other. Exercised by
``scripts/gpu_check.sh``; nothing here has run on this project's CPU machines.
"""

from __future__ import annotations

from pathlib import Path

from training.recipes.common import JobError
from training.recipes.config import RecipeConfig
from training.recipes.values import ALL_LINEAR

# Unsloth's own list for Llama/Mistral/Qwen-style blocks ("all-linear" is PEFT's, which Unsloth does not take).
_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def check(device: str) -> None:
    """Unsloth needs a CUDA GPU and the package: refused by name otherwise."""
    if device != "cuda":
        raise JobError("backend=unsloth needs an NVIDIA CUDA GPU; this job runs on the CPU (no GPU here). "
                       "Use backend=trl here, or run it on a GPU training worker (docs/gpu-workers.md).")
    try:
        import unsloth  # noqa: F401
    except ImportError as exc:
        raise JobError(f"backend=unsloth: the unsloth package does not import in this engine environment ({exc}); "
                       "install requirements/gpu.txt") from None


def load(base: Path, cfg: RecipeConfig, init_dir: Path | None):
    """The tokenizer and the LoRA-wrapped model (4-bit base with ``load_in_4bit``)."""
    if init_dir is not None:
        raise JobError("backend=unsloth starts a new adapter; continuing an adapter (init_checkpoint) "
                       "uses backend=trl")
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(base), max_seq_length=cfg.max_length, load_in_4bit=cfg.load_in_4bit, dtype=None,
        local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise JobError(f"the tokenizer in {base} has no chat template")
    targets = _LINEAR if cfg.lora_target_modules == ALL_LINEAR else list(cfg.lora_target_modules)
    model = FastLanguageModel.get_peft_model(
        model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
        bias="none", use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False,
        random_state=cfg.seed)
    return tokenizer, model
