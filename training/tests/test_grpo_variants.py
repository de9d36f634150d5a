"""GRPO's loss variants as recipe settings and presets (``training.recipes.grpo_variants``): the values
agree with the installed TRL, each variant is a valid preset, and the combinations TRL would run
other than asked are refused with the reason. Their real training runs are in
``test_preference_methods.py``; GPU generation through vLLM runs in ``scripts/gpu_check.sh``."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from django.conf import settings as django_settings

from tests.helpers import missing_part
from training.recipes.backends import gpu_refusal
from training.recipes.config import PRESETS, RecipeConfigError, apply_overrides, config_from_dict, preset
from training.recipes.grpo_variants import (
    GRPO_LOSS_TYPES,
    GRPO_VARIANTS,
    IMPORTANCE_SAMPLING_LEVELS,
    SCALE_REWARDS,
)

# Reads TRL's own GRPOConfig in the engine environment: its loss types as its help text lists them
# ("Supported values are 'grpo', ..."), and its defaults of the settings the recipe exposes.
TRL_FACTS = """
import dataclasses, json, re
from trl import GRPOConfig
fields = {f.name: f for f in dataclasses.fields(GRPOConfig)}
help = fields["loss_type"].metadata["help"]
listed = help[help.index("Supported values are"):].split(". ")[0]
names = ("loss_type", "importance_sampling_level", "scale_rewards", "epsilon", "epsilon_high", "steps_per_generation")
print(json.dumps({"loss_types": re.findall(r"'(\\w+)'", listed),
                  "defaults": {n: fields[n].default for n in names}}))
"""


def test_the_choices_and_defaults_are_trls():
    python = django_settings.ARENA_ENGINE_PYTHON
    try:
        out = subprocess.run([python, "-c", TRL_FACTS], capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        missing_part(f"engine environment missing: {python} (make engine)")
    assert out.returncode == 0, out.stderr[-2000:]
    trl = json.loads(out.stdout.splitlines()[-1])
    assert tuple(trl["loss_types"]) == GRPO_LOSS_TYPES
    ours = config_from_dict("grpo", {})
    assert trl["defaults"] == {"loss_type": ours.loss_type, "importance_sampling_level": ours.importance_sampling_level,
                               "scale_rewards": ours.scale_rewards, "epsilon": ours.epsilon,
                               "epsilon_high": None, "steps_per_generation": None}  # our 0s: TRL's None
    assert ours.importance_sampling_level == IMPORTANCE_SAMPLING_LEVELS[0] and ours.scale_rewards == SCALE_REWARDS[0]


@pytest.mark.parametrize("name", list(GRPO_VARIANTS))
def test_each_variant_is_a_valid_grpo_preset_with_its_settings(name):
    config = preset("grpo", name)
    assert config.problems() == []
    for key, value in GRPO_VARIANTS[name].items():
        assert getattr(config, key) == value
    assert name not in PRESETS["sft"]  # the variants are GRPO's alone


def test_the_gspo_preset_is_the_papers_setting():
    gspo = preset("grpo", "gspo")
    assert (gspo.loss_type, gspo.importance_sampling_level, gspo.beta) == ("grpo", "sequence", 0.0)
    assert (gspo.epsilon, gspo.epsilon_high, gspo.steps_per_generation) == (3e-4, 4e-4, 4)


def test_a_variant_applies_to_the_cpu_smoke_preset_as_overrides():
    config = apply_overrides(preset("grpo", "cpu-smoke"), ["loss_type=dr_grpo", "scale_rewards=none"])
    assert (config.loss_type, config.scale_rewards, config.max_steps) == ("dr_grpo", "none", 4)


@pytest.mark.parametrize("values, problem", [
    ({"loss_type": "ppo"}, "loss_type: 'ppo' is not one of grpo, dr_grpo, dapo, bnpo, cispo, sapo, luspo, vespo"),
    ({"importance_sampling_level": "seq"}, "importance_sampling_level: 'seq' is not one of token, sequence"),
    ({"scale_rewards": "std"}, "scale_rewards: 'std' is not one of group, batch, none"),
    ({"loss_type": "luspo"}, "luspo is GSPO's length-unbiased loss and needs importance_sampling_level=sequence"),
    ({"loss_type": "vespo", "importance_sampling_level": "sequence"},
     "vespo computes its sequence-level weights itself"),
    ({"importance_sampling_level": "sequence"}, "the dapo loss sums per-token terms"),  # TRL's default loss
    ({"loss_type": "bnpo", "importance_sampling_level": "sequence"}, "use loss_type=grpo (GSPO, the gspo preset)"),
    ({"epsilon": 0.2, "epsilon_high": 0.1}, "epsilon_high: the upper clip bound 0.1 is below epsilon 0.2"),
    ({"epsilon": 0}, "epsilon: 0.0 is out of range (0, 100]"),
    ({"steps_per_generation": 3, "per_device_train_batch_size": 2, "num_generations": 4},
     "num_generations: must divide per_device_train_batch_size x steps_per_generation"),
])
def test_a_combination_trl_would_not_run_as_asked_is_refused_with_the_reason(values, problem):
    with pytest.raises(RecipeConfigError, match=re.escape(problem)):
        config_from_dict("grpo", values)


def test_every_bad_key_is_listed_in_one_error():
    with pytest.raises(RecipeConfigError) as err:
        apply_overrides(preset("grpo", "cpu-smoke"), ["loss_type=luspo", "epsilon_high=0.01", "scale_rewards=x"])
    assert [p.split(":")[0] for p in err.value.problems] == ["scale_rewards", "loss_type", "epsilon_high"]


@pytest.mark.parametrize("setting, named", [({"use_vllm": True}, "use_vllm=true"),
                                            ({"load_in_4bit": True}, "load_in_4bit=true")])
def test_gpu_only_settings_are_refused_at_launch_without_declared_gpu_workers(setting, named):
    config = config_from_dict("grpo", setting).to_dict()
    assert gpu_refusal(config, "cuda") == ""
    refusal = gpu_refusal(config, "")
    assert refusal.startswith(f"{named} needs an NVIDIA CUDA GPU on the training workers")
    assert "ARENA_TRAINING_DEVICE is not set (auto), not cuda" in refusal
