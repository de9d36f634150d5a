"""Training backends that need a CUDA GPU: Unsloth (SFT/DPO, LoRA or QLoRA) and DeepSpeed ZeRO 2/3
(full fine-tunes, run under ``accelerate launch`` with a shipped config). Standard library only.

Contracts:

- ``backend`` is ``trl`` (the default: TRL + PEFT, CPU or GPU) or ``unsloth`` (TRL trainers on a
  model loaded and wrapped by Unsloth's ``FastLanguageModel``; SFT and DPO only, LoRA only, QLoRA
  with ``load_in_4bit``). ``deepspeed`` is ``none`` or ``zero2``/``zero3``, for full fine-tunes
  only (a LoRA adapter's optimizer state is small enough that ZeRO buys nothing). The combination
  rules are :func:`backend_problems`, part of the recipe config's own validation.
- :func:`gpu_refusal` is the launch-time refusal (``training.services.job_launch``: the admin's
  form and ``manage.py launch_training``): a job that needs a GPU is queued only where the arena
  declares its training workers have one (``ARENA_TRAINING_DEVICE=cuda``); the message names what
  is missing. The runner refuses again on a worker without CUDA (``training.recipes.common``).
- :func:`accelerate_config` is the shipped accelerate config file of a ZeRO stage.

Versions that match TRL 1.16 and the CUDA torch are pinned in ``requirements/gpu.txt``; they are
never installed in the CPU engine environment.
"""

from __future__ import annotations

from pathlib import Path

BACKENDS = ("trl", "unsloth")
DEEPSPEED_STAGES = ("none", "zero2", "zero3")
UNSLOTH_METHODS = ("sft", "dpo")
CONFIG_DIR = Path(__file__).resolve().parent / "deepspeed"


def backend_problems(method: str, *, backend: str, deepspeed: str, full: bool) -> list[str]:
    """What is wrong with this combination of method, backend, DeepSpeed stage and fine-tuning type."""
    out = []
    if backend == "unsloth":
        if method not in UNSLOTH_METHODS:
            out.append(f"backend: unsloth trains SFT and DPO only, not {method}")
        if full:
            out.append("backend: unsloth trains LoRA/QLoRA adapters here; a full fine-tune uses backend=trl "
                       "(with deepspeed=zero2 or zero3 on GPUs)")
        if deepspeed != "none":
            out.append("deepspeed: not with backend=unsloth (Unsloth runs on one GPU)")
    if deepspeed != "none" and not full:
        out.append(f"deepspeed: {deepspeed} is for full fine-tunes (finetuning_type=full); "
                   "a LoRA adapter trains without it")
    return out


def gpu_features(config: dict) -> list[str]:
    """The settings of a recipe config that need a CUDA GPU, as ``key=value``."""
    features = []
    if config.get("backend", "trl") != "trl":
        features.append(f"backend={config['backend']}")
    if config.get("deepspeed", "none") != "none":
        features.append(f"deepspeed={config['deepspeed']}")
    if config.get("load_in_4bit"):
        features.append("load_in_4bit=true")  # QLoRA: bitsandbytes 4-bit kernels are CUDA only
    if config.get("use_vllm"):
        features.append("use_vllm=true")  # GRPO's generation through vLLM colocated on the training GPU
    return features


def gpu_refusal(config: dict, training_device: str) -> str:
    """"" when the config may be queued; else why not, naming the missing GPU."""
    features = gpu_features(config)
    if not features or training_device == "cuda":
        return ""
    declared = training_device or "not set (auto)"
    return (f"{' and '.join(features)} needs an NVIDIA CUDA GPU on the training workers, and this arena has none "
            f"declared: ARENA_TRAINING_DEVICE is {declared}, not cuda. Train without them here (backend=trl, "
            "no deepspeed, load_in_4bit=false, use_vllm=false), or add GPU training workers (docs/gpu-workers.md) and set ARENA_TRAINING_DEVICE=cuda.")


def gpu_note(training_device: str) -> str:
    """What the launch form says next to the GPU-only choices."""
    if training_device == "cuda":
        return "Needs a CUDA GPU: this arena's training workers have one (ARENA_TRAINING_DEVICE=cuda)."
    return ("Needs a CUDA GPU: NOT available here (ARENA_TRAINING_DEVICE is not cuda), so a job asking "
            "for it is refused; see docs/gpu-workers.md.")


def accelerate_config(stage: str) -> Path:
    """The accelerate config file of a ZeRO stage (``zero2`` or ``zero3``)."""
    if stage not in DEEPSPEED_STAGES[1:]:
        raise ValueError(f"no DeepSpeed config for {stage!r}")
    return CONFIG_DIR / f"{stage}.yaml"
