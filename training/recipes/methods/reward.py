"""A reward model: TRL's ``RewardTrainer`` (Bradley-Terry loss) on preference pairs, a one-output
sequence-classification head on the base (or on an SFT policy merged into it) with LoRA.

A seeded ``heldout_fraction`` of the pairs never trains; after training the share of them whose
chosen reply scores above the rejected one is the ``heldout_accuracy`` of the done event. The
result is a scorer (``training.recipes.scoring``), never served by vLLM.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from training.recipes import scoring
from training.recipes.config import RewardRecipeConfig

MODEL = "seq-cls"
PEFT_TASK_TYPE = "SEQ_CLS"


def split_rows(rows: list[dict[str, Any]], cfg: RewardRecipeConfig) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows): a seeded shuffle, at least one row on each side when there are two."""
    if len(rows) < 2:
        return rows, []
    order = list(range(len(rows)))
    random.Random(cfg.seed + 1).shuffle(order)
    held = min(len(rows) - 1, max(1, round(len(rows) * cfg.heldout_fraction)))
    return [rows[i] for i in sorted(order[held:])], [rows[i] for i in sorted(order[:held])]


def trainer_config(fields: dict[str, Any], cfg: RewardRecipeConfig):
    from trl import RewardConfig

    return RewardConfig(**fields, center_rewards_coefficient=cfg.center_rewards_coefficient or None)


def build_trainer(parts: dict[str, Any]):
    from trl import RewardTrainer

    return RewardTrainer(**parts)


def start_fields(trainer, init_dir: Path | None) -> dict[str, Any]:
    return {"scorer": True}


def heldout_metrics(trainer, heldout: list[dict], tokenizer, cfg: RewardRecipeConfig) -> dict[str, Any]:
    model = trainer.model
    model.eval()
    accuracy = scoring.pair_accuracy(tokenizer, model, heldout, cfg.max_length)
    return {"heldout_accuracy": accuracy, "heldout_rows": len(heldout)}
