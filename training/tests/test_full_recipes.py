"""A full fine-tune in the real training subprocess: DPO continuing a LoRA adapter with
``finetuning_type=full`` merges the adapter, trains every weight against TRL's frozen copy of the
starting model, and saves a whole model directory vLLM can load (the SFT path runs end to end in
``tests/test_full_finetune_loop.py``). One optimizer step on SmolLM2, CPU."""

from __future__ import annotations

import json

import pytest

from training.recipes.servability import full_model_problems
from training.tests.test_recipe_run import (  # noqa: F401
    BASE_MODEL,
    _real_parts,
    log_tail,
    make_job,
    run,
    safetensors_header,
)

pytestmark = pytest.mark.training

PAIRS = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": good}],
          "rejected": [{"role": "assistant", "content": bad}]}
         for q, good, bad in [("What is the capital of France?", "Paris.", "Berlin."),
                              ("How many legs has a spider?", "Eight.", "Six.")]]


def test_a_full_dpo_run_merges_its_init_adapter_and_saves_a_servable_model(tmp_path, lora_adapter_dir):
    job_dir = make_job(tmp_path, "dpo", PAIRS, ["finetuning_type=full", "max_steps=1", "learning_rate=5e-7"],
                       init_adapter_path=lora_adapter_dir)
    rc, events = run(job_dir)
    assert rc == 0, log_tail(job_dir)
    start, done = events[1], events[-1]
    assert start["lora"] is None and start["reference"] == "model_copy"
    assert start["init_adapter_path"] == lora_adapter_dir
    assert done["event"] == "done" and done["finetuning_type"] == "full"
    model_dir = tmp_path / "adapter-dpo"
    assert done["model_dir"] == done["adapter_dir"] == str(model_dir)
    assert full_model_problems(model_dir, BASE_MODEL) == []
    assert not (model_dir / "adapter_config.json").exists()
    tensors = safetensors_header(model_dir / "model.safetensors")
    assert not any("lora" in name for name in tensors)  # merged, not stacked
    base_dtype = json.loads((BASE_MODEL / "config.json").read_text())["dtype"]
    assert base_dtype == "bfloat16" and {t["dtype"] for t in tensors.values()} == {"BF16"}
