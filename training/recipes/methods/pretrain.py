"""Continued pretraining on raw text: language-modelling loss on every token, the documents
concatenated and cut into ``max_length`` blocks (TRL ``SFTTrainer`` with ``wrapped`` packing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.recipes.config import PretrainRecipeConfig


def trainer_config(fields: dict[str, Any], cfg: PretrainRecipeConfig):
    from trl import SFTConfig

    return SFTConfig(**fields, dataset_text_field="text", packing=True, packing_strategy="wrapped",
                     completion_only_loss=False, assistant_only_loss=False)


def build_trainer(parts: dict[str, Any]):
    from trl import SFTTrainer

    return SFTTrainer(**parts)


def start_fields(trainer, init_dir: Path | None) -> dict[str, Any]:
    return {"packing": "wrapped"}
