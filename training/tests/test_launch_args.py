"""A job's settings as overrides and as a command line give back the same recipe config (pure: runs
with ``-p no:django``)."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from training.launch_args import (
    base_preset,
    command_arguments,
    config_overrides,
    launch_command,
    override_text,
)
from training.recipes.config import PRESETS, apply_overrides, config_class, preset

VARIED = {
    "learning_rate": 3.7e-05, "max_steps": 7, "lora_target_modules": ["q_proj", "v_proj"], "seed": 1234,
    "gradient_checkpointing": True, "warmup_ratio": 0.0, "lr_scheduler_type": "linear", "weight_decay": 0.01,
}


def _roundtrip(method: str, preset_name: str, config: dict) -> dict:
    lines = config_overrides(method, preset_name, config)
    name = base_preset(method, preset_name)
    start = preset(method, name) if name else config_class(method)()
    return apply_overrides(start, lines).to_dict()


@pytest.mark.parametrize("method", sorted(PRESETS))
def test_the_overrides_turn_every_preset_back_into_a_varied_config(method):
    for name, config in PRESETS[method].items():
        varied = dataclasses.replace(config, **{k: v for k, v in VARIED.items() if k != "warmup_ratio"})
        wanted = varied.to_dict()
        assert _roundtrip(method, name, wanted) == wanted
        assert _roundtrip(method, "", wanted) == wanted  # from the method's defaults


def test_an_unchanged_preset_needs_no_overrides_and_a_change_is_one_line_each():
    config = preset("dpo", "cpu-smoke").to_dict()
    assert config_overrides("dpo", "cpu-smoke", config) == []
    config.update(beta=0.25, max_steps=3)
    assert config_overrides("dpo", "cpu-smoke", config) == ["max_steps=3", "beta=0.25"]


def test_a_preset_that_no_longer_exists_is_replaced_by_the_defaults():
    config = preset("sft", "cpu-smoke").to_dict()
    assert base_preset("sft", "gone-preset") == ""
    lines = config_overrides("sft", "gone-preset", config)
    assert "max_steps=8" in lines and apply_overrides(config_class("sft")(), lines).to_dict() == config


def test_values_are_written_the_way_overrides_read_them():
    assert [override_text(v) for v in (True, False, 5e-06, 0.1, 3, "all-linear", ["a", "b"], [])] == [
        "true", "false", "5e-06", "0.1", "3", "all-linear", '["a", "b"]', "[]"]
    assert float(override_text(1 / 3)) == 1 / 3  # the shortest text that reads back to the same float


def test_keys_the_recipe_no_longer_has_are_left_out():
    config = {**preset("sft", "cpu-smoke").to_dict(), "retired_knob": 3}
    assert config_overrides("sft", "cpu-smoke", config) == []


def test_the_command_is_shell_quoted_and_its_arguments_come_back():
    command = launch_command(method="sft", base="smollm2-135m-instruct", dataset="my-data", preset_name="cpu-smoke",
                             overrides=["lora_target_modules=[\"q_proj\", \"v_proj\"]", "learning_rate=0.0001"],
                             init_job=3, reward_job=None)
    assert command.startswith(".venv/bin/python manage.py launch_training --method sft ")
    assert command_arguments(command) == [
        "--method", "sft", "--base", "smollm2-135m-instruct", "--dataset", "my-data", "--preset", "cpu-smoke",
        "--set", 'lora_target_modules=["q_proj", "v_proj"]', "--set", "learning_rate=0.0001", "--init-job", "3"]
    # what a shell would pass is what command_arguments reads
    assert shlex.split(command)[3:] == command_arguments(command)
