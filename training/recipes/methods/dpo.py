"""Direct preference optimisation on chosen/rejected pairs: TRL's ``DPOTrainer``.

The reference is the policy the run starts from (π_ref = π_SFT): the base model for a new
adapter, the init adapter when one is continued.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.recipes import common
from training.recipes.config import DPORecipeConfig


def trainer_config(fields: dict[str, Any], cfg: DPORecipeConfig):
    from trl import DPOConfig

    return DPOConfig(**fields, beta=cfg.beta, loss_type=[cfg.loss_type])


def build_trainer(parts: dict[str, Any]):
    from trl import DPOTrainer

    # DPO's reference should be the policy it starts from (π_ref = π_SFT). With a new
    # adapter that is the base model, which TRL gets by disabling the adapter. Given a
    # PeftModel, TRL 1.16 adds a "ref" adapter copied from the loaded one and runs the
    # reference pass through it: the SFT policy, at the cost of one more adapter's weights
    # (20 MB for SmolLM2 at r16) and no second base model -- cheap on a CPU, so we take it.
    trainer = DPOTrainer(ref_model=None, **parts)
    common.freeze_reference_adapter(trainer.model)
    return trainer


def start_fields(trainer, init_dir: Path | None) -> dict[str, Any]:
    return common.reference_fields(trainer, init_dir, "DPO")
