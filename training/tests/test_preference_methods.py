"""The real recipe subprocess for the methods beyond SFT and DPO, on the real SmolLM2-135M-Instruct
and real data (CPU, tiny): a reward model on HH-RLHF pairs (with its held-out accuracy), GRPO
against that reward model (and each of its loss variants), the scorer and the gate with it, and
the refusals. KTO and continued pretraining are trained once, by a real worker, in
tests/test_training_methods.py, which checks their recipe events and adapters as well.

Skipped unless the engine env, the converted model and the shared data exist (failed instead
under ``ARENA_REQUIRE_REAL_PARTS=1``).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from serving.models import ServedModel
from tests.helpers import shared_data_file
from training import gate
from training.models import Checkpoint, Dataset, Job
from training.recipes import progress
from training.recipes.grpo_variants import GRPO_VARIANTS
from training.tests.test_recipe_run import (  # noqa: F401 - _real_parts is an autouse fixture
    ARENA_ENGINE_PYTHON,
    BASE_MODEL,
    REPO_ROOT,
    RUN_TIMEOUT_S,
    _real_parts,
    assert_progress,
    assert_servable_adapter,
    dpo_rows,
    log_tail,
    make_job,
    run,
    safetensors_header,
    sft_rows,
)

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory, dpo_rows):  # noqa: F811
    """One reward model trained on 6 HH-RLHF pairs, 2 held out: (its job dir, events, adapter dir)."""
    tmp_path = tmp_path_factory.mktemp("reward")
    job_dir = make_job(tmp_path, "reward", dpo_rows, overrides=["heldout_fraction=0.25"])
    rc, events = run(job_dir)
    assert rc == progress.EXIT_OK, log_tail(job_dir)
    return job_dir, events, tmp_path / "adapter-reward"


def test_reward_model_is_a_scorer_with_a_heldout_accuracy(reward_run):
    job_dir, events, adapter = reward_run
    done = events[-1]
    assert done["event"] == "done", events
    metrics = done["metrics"]
    # a share of the 2 held-out pairs: 0, 1/2 or 1 (a NaN, a rate over another count or a missing value fails)
    assert metrics["heldout_rows"] == 2 and metrics["heldout_accuracy"] in (0.0, 0.5, 1.0), metrics
    assert events[1]["num_train_rows"] == 6  # the held-out pairs never train
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["task_type"] == "SEQ_CLS" and "score" in " ".join(cfg.get("modules_to_save") or [])
    tensors = safetensors_header(adapter / "adapter_model.safetensors")
    assert any("score" in k for k in tensors)  # the trained head is saved with the adapter


def test_the_scorer_scores_any_text_pair(reward_run, tmp_path):
    _, _, adapter = reward_run
    request = tmp_path / "request.json"
    request.write_text(json.dumps({
        "base_model_path": str(BASE_MODEL), "adapter_path": str(adapter), "max_length": 128,
        "items": [{"prompt": [{"role": "user", "content": "What is 2+2?"}], "a": "4.", "b": "Go away."},
                  {"prompt": [{"role": "user", "content": "Hi"}], "a": "Hello!", "b": "Hello!"}]}))
    out = subprocess.run([str(ARENA_ENGINE_PYTHON), "-m", "training.recipes.scoring", str(request)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    scores = json.loads(out.stdout.splitlines()[-1])["scores"]
    assert len(scores) == 2 and all(isinstance(x, float) for pair in scores for x in pair)
    assert scores[0][0] != scores[0][1] and scores[1][0] == pytest.approx(scores[1][1])  # same text, same score


def test_grpo_against_the_reward_model(tmp_path, reward_run, dpo_rows):  # noqa: F811
    _, _, adapter = reward_run
    # 7 short prompts and one far over max_length - max_completion_length = 112 tokens, which is dropped
    prompts = [{"prompt": r["prompt"]} for r in dpo_rows[:7]]
    prompts.append({"prompt": [{"role": "user", "content": "Summarise this: " + "the sea is wide and deep. " * 60}]})
    job_dir = make_job(tmp_path, "grpo", prompts, overrides=["num_generations=2", "max_completion_length=16"],
                       reward_model_path=str(adapter))
    rc, events = run(job_dir)
    assert rc == progress.EXIT_OK, log_tail(job_dir)
    assert_progress(events, "grpo", 2)
    assert (events[1]["num_rows"], events[1]["num_train_rows"]) == (8, 7)
    for e in (e for e in events if e["event"] == "log"):
        assert isinstance(e["reward"], float)  # the reward model's scores of the sampled completions
    assert_servable_adapter(tmp_path / "adapter-grpo")


@pytest.mark.parametrize("variant", list(GRPO_VARIANTS))
def test_each_grpo_loss_variant_trains(variant, tmp_path, reward_run, dpo_rows):  # noqa: F811
    """Each published variant's settings on the tiny run: two optimizer steps from one generation batch
    (steps_per_generation=2), so the second step is off-policy and the variant's ratios and clipping
    act; the start event says what TRL's trainer runs with."""
    _, _, adapter = reward_run
    settings = {**GRPO_VARIANTS[variant], "steps_per_generation": 2}
    overrides = ["num_generations=2", "max_completion_length=16", *(f"{k}={v}" for k, v in settings.items())]
    job_dir = make_job(tmp_path, "grpo", [{"prompt": r["prompt"]} for r in dpo_rows], overrides=overrides,
                       reward_model_path=str(adapter))
    rc, events = run(job_dir)
    assert rc == progress.EXIT_OK, log_tail(job_dir)
    assert_progress(events, "grpo", 2)
    start = events[1]
    assert (start["loss_type"], start["steps_per_generation"]) == (settings["loss_type"], 2)
    assert start["importance_sampling_level"] == settings.get("importance_sampling_level", "token")
    assert start["scale_rewards"] == settings.get("scale_rewards", "group")
    assert start["epsilon"] == pytest.approx(settings.get("epsilon", 0.2))
    assert start["epsilon_high"] == settings.get("epsilon_high")  # TRL's None: the same as epsilon
    assert_servable_adapter(tmp_path / "adapter-grpo")


