"""Direct preference optimisation on chosen/rejected pairs: TRL's ``DPOTrainer``.

The reference is the policy the run starts from (π_ref = π_SFT): the base model for a new
adapter, the init adapter when one is continued.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.recipes.config import DPORecipeConfig

log = logging.getLogger(__name__)


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
    # PEFT 0.21 leaves an added, inactive adapter frozen; make sure of it across versions,
    # since a reference that trains (or holds optimizer state) would be no reference.
    for name, param in trainer.model.named_parameters():
        if ".ref." in name:
            param.requires_grad_(False)
    return trainer


def start_fields(trainer, init_dir: Path | None) -> dict[str, Any]:
    has_ref = "ref" in trainer.model.peft_config
    if init_dir and not has_ref:  # TRL's fallback for old PEFT with target_parameters
        log.warning("DPO reference is the base model (adapter disabled), not the init adapter")
    return {"reference": "init_adapter" if has_ref else "base"}
