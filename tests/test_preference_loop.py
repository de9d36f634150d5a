"""The preference loop for real: arena votes (ties and "both are bad" included) become KTO rows,
a Celery worker trains KTO on SmolLM2 from ``launch_training --wait``, vLLM hot-loads the
adapter, and the gate then compares the new model with its parent, judged by an LLM at the
real local endpoint, with the result on the job page."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from serving.models import ServedModel
from tests.factories import make_vote
from tests.test_training_loop import launch_and_wait
from training import services
from training.models import GateRun

pytestmark = [pytest.mark.vllm, pytest.mark.training, pytest.mark.celery]


def test_a_kto_job_on_every_vote_enters_the_arena_and_is_gated(base_model, celery_worker_process,  # noqa: F811
                                                               monkeypatch, client):
    other = ServedModel.objects.create(public_name="rival", endpoint=base_model.endpoint, engine_model_id="rival")
    for index, winner in enumerate(["model_a", "tie (bothbad)", "tie", "model_b"]):
        make_vote(base_model, other, winner, prompt=f"Question {index}?",
                  answers=(f"A careful answer {index}.", f"meh {index}"))
    dataset = services.dataset_from_arena_votes(name="arena-kto", unpaired=True)
    assert dataset.row_count == 8
    # the worker's gate: the base model judges, 3 prompts, short answers
    for key, value in {"ARENA_GATE_JUDGE": "llm", "ARENA_GATE_LLM_JUDGE": base_model.public_name,
                       "ARENA_GATE_PROMPTS": "3", "ARENA_GATE_MAX_TOKENS": "16",
                       "ARENA_GATE_JUDGE_MAX_TOKENS": "32"}.items():
        monkeypatch.setenv(key, value)
    celery_worker_process()
    result, job = launch_and_wait("kto", base_model, "arena-kto")
    assert result["status"] == "succeeded" and result["model"] == f"smollm2-135m-instruct-kto-j{job.pk}"
    assert job.checkpoint.kind == "contestant" and job.checkpoint.served_model.public_name == result["model"]
    assert "Lineage: smollm2-135m-instruct → kto j" in job.checkpoint.served_model.description

    deadline = time.monotonic() + 600
    while not GateRun.objects.filter(checkpoint=job.checkpoint).exclude(status="running").exists():
        assert time.monotonic() < deadline, "the gate never finished"
        time.sleep(1.0)
    run = GateRun.objects.get(checkpoint=job.checkpoint)
    assert run.status == "done", run.error
    assert run.opponent == base_model and run.judge_kind == "llm" and run.num_prompts == 3
    assert all(len(v["games"]) == 2 for v in run.verdicts)

    client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
    page = client.get(reverse("admin:training_job_change", args=[job.pk])).content.decode()
    assert "Gate: pairwise evaluation before the arena" in page and "not a verdict" in page