def test_grpo_generation_through_vllm_is_refused_on_the_cpu(tmp_path, dpo_rows):  # noqa: F811
    job_dir = make_job(tmp_path, "grpo", [{"prompt": r["prompt"]} for r in dpo_rows],
                       overrides=["num_generations=2", "use_vllm=true"], reward_model_path=str(tmp_path))
    rc, events = run(job_dir)
    assert rc == progress.EXIT_ERROR
    assert "use_vllm (GRPO generation through vLLM, colocated with training) needs a CUDA GPU" in events[-1]["error"]
    assert [e["event"] for e in events] == ["init", "error"]  # refused before any model was loaded


def test_grpo_without_a_reward_model_is_a_clear_error(tmp_path, dpo_rows):  # noqa: F811
    job_dir = make_job(tmp_path, "grpo", [{"prompt": r["prompt"]} for r in dpo_rows],
                       overrides=["num_generations=2"])
    rc, events = run(job_dir)
    assert rc == progress.EXIT_ERROR
    assert "GRPO needs a reward model" in events[-1]["error"]


@pytest.mark.django_db
def test_the_gate_with_a_reward_model_judge(reward_run, battle_models, settings, tmp_path):
    """The gate judged by the reward model just trained, on answers from the real local vLLM."""
    _, events, adapter = reward_run
    settings.ARENA_PROMPTS_DIR = shared_data_file("arena_prompts")
    settings.ARENA_GATE_MAX_TOKENS = 24
    settings.ARENA_GATE_JUDGE = "reward"
    new, parent = battle_models
    parent.endpoint.model_dir = str(BASE_MODEL)
    parent.endpoint.save()
    ServedModel.objects.filter(pk=new.pk).update(parent=parent, kind=ServedModel.Kind.LORA)
    new.refresh_from_db()
    path = tmp_path / "pairs.jsonl"
    path.write_text("{}\n")
    dataset = Dataset.objects.create(name="pairs", kind="preference", format="preference", source="upload",
                                     file=str(path))
    reward_job = Job.objects.create(base_model=parent, method="reward", dataset=dataset, status="succeeded",
                                    config={"max_length": 128})
    scorer = Checkpoint.objects.create(job=reward_job, weights_dir=str(adapter), base_model=parent, kind="scorer",
                                       final_metrics=events[-1]["metrics"])
    sft_job = Job.objects.create(base_model=parent, method="sft", dataset=dataset, status="succeeded", config={})
    checkpoint = Checkpoint.objects.create(job=sft_job, weights_dir="/a", base_model=parent, served_model=new)
    run = gate.gate_run(checkpoint, num_prompts=3)
    assert run.status == "done", run.error
    assert run.judge_kind == "reward" and run.judge_name == str(scorer)
    for verdict in run.verdicts:
        [game] = verdict["games"]  # a reward model scores each answer alone: one game, order-free
        a, b = game["scores"]
        assert verdict["score"] == (1.0 if a > b else 0.0 if b > a else 0.5)
    assert run.win_rate is not None and run.ci_low <= run.win_rate <= run.ci_high
    assert run.wins + run.ties + run.losses == 3


def test_qlora_is_refused_on_the_cpu_with_a_clear_message(tmp_path, dpo_rows):  # noqa: F811
    job_dir = make_job(tmp_path, "dpo", dpo_rows, overrides=["load_in_4bit=true"])
    rc, events = run(job_dir)
    assert rc == progress.EXIT_ERROR
    assert "load_in_4bit (QLoRA, bitsandbytes 4-bit) needs a CUDA GPU" in events[-1]["error"]
    assert not (tmp_path / "adapter-dpo").exists()


def test_two_processes_train_data_parallel_with_one_writer(tmp_path, sft_rows):  # noqa: F811
    """accelerate launch, two CPU processes joined by gloo: one set of events, one adapter."""
    job_dir = make_job(tmp_path, "sft", sft_rows, overrides=["num_threads=1"])
    log = open(job_dir / "run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.run(progress.runner_command(str(ARENA_ENGINE_PYTHON), job_dir, num_processes=2), cwd=REPO_ROOT,
                          stdout=log, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    log.close()
    assert proc.returncode == progress.EXIT_OK, log_tail(job_dir)
    events = progress.read_events(job_dir / progress.PROGRESS_FILE)
    names = [e["event"] for e in events]
    assert names.count("init") == 1 and names.count("start") == 1 and names.count("done") == 1, names
    assert events[1]["num_processes"] == 2
    text = (job_dir / "run.log").read_text(errors="replace")
    assert "[rank1]" in text or text.count("8 rows (0 held out)") == 2  # the second process really ran
    assert_servable_adapter(tmp_path / "adapter-sft")
