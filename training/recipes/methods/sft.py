"""Supervised fine-tuning on conversations: TRL's ``SFTTrainer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.recipes.config import RecipeConfig


def trainer_config(fields: dict[str, Any], cfg: RecipeConfig):
    from trl import SFTConfig

    # assistant_only_loss needs {% generation %} markers in the chat template, which
    # SmolLM2's (and most) templates lack: train on the whole conversation.
    return SFTConfig(**fields, packing=False, assistant_only_loss=False)


def build_trainer(parts: dict[str, Any]):
    from trl import SFTTrainer

    return SFTTrainer(**parts)


def start_fields(trainer, init_dir: Path | None) -> dict[str, Any]:
    return {}
