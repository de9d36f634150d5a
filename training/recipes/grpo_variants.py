"""GRPO's loss variants (standard library only): the values TRL 1.16's ``GRPOConfig`` accepts for
``loss_type``, ``importance_sampling_level`` and ``scale_rewards``, the published variants offered
as presets, and the combinations refused before a run.

Contracts:

* ``GRPO_LOSS_TYPES`` is exactly the list of ``GRPOConfig.loss_type`` values of TRL 1.16
  (``trl/trainer/grpo_config.py``; ``training/tests/test_grpo_variants.py`` checks it against the
  installed TRL). They differ in how per-token losses are aggregated: ``grpo`` by each sequence's
  length (length-biased), ``dr_grpo`` by a constant (``max_completion_length``), ``dapo`` (TRL's
  default) by the active tokens of the accumulated batch, ``bnpo`` by those of the local batch;
  ``cispo``, ``sapo``, ``luspo`` and ``vespo`` change the clipping itself.
* ``importance_sampling_level="sequence"`` is GSPO: one importance ratio per completion (the mean
  of its token log-ratios) instead of one per token. Like any ratio it only matters off-policy,
  i.e. when a generation batch is used for several optimizer steps (``steps_per_generation``
  above ``gradient_accumulation_steps``, as the GSPO preset does).
* ``GRPO_VARIANTS[name]`` are the settings of each published variant; ``training.recipes.config``
  turns each into a GRPO preset of the same name (on the ``zephyr-lora`` sizes; on a CPU, take
  ``cpu-smoke`` and set the same keys).
* ``grpo_problems(...)`` lists, one ``"key: reason"`` line each, the combinations TRL would run
  but not as asked (it only logs a warning) or would refuse late: part of the recipe config's
  validation, so the launch form and ``launch_training`` refuse them with the reason.
"""

from __future__ import annotations

# trl 1.16 GRPOConfig.loss_type values, in TRL's order
GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
SCALE_REWARDS = ("group", "batch", "none")  # divide advantages by the group's std, the batch's, or not at all
# the losses that sum per-token terms: with one ratio per sequence they weight each one by its length
_TOKEN_SUM_LOSSES = ("bnpo", "dr_grpo", "dapo", "cispo")

GRPO_VARIANTS: dict[str, dict] = {
    # DeepSeekMath's GRPO: each sequence's token losses averaged over its own length
    "grpo-original": {"loss_type": "grpo"},
    # Dr. GRPO (arXiv 2503.20783): a constant normaliser and no division by the reward std, removing
    # the length and question-difficulty biases
    "dr-grpo": {"loss_type": "dr_grpo", "scale_rewards": "none"},
    # DAPO (arXiv 2503.14476): token-level normalisation over the accumulated batch (TRL's default
    # loss) with its "clip-higher" upper bound 0.28
    "dapo": {"loss_type": "dapo", "epsilon_high": 0.28},
    # BNPO: normalised over the local batch's tokens
    "bnpo": {"loss_type": "bnpo"},
    # GSPO (arXiv 2507.18071 v2, section 5.1, as TRL's paper index reproduces it): sequence-level
    # ratios with a much tighter clip, no KL, and each generation batch split into 4 steps so the
    # ratios are off-policy and matter
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence", "beta": 0.0, "epsilon": 3e-4,
             "epsilon_high": 4e-4, "steps_per_generation": 4},
}


def grpo_problems(*, loss_type: str, importance_sampling_level: str, epsilon: float,
                  epsilon_high: float) -> list[str]:
    """What is wrong with this combination of GRPO loss settings (values already in their choices)."""
    out = []
    sequence = importance_sampling_level == "sequence"
    if loss_type == "luspo" and not sequence:
        out.append("loss_type: luspo is GSPO's length-unbiased loss and needs importance_sampling_level=sequence")
    if loss_type == "vespo" and sequence:
        out.append("importance_sampling_level: vespo computes its sequence-level weights itself; keep "
                   "importance_sampling_level=token")
    if sequence and loss_type in _TOKEN_SUM_LOSSES:
        out.append(f"importance_sampling_level: with sequence-level ratios the {loss_type} loss sums per-token terms, "
                   "weighting each sequence by its length instead of optimising GSPO's per-sequence objective; "
                   "use loss_type=grpo (GSPO, the gspo preset) or luspo")
    if epsilon_high and epsilon_high < epsilon:
        out.append(f"epsilon_high: the upper clip bound {epsilon_high:g} is below epsilon {epsilon:g} "
                   "(0: the same as epsilon)")
    return out
