"""Whether a saved training result can be served by vLLM (standard library only).

* ``adapter_servability_problems(dir, max_lora_rank)`` -- a saved PEFT adapter
  (``adapter_config.json`` + weights) checked the way vLLM loads it: LoRA only, no bias terms,
  no DoRA, no ``modules_to_save``, no LoRA on embeddings / the LM head, rank within the
  server's ``--max-lora-rank``;
* ``full_model_problems(dir, base_dir)`` -- a full fine-tune's directory: ``config.json`` of the
  base's ``model_type``, safetensors weights, a tokenizer with a chat template.

Each returns one line per problem (empty: servable). ``training.recipes.config`` applies the
same LoRA rules to a recipe before it runs (``RecipeConfig.servability_problems``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from training.recipes.values import ALL_LINEAR

DEFAULT_MAX_LORA_RANK = 16  # vLLM's default --max-lora-rank
# module-name fragments of input embeddings / output heads, which vLLM cannot take LoRA
# weights or full copies (modules_to_save) for
_EMBEDDING_NAMES = ("embed", "lm_head", "wte", "wpe", "output_layer")


def adapter_servability_problems(
    adapter_dir: str | os.PathLike, max_lora_rank: int = DEFAULT_MAX_LORA_RANK
) -> list[str]:
    """Check a saved PEFT adapter (``adapter_config.json`` + weights) the way vLLM would."""
    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{cfg_path} is missing"]
    except (OSError, ValueError) as exc:
        return [f"{cfg_path} is unreadable: {exc}"]
    problems = []
    if not any((adapter_dir / n).is_file() for n in ("adapter_model.safetensors", "adapter_model.bin")):
        problems.append(f"{adapter_dir} has no adapter_model.safetensors")
    if cfg.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type is {cfg.get('peft_type')!r}, not 'LORA'")
    if cfg.get("bias", "none") != "none" or cfg.get("lora_bias"):
        problems.append("LoRA bias terms are not supported by vLLM")
    ranks = [cfg.get("r", 0)] + list((cfg.get("rank_pattern") or {}).values())
    problems += lora_problems(
        r=max(ranks),
        use_dora=bool(cfg.get("use_dora")),
        modules_to_save=cfg.get("modules_to_save") or [],
        target_modules=cfg.get("target_modules") or [],
        max_lora_rank=max_lora_rank,
        keys=("r", "use_dora", "modules_to_save", "target_modules"),
    )
    return problems


def full_model_problems(model_dir: str | os.PathLike, base_dir: str | os.PathLike) -> list[str]:
    """Check a saved full model the way vLLM will load it: ``config.json`` of the base's
    ``model_type``, safetensors weights, and a tokenizer with a chat template."""
    model_dir, base_dir = Path(model_dir), Path(base_dir)
    problems = []
    try:
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        base = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"config.json is missing or unreadable: {exc}"]
    if cfg.get("model_type") != base.get("model_type"):
        problems.append(f"model_type is {cfg.get('model_type')!r}, the base's is {base.get('model_type')!r}")
    if not list(model_dir.glob("*.safetensors")):
        problems.append(f"{model_dir} has no .safetensors weights")
    if not (model_dir / "tokenizer_config.json").is_file() or not any(
            (model_dir / n).is_file() for n in ("tokenizer.json", "tokenizer.model")):
        problems.append(f"{model_dir} has no tokenizer")
    elif not (model_dir / "chat_template.jinja").is_file() and "chat_template" not in json.loads(
            (model_dir / "tokenizer_config.json").read_text(encoding="utf-8")):
        problems.append(f"{model_dir} has no chat template")
    return problems


# ---------------------------------------------------------------------- the LoRA rules


def lora_problems(*, r, use_dora, modules_to_save, target_modules, max_lora_rank, keys) -> list[str]:
    k_r, k_dora, k_save, k_targets = keys
    out = []
    if r > max_lora_rank:
        out.append(f"{k_r}: rank {r} is above the vLLM server's --max-lora-rank {max_lora_rank}")
    if use_dora:
        out.append(f"{k_dora}: vLLM cannot serve DoRA adapters")
    if modules_to_save:
        out.append(
            f"{k_save}: vLLM cannot serve adapters with modules_to_save ({', '.join(map(str, modules_to_save))})"
        )
    if isinstance(target_modules, str):
        target_modules = [] if target_modules == ALL_LINEAR else [target_modules]
    bad = [t for t in target_modules if any(e in str(t).lower() for e in _EMBEDDING_NAMES)]
    if bad:
        out.append(f"{k_targets}: vLLM cannot serve LoRA on embeddings or the LM head ({', '.join(bad)})")
    return out
