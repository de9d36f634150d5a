"""Full fine-tunes on the Django side: the checkpoint records what it holds, its contestant gets a
managed endpoint of its own, continuing one is refused, and the gate waits for its engine."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from arena.pairing.contestants import contestant_of
from tests.factories import make_endpoint, make_model
from training import services
from training.gate import gate_run
from training.models import Checkpoint, Dataset, Job


@pytest.fixture
def base(db):
    return make_model(public_name="base", endpoint=make_endpoint(model_dir="/m", chat_template="/tpl.jinja"))


@pytest.fixture
def sft_data(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text("{}\n")
    return Dataset.objects.create(name="sft", kind="sft", format="messages", source="upload", file=str(path))


def full_checkpoint(base, data, tmp_path) -> Checkpoint:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "llama"}')
    job = Job.objects.create(base_model=base, method="sft", dataset=data, status="running",
                             config={"finetuning_type": "full"})
    return services.job_register_checkpoint(job, {"adapter_dir": str(model_dir), "model_dir": str(model_dir),
                                                  "finetuning_type": "full", "metrics": {"train_loss": 1.0}})


def test_a_full_checkpoint_is_served_on_a_managed_endpoint_of_its_own(base, sft_data, tmp_path, client):
    checkpoint = full_checkpoint(base, sft_data, tmp_path)
    model = checkpoint.served_model
    assert checkpoint.finetuning_type == "full" and checkpoint.is_full()
    assert model.kind == "full" and model.parent == base and model.endpoint != base.endpoint
    assert model.endpoint.managed and not model.endpoint.healthy and model.endpoint.model_dir == checkpoint.weights_dir
    assert checkpoint.adapter_sha256 == model.adapter_sha256 != ""
    assert contestant_of(model).boost_votes_left > 0  # entered; it battles once its engine is healthy
    job = checkpoint.job
    assert checkpoint.lineage() == ["base", f"sft j{job.pk} full"]
    assert "(Full fine-tune; job" in model.description and f"sft j{job.pk} full" in model.description
    client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
    page = client.get(reverse("admin:training_checkpoint_change", args=[checkpoint.pk])).content.decode()
    assert "Full model" in page
    job.status = "succeeded"
    job.save()
    panel = client.get(reverse("admin:training_job_change", args=[job.pk])).content.decode()
    assert "(Full model)" in panel and f"once its engine ({model.endpoint.name}) is up" in panel


def test_continuing_a_full_fine_tune_is_refused(base, sft_data, tmp_path):
    checkpoint = full_checkpoint(base, sft_data, tmp_path)
    with pytest.raises(services.TrainingError, match="Continuing a full fine-tune is not supported"):
        services.job_launch(base_model=base, method="sft", dataset=sft_data, init_checkpoint=checkpoint)


def test_a_full_fine_tune_on_a_4bit_base_is_refused_at_launch(base, sft_data):
    with pytest.raises(services.TrainingError) as err:
        services.job_launch(base_model=base, method="sft", dataset=sft_data,
                            overrides=["finetuning_type=full", "load_in_4bit=true"])
    assert any(p.startswith("load_in_4bit: QLoRA is LoRA") for p in err.value.problems)


def test_the_gate_fails_clearly_when_the_new_engine_never_answers(base, sft_data, tmp_path, settings):
    settings.ARENA_ENGINE_START_TIMEOUT_S = 0.1
    checkpoint = full_checkpoint(base, sft_data, tmp_path)
    judge = make_model(public_name="judge")
    run = gate_run(checkpoint, judge_kind="llm", judge=judge, num_prompts=1)
    assert run.status == "failed"
    assert run.error.startswith(f"EngineNotReady: the engine of {checkpoint.served_model.public_name}")
    assert "did not answer within 0 s (ARENA_ENGINE_START_TIMEOUT_S): waiting for its engine to start" in run.error
