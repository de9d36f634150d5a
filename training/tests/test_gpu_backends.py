"""``backend=unsloth`` and DeepSpeed ZeRO 2/3 on a machine without a GPU: their combinations are
checked like any recipe value, the launch (admin form, ``launch_training``) refuses them naming the
missing GPU, the form says so beforehand, and the runner itself refuses them on the CPU. Their GPU
runs are in ``scripts/gpu_check.sh``, which refuses to start without a GPU and whose ``--dry-run``
builds and checks every planned job here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.factories import make_endpoint, make_model
from tests.helpers import missing_part
from training.execution import _deepspeed_config
from training.forms import JobLaunchForm
from training.models import Dataset, Job
from training.recipes import progress
from training.recipes.backends import accelerate_config
from training.recipes.config import RecipeConfigError, config_from_dict, preset

MISSING_GPU = "needs an NVIDIA CUDA GPU on the training workers, and this arena has none declared"


@pytest.mark.parametrize("method, values, problem", [
    ("kto", {"backend": "unsloth"}, "unsloth trains SFT and DPO only, not kto"),
    ("sft", {"backend": "unsloth", "finetuning_type": "full"}, "a full fine-tune uses backend=trl"),
    ("sft", {"deepspeed": "zero3"}, "zero3 is for full fine-tunes"),
    ("dpo", {"backend": "unsloth", "deepspeed": "zero2", "finetuning_type": "full"}, "not with backend=unsloth"),
    ("sft", {"deepspeed": "zero4"}, "'zero4' is not one of none, zero2, zero3"),
])
def test_a_backend_combination_that_cannot_train_is_a_config_problem(method, values, problem):
    with pytest.raises(RecipeConfigError, match=problem):
        config_from_dict(method, values)


def test_the_supported_combinations_are_valid_configs():
    assert config_from_dict("dpo", {"backend": "unsloth", "load_in_4bit": True}).backend == "unsloth"
    assert config_from_dict("sft", {"deepspeed": "zero2", "finetuning_type": "full"}).deepspeed == "zero2"


@pytest.fixture
def launchable(tmp_path):
    base = make_model(public_name="base-model", endpoint=make_endpoint(model_dir="/m"))
    path = tmp_path / "d.jsonl"
    path.write_text("{}")
    dataset = Dataset.objects.create(name="d", kind="sft", format="messages", source="upload", file=str(path))
    return base, dataset


@pytest.mark.django_db
class TestLaunchWithoutAGpu:
    @pytest.mark.parametrize("extra", [["--set", "backend=unsloth"],
                                       ["--set", "finetuning_type=full", "--set", "deepspeed=zero2"]])
    def test_launch_training_refuses_naming_the_missing_gpu(self, launchable, broker_queue, extra):
        assert django_settings.ARENA_TRAINING_DEVICE != "cuda"
        with pytest.raises(CommandError, match=MISSING_GPU):
            call_command("launch_training", "--method", "sft", "--base", "base-model", "--dataset", "d",
                         "--preset", "cpu-smoke", *extra)
        assert not Job.objects.exists() and broker_queue("training") == []

    def test_the_launch_form_says_so_and_refuses_with_the_input_kept(self, admin_client, launchable, broker_queue):
        base, dataset = launchable
        page = admin_client.get(reverse("admin:training_job_add")).content.decode()
        assert 'value="unsloth"' in page and 'value="zero3"' in page
        assert "Needs a CUDA GPU: NOT available here (ARENA_TRAINING_DEVICE is not cuda)" in page
        response = admin_client.post(reverse("admin:training_job_add"), {
            "base_model": base.pk, "method": "sft", "dataset": dataset.pk, "preset": "cpu-smoke",
            "finetuning_type": "lora", "backend": "unsloth", "deepspeed": "none", "overrides": "max_steps=2"})
        page = response.content.decode()
        assert response.status_code == 200 and "backend=unsloth " + MISSING_GPU in page
        assert ">\nmax_steps=2</textarea>" in page
        assert not Job.objects.exists() and broker_queue("training") == []

    def test_a_choice_typed_again_with_another_value_is_refused(self, launchable):
        base, dataset = launchable
        form = JobLaunchForm({"base_model": base.pk, "method": "sft", "dataset": dataset.pk, "backend": "unsloth",
                              "overrides": "backend=trl"})
        assert not form.is_valid() and "backend is unsloth above but backend=trl below" in str(form.errors)

    def test_with_gpu_workers_declared_the_same_job_is_queued(self, launchable, settings, broker_queue,
                                                             django_capture_on_commit_callbacks):
        settings.ARENA_TRAINING_DEVICE = "cuda"
        with django_capture_on_commit_callbacks(execute=True):
            call_command("launch_training", "--method", "sft", "--base", "base-model", "--dataset", "d",
                         "--preset", "cpu-smoke", "--set", "finetuning_type=full", "--set", "deepspeed=zero3",
                         stdout=StringIO())
        job = Job.objects.get()
        assert (job.config["deepspeed"], job.config["backend"]) == ("zero3", "trl")
        assert [m["args"] for m in broker_queue("training")] == [[job.pk]]


def test_a_deepspeed_job_runs_under_accelerate_with_the_shipped_config(tmp_path):
    config = accelerate_config("zero2")
    command = progress.runner_command("python", tmp_path, num_processes=2, accelerate_config=config)
    assert command[:5] == ["python", "-m", "accelerate.commands.launch", "--config_file", str(config)]
    assert command[5:7] == ["--num_processes", "2"] and command[-3:] == ["-m", "training.recipes.run", str(tmp_path)]
    for stage in ("zero2", "zero3"):
        text = accelerate_config(stage).read_text()
        assert "distributed_type: DEEPSPEED" in text and f"zero_stage: {stage[-1]}" in text


@pytest.mark.parametrize("values, refusal", [
    ({"backend": "unsloth"}, "backend=unsloth needs an NVIDIA CUDA GPU; this job runs on the CPU (no GPU here)"),
    ({"finetuning_type": "full", "deepspeed": "zero2"}, "deepspeed=zero2 needs NVIDIA CUDA GPUs; this job runs on "
                                                        "the CPU (no GPU here)"),
])
def test_the_runner_refuses_them_on_the_cpu(tmp_path, values, refusal):
    """The real runner in the engine environment, as a worker would start it (no model is loaded)."""
    python = django_settings.ARENA_ENGINE_PYTHON
    if not Path(python).exists():
        missing_part(f"engine environment missing: {python} (make engine)")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    config = config_from_dict("sft", values).to_dict()
    progress.write_job(tmp_path / "job", method="sft", base_model_path=str(model), dataset_path=data,
                       output_dir=tmp_path / "job" / "out", config=config, device="cpu")
    done = subprocess.run([python, "-m", "training.recipes.run", str(tmp_path / "job")],
                          cwd=django_settings.BASE_DIR, capture_output=True, text=True, timeout=300)
    final = progress.final_event(progress.read_events(tmp_path / "job" / "progress.jsonl"))
    assert done.returncode != 0 and final["event"] == "error", (done.stdout[-2000:], done.stderr[-2000:])
    assert refusal in final["error"]


def test_a_worker_without_a_declared_gpu_starts_the_runner_plain_so_it_refuses_clearly(settings):
    full = {"finetuning_type": "full", "deepspeed": "zero3"}
    settings.ARENA_TRAINING_DEVICE = "cpu"
    assert _deepspeed_config(full) is None
    settings.ARENA_TRAINING_DEVICE = "cuda"
    assert _deepspeed_config(full) == accelerate_config("zero3") and _deepspeed_config({"deepspeed": "none"}) is None


# ---------------------------------------------------------------------- scripts/gpu_check.sh on a CPU machine


def _gpu_check(tmp_path: Path, *args: str, path: str) -> subprocess.CompletedProcess:
    env = {"PATH": path, "HOME": str(tmp_path), "PYTHON": sys.executable, "GPU_CHECK_OUT": str(tmp_path / "out")}
    return subprocess.run(["/bin/bash", str(django_settings.BASE_DIR / "scripts" / "gpu_check.sh"), *args],
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_gpu_check_refuses_clearly_without_a_gpu(tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with the script's one external tool and no nvidia-smi
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    done = _gpu_check(tmp_path, path=str(bin_dir))
    assert done.returncode == 1 and "no nvidia-smi: this check needs an NVIDIA GPU" in done.stderr
    driver = subprocess.run([sys.executable, "scripts/gpu_check.py", "--model-dir", "m", "--data", "data", "--out",
                             str(tmp_path / "o")], cwd=django_settings.BASE_DIR, env={"PATH": str(bin_dir)},
                            capture_output=True, text=True, timeout=300)
    assert driver.returncode == 1 and "this check needs an NVIDIA GPU and this machine has none" in driver.stderr
    assert not (tmp_path / "o" / "job-sft").exists()  # refused before anything was written


def test_the_gpu_check_dry_run_builds_every_planned_job_on_the_cpu(tmp_path):
    done = _gpu_check(tmp_path, "--dry-run", path=os.environ["PATH"])
    assert done.returncode == 0, done.stderr[-2000:]
    plan = {job["label"]: job for job in json.loads((tmp_path / "out" / "plan.json").read_text())}
    assert plan["grpo-vllm"]["gpu_only"] == plan["gspo-vllm"]["gpu_only"] == ["use_vllm=true"]
    assert plan["qlora-sft"]["gpu_only"] == ["load_in_4bit=true"] and plan["qlora-sft"]["needs"] == "--backends"
    for label, job in plan.items():
        spec = json.loads((Path(job["job_dir"]) / "job.json").read_text())
        assert spec["device"] == "cuda"
        config = config_from_dict(spec["method"], spec["config"])  # every config is valid as written
        assert config.max_steps == preset(spec["method"], "cpu-smoke").max_steps, label
    gspo = json.loads((Path(plan["gspo-vllm"]["job_dir"]) / "job.json").read_text())
    assert gspo["reward_model_path"] == "<adapter of reward>"
    assert {k: gspo["config"][k] for k in ("use_vllm", "loss_type", "importance_sampling_level")} == {
        "use_vllm": True, "loss_type": "grpo", "importance_sampling_level": "sequence"}
    prompts = (tmp_path / "out" / "prompts.jsonl").read_text().splitlines()
    assert len(prompts) == 400  # arena-hard less the gate's 100 held-out prompts
    assert "nothing trained" in done.stdout and not (tmp_path / "out" / "figures.json").exists()
