"""KTO on unpaired answers labelled desirable or undesirable (arena votes, ties and "both are
bad" included): TRL's ``KTOTrainer``. The reference is the starting policy, as for DPO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.recipes import common
from training.recipes.config import KTORecipeConfig


def trainer_config(fields: dict[str, Any], cfg: KTORecipeConfig):
    from trl import KTOConfig

    return KTOConfig(**fields, beta=cfg.beta, desirable_weight=cfg.desirable_weight,
                     undesirable_weight=cfg.undesirable_weight)


def build_trainer(parts: dict[str, Any]):
    from trl import KTOTrainer

    trainer = KTOTrainer(ref_model=None, **parts)
    common.freeze_reference_adapter(trainer.model)
    return trainer


def start_fields(trainer, init_dir: Path | None) -> dict[str, Any]:
    return common.reference_fields(trainer, init_dir, "KTO")
