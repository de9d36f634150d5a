"""Online RL against a trained reward model: TRL's ``GRPOTrainer``.

Why GRPO rather than RLOO: both are TRL's on-policy successors of PPO (which TRL no longer
ships) and take the same reward model; GRPO's group-normalised advantages need no value model
and it is the trainer TRL develops first (vLLM generation, LoRA). Each prompt gets
``num_generations`` completions, scored by the reward model (``job.json``'s
``reward_model_path``: a scorer checkpoint's adapter, merged into the base's classification
body). Generation runs in the policy on the CPU, or through vLLM (``use_vllm``, colocated) on
a GPU machine (``check_device`` refuses it elsewhere). With ``beta`` 0 (TRL's default) no
reference model is loaded. The loss variant (``loss_type``, GSPO's sequence-level importance
sampling, reward scaling, clip bounds) is the config's: ``training.recipes.grpo_variants``.

TRL's GRPO never truncates a prompt, and arena-hard prompts run to 2,500 tokens: ``fit_rows``
drops the prompts longer than ``max_length - max_completion_length`` tokens (as the reward
trainer drops over-long pairs), so ``max_length`` bounds every sequence, hence time and memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.recipes import scoring
from training.recipes.common import JobError
from training.recipes.config import GRPORecipeConfig


def extra_parts(spec: dict[str, Any], base: Path, device: str) -> dict[str, Any]:
    path = spec.get("reward_model_path")
    if not path:
        raise JobError("GRPO needs a reward model: job.json has no reward_model_path")
    if not (Path(path) / "adapter_config.json").is_file():
        raise JobError(f"reward model {path} is not a saved scorer (no adapter_config.json)")
    tokenizer, reward_model = scoring.load_scorer(base, Path(path), device)
    return {"reward_funcs": reward_model, "reward_processing_classes": tokenizer}


def prompt_budget(cfg: GRPORecipeConfig) -> int:
    """The longest prompt, in tokens, that leaves room for a whole completion within ``max_length``."""
    return cfg.length_limit()


def fit_rows(rows: list[dict[str, Any]], tokenizer, cfg: GRPORecipeConfig) -> list[dict[str, Any]]:
    """The rows whose chat-formatted prompt fits ``prompt_budget``."""
    budget = prompt_budget(cfg)
    return [row for row in rows
            if len(tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True,
                                                 return_dict=True)["input_ids"]) <= budget]


def check_device(cfg: GRPORecipeConfig, device: str) -> None:
    """Generation through vLLM runs colocated on the training GPU: refused clearly anywhere else."""
    if cfg.use_vllm and device != "cuda":
        raise JobError("use_vllm (GRPO generation through vLLM, colocated with training) needs a CUDA GPU; this job "
                       "runs on the CPU. Generate with the policy itself here (use_vllm=false).")


def trainer_config(fields: dict[str, Any], cfg: GRPORecipeConfig):
    from trl import GRPOConfig

    fields = dict(fields)
    fields.pop("max_length")  # GRPOConfig bounds the completion only; fit_rows bounds the prompt
    vllm = {}
    if cfg.use_vllm:
        # the colocated engine's context: fit_rows keeps every prompt + completion within max_length, and
        # a bound keeps vLLM from reserving KV cache for the model's whole context beside training
        vllm = {"vllm_mode": "colocate", "vllm_max_model_length": cfg.max_length}
        if cfg.loss_type == "vespo":  # TRL's VESPO accepts only a token-level vLLM sampling correction
            vllm["vllm_importance_sampling_mode"] = "token_truncate"
    return GRPOConfig(**fields, num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                      temperature=cfg.temperature, beta=cfg.beta, use_vllm=cfg.use_vllm, loss_type=cfg.loss_type,
                      importance_sampling_level=cfg.importance_sampling_level, scale_rewards=cfg.scale_rewards,
                      epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high or None,
                      steps_per_generation=cfg.steps_per_generation or None, **vllm)


def build_trainer(parts: dict[str, Any]):
    from trl import GRPOTrainer

    return GRPOTrainer(**parts)


def start_fields(trainer, init_dir: Path | None) -> dict[str, Any]:
    """The loss variant as TRL's trainer holds it (not as asked): what this run really optimises."""
    args = trainer.args
    return {"reward_model": True, "loss_type": args.loss_type, "importance_sampling_level": args.importance_sampling_level,
            "scale_rewards": args.scale_rewards, "epsilon": args.epsilon, "epsilon_high": args.epsilon_high,
            "steps_per_generation": args.steps_per_generation, "use_vllm": args.use_vllm}
