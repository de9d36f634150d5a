"""training.recipes.config and training.recipes.progress: pure python, no torch, no Django."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.recipes import progress
from training.recipes.config import (
    PRESETS,
    DPORecipeConfig,
    RecipeConfigError,
    SFTRecipeConfig,
    apply_overrides,
    config_class,
    config_from_dict,
    parse_override,
    preset,
)
from training.recipes.servability import (
    DEFAULT_MAX_LORA_RANK,
    adapter_servability_problems,
    full_model_problems,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def problems_of(exc_info) -> list[str]:
    return exc_info.value.problems


def test_defaults_are_the_zephyr_lora_recipes():
    sft, dpo = preset("sft"), preset("dpo")
    assert (sft.learning_rate, sft.num_train_epochs, sft.lr_scheduler_type, sft.warmup_ratio) == (
        2e-4,
        1.0,
        "cosine",
        0.1,
    )
    assert (sft.lora_r, sft.lora_alpha, sft.lora_target_modules, sft.max_steps) == (16, 16, "all-linear", -1)
    assert (dpo.beta, dpo.learning_rate, dpo.num_train_epochs, dpo.loss_type) == (0.01, 5e-6, 1.0, "sigmoid")
    assert sft == SFTRecipeConfig() and dpo == DPORecipeConfig()
    assert set(PRESETS["sft"]) == set(PRESETS["dpo"]) == {"zephyr-lora", "cpu-smoke"}


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_presets_are_valid_and_servable(method):
    for name, cfg in PRESETS[method].items():
        cfg.validate()
        assert cfg.servability_problems(DEFAULT_MAX_LORA_RANK) == [], name
    smoke = preset(method, "cpu-smoke")
    assert 1 <= smoke.max_steps <= 10 and smoke.max_length == 256 and smoke.num_threads == 1
    assert smoke.logging_steps == 1 and smoke.per_device_train_batch_size <= 4


def test_preset_returns_a_copy():
    cfg = preset("sft", "cpu-smoke")
    cfg.lora_modules_to_save.append("lm_head")
    cfg.max_steps = 99
    assert PRESETS["sft"]["cpu-smoke"].lora_modules_to_save == []
    assert preset("sft", "cpu-smoke").max_steps != 99


def test_unknown_method_and_preset():
    with pytest.raises(RecipeConfigError, match="unknown training method 'ppo'"):
        config_class("ppo")
    with pytest.raises(RecipeConfigError, match="unknown sft preset 'huge'"):
        preset("sft", "huge")


def test_round_trip():
    for method in ("sft", "dpo"):
        cfg = apply_overrides(preset(method, "cpu-smoke"), ["lora_target_modules=q_proj,v_proj"])
        data = json.loads(json.dumps(cfg.to_dict()))
        assert config_from_dict(method, data) == cfg


def test_from_dict_lists_every_bad_key():
    with pytest.raises(RecipeConfigError) as exc:
        DPORecipeConfig.from_dict(
            {
                "learning_rate": "1e-4",
                "max_steps": 2.0,
                "seed": True,
                "per_device_train_batch_size": 0,
                "warmup_ratio": 1,
                "beta": 0,
                "loss_type": "kto",
                "lr_scheduler_type": "cosine_annealing",
                "lora_target_modules": "q_proj",
                "unknown_key": 1,
                "max_seq_length": 512,
                "max_steps_typo": 1,
            }
        )
    assert problems_of(exc) == [
        "learning_rate: expected a number, got string '1e-4'",
        "max_steps: expected an integer, got number 2.0",
        "seed: expected an integer, got boolean true",
        "unknown_key: unknown key for dpo recipe",
        "max_seq_length: unknown key for dpo recipe",
        "max_steps_typo: unknown key for dpo recipe",
        "per_device_train_batch_size: 0 is out of range [1, 4096]",
        "lr_scheduler_type: 'cosine_annealing' is not one of linear, cosine, cosine_with_restarts, "
        "polynomial, constant, constant_with_warmup, inverse_sqrt",
        "warmup_ratio: 1.0 is out of range [0, 1)",
        "beta: 0.0 is out of range (0, 100]",
        "loss_type: 'kto' is not one of sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, "
        "sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sft, sigmoid_norm",
        "lora_target_modules: must be 'all-linear' or a list of module names",
    ]
    assert "invalid recipe config:" in str(exc.value)


def test_sft_config_rejects_dpo_keys():
    with pytest.raises(RecipeConfigError) as exc:
        SFTRecipeConfig.from_dict({"beta": 0.1})
    assert problems_of(exc) == ["beta: unknown key for sft recipe"]


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"max_steps": 0}, "max_steps: 0 is out of range [1, 10000000] or -1"),
        ({"learning_rate": 0}, "learning_rate: 0.0 is out of range (0, 1]"),
        ({"learning_rate": float("nan")}, "learning_rate: expected a finite number, got nan"),
        ({"lora_dropout": 1.0}, "lora_dropout: 1.0 is out of range [0, 1)"),
        ({"max_length": 8}, "max_length: 8 is out of range [16, 1048576]"),
        ({"lora_target_modules": []}, "lora_target_modules: must be a non-empty list of module names"),
        (
            {"lora_target_modules": ["q_proj", 3]},
            "lora_target_modules: expected a list of strings, got a list",
        ),
        ({"use_dora": "yes"}, "use_dora: expected true or false, got string 'yes'"),
        ({"num_threads": -1}, "num_threads: -1 is out of range [0, 1024]"),
    ],
)
def test_from_dict_single_problems(data, problem):
    with pytest.raises(RecipeConfigError) as exc:
        SFTRecipeConfig.from_dict(data)
    assert problems_of(exc) == [problem]


def test_from_dict_accepts_ints_for_floats_and_max_steps_minus_one():
    cfg = SFTRecipeConfig.from_dict({"num_train_epochs": 3, "max_steps": -1, "learning_rate": 1})
    assert cfg.num_train_epochs == 3.0 and isinstance(cfg.num_train_epochs, float)
    with pytest.raises(RecipeConfigError, match="config must be a JSON object"):
        SFTRecipeConfig.from_dict([("lr", 1)])


def test_apply_overrides_coerces_types_and_aliases():
    cfg = apply_overrides(
        preset("dpo", "cpu-smoke"),
        [
            "lr=1e-4",
            "max_steps=3",
            "beta = 0.2",
            "gradient-checkpointing=yes",
            "lora_target_modules=q_proj, v_proj",
            "loss_type=ipo",
            "num_train_epochs=2",
            "max_train_rows=1_000",
        ],
    )
    assert cfg.learning_rate == 1e-4 and cfg.max_steps == 3 and cfg.beta == 0.2
    assert cfg.gradient_checkpointing is True and cfg.loss_type == "ipo"
    assert cfg.lora_target_modules == ["q_proj", "v_proj"] and cfg.num_train_epochs == 2.0
    assert cfg.max_train_rows == 1000
    assert apply_overrides(cfg, ['lora_target_modules=["o_proj"]']).lora_target_modules == ["o_proj"]
    assert apply_overrides(cfg, ["lora_target_modules=all-linear"]).lora_target_modules == "all-linear"
    assert apply_overrides(cfg, []) == cfg


def test_apply_overrides_lists_every_problem():
    with pytest.raises(RecipeConfigError) as exc:
        apply_overrides(
            preset("sft", "cpu-smoke"),
            [
                "lr=fast",
                "max_steps=2.5",
                "nokey",
                "=3",
                "foo=1",
                "gradient_checkpointing=maybe",
                "warmup_ratio=inf",
                "lora_r=0",
            ],
        )
    assert problems_of(exc) == [
        "learning_rate: expected a number, got 'fast'",
        "max_steps: expected an integer, got '2.5'",
        "'nokey': expected key=value",
        "'=3': expected key=value",
        "foo: unknown key for sft recipe",
        "gradient_checkpointing: expected true or false, got 'maybe'",
        "warmup_ratio: expected a finite number, got 'inf'",
        "lora_r: 0 is out of range [1, 1024]",
    ]


def test_parse_override():
    assert parse_override(" lr = 3e-4 ") == ("learning_rate", "3e-4")
    assert parse_override("x=a=b") == ("x", "a=b")
    with pytest.raises(ValueError):
        parse_override("novalue")


def test_servability():
    cfg = SFTRecipeConfig.from_dict(
        {
            "lora_r": 32,
            "use_dora": True,
            "lora_modules_to_save": ["lm_head", "embed_tokens"],
            "lora_target_modules": ["q_proj", "embed_tokens", "lm_head"],
        }
    )
    assert cfg.servability_problems(16) == [
        "lora_r: rank 32 is above the vLLM server's --max-lora-rank 16",
        "use_dora: vLLM cannot serve DoRA adapters",
        "lora_modules_to_save: vLLM cannot serve adapters with modules_to_save (lm_head, embed_tokens)",
        "lora_target_modules: vLLM cannot serve LoRA on embeddings or the LM head (embed_tokens, lm_head)",
    ]
    assert SFTRecipeConfig.from_dict({"lora_r": 32}).servability_problems(32) == []
    with pytest.raises(RecipeConfigError, match="max-lora-rank 16"):
        SFTRecipeConfig.from_dict({"lora_r": 32}).check_servable()


def test_adapter_servability_on_disk(tmp_path):
    assert adapter_servability_problems(tmp_path) == [f"{tmp_path / 'adapter_config.json'} is missing"]
    good = {
        "peft_type": "LORA",
        "r": 16,
        "bias": "none",
        "use_dora": False,
        "modules_to_save": None,
        "target_modules": ["q_proj", "v_proj"],
        "rank_pattern": {},
    }
    (tmp_path / "adapter_config.json").write_text(json.dumps(good))
    assert adapter_servability_problems(tmp_path) == [f"{tmp_path} has no adapter_model.safetensors"]
    (tmp_path / "adapter_model.safetensors").write_bytes(b"x")
    assert adapter_servability_problems(tmp_path) == []
    bad = dict(good, r=8, rank_pattern={"q_proj": 64}, use_dora=True, modules_to_save=["lm_head"], bias="all")
    (tmp_path / "adapter_config.json").write_text(json.dumps(bad))
    assert adapter_servability_problems(tmp_path) == [
        "LoRA bias terms are not supported by vLLM",
        "r: rank 64 is above the vLLM server's --max-lora-rank 16",
        "use_dora: vLLM cannot serve DoRA adapters",
        "modules_to_save: vLLM cannot serve adapters with modules_to_save (lm_head)",
    ]


def test_web_side_modules_import_without_torch_or_django():
    code = (
        "import sys; import training.formats, training.builtin, training.recipes.config, training.recipes.progress; "
        "bad = sorted(m for m in ('torch', 'django', 'transformers', 'trl') if m in sys.modules); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------- progress protocol


def test_progress_events_round_trip(tmp_path):
    path = tmp_path / progress.PROGRESS_FILE
    assert progress.read_events(path) == []
    progress.append_event(path, "start", total_steps=4)
    progress.append_event(path, "log", step=1, loss=float("nan"), extra={"x": float("inf")})
    with open(path, "a") as fh:
        fh.write('{"event": "log", "st')  # a torn, still-being-written line
    events = progress.read_events(path)
    assert [e["event"] for e in events] == ["start", "log"]
    assert events[1]["loss"] is None and events[1]["extra"] == {"x": None}
    assert all(isinstance(e["ts"], float) for e in events)
    assert progress.final_event(events) is None
    progress.append_event(tmp_path / "p2.jsonl", "done", adapter_dir="/x", metrics={})
    assert progress.final_event(progress.read_events(tmp_path / "p2.jsonl"))["event"] == "done"


def test_write_job_and_cancel(tmp_path):
    job_dir = tmp_path / "job"
    path = progress.write_job(
        job_dir,
        method="sft",
        base_model_path="/m",
        dataset_path="/d.jsonl",
        output_dir="/o",
        config=preset("sft", "cpu-smoke").to_dict(),
        max_lora_rank=16,
    )
    job = json.loads(path.read_text())
    assert job["method"] == "sft" and job["max_lora_rank"] == 16 and "device" not in job
    assert config_from_dict(job["method"], job["config"]) == preset("sft", "cpu-smoke")
    assert not progress.cancel_requested(job_dir)
    progress.request_cancel(job_dir)
    assert progress.cancel_requested(job_dir)
    assert (progress.EXIT_OK, progress.EXIT_ERROR, progress.EXIT_CANCELLED) == (0, 1, 3)


# ---------------------------------------------------------------------- full fine-tunes


def test_finetuning_type_is_lora_by_default_and_takes_full_only_besides():
    assert SFTRecipeConfig().finetuning_type == "lora" and not SFTRecipeConfig().full
    full = apply_overrides(preset("sft", "cpu-smoke"), ["finetuning_type=full"])
    assert full.full and full.to_dict()["finetuning_type"] == "full"
    with pytest.raises(RecipeConfigError) as err:
        apply_overrides(preset("sft", "cpu-smoke"), ["finetuning_type=qlora"])
    assert problems_of(err) == ["finetuning_type: 'qlora' is not one of lora, full"]


def test_a_full_fine_tune_on_a_4bit_base_is_refused_as_a_config_problem():
    with pytest.raises(RecipeConfigError) as err:
        config_from_dict("dpo", {"finetuning_type": "full", "load_in_4bit": True})
    assert len(problems_of(err)) == 1 and problems_of(err)[0].startswith("load_in_4bit: QLoRA is LoRA")
    assert config_from_dict("dpo", {"finetuning_type": "lora", "load_in_4bit": True}).load_in_4bit


def test_lora_servability_checks_do_not_apply_to_a_full_fine_tune():
    lora = config_from_dict("sft", {"lora_r": 64, "use_dora": True})
    assert len(lora.servability_problems(16)) == 2
    full = config_from_dict("sft", {"lora_r": 64, "use_dora": True, "finetuning_type": "full"})
    assert full.servability_problems(16) == []
    full.check_servable(16)


def test_a_reward_model_cannot_be_a_full_fine_tune():
    with pytest.raises(RecipeConfigError) as err:
        config_from_dict("reward", {"finetuning_type": "full"})
    assert problems_of(err)[0].startswith("finetuning_type: a reward model is trained as a LoRA adapter")


def test_a_saved_full_model_is_checked_the_way_vllm_loads_it(tmp_path):
    base, saved = tmp_path / "base", tmp_path / "saved"
    base.mkdir()
    saved.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (saved / "config.json").write_text(json.dumps({"model_type": "gemma3"}))
    problems = full_model_problems(saved, base)
    assert any("model_type is 'gemma3'" in p for p in problems)
    assert any("no .safetensors" in p for p in problems) and any("no tokenizer" in p for p in problems)
    (saved / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (saved / "model.safetensors").write_bytes(b"x")
    (saved / "tokenizer.json").write_text("{}")
    (saved / "tokenizer_config.json").write_text("{}")
    assert full_model_problems(saved, base) == [f"{saved} has no chat template"]
    (saved / "chat_template.jinja").write_text("{{ messages }}")
    assert full_model_problems(saved, base) == []
