"""Each preference-training method trained end to end once, by a real Celery worker on SmolLM2:
a reward model on HH-RLHF pairs (a scorer with its held-out accuracy on the checkpoint page),
GRPO against that reward model on arena-hard prompts, KTO on the arena's own votes (ties and "both
are bad" included), continued pretraining on raw text. Each contestant is then served by the real
vLLM and battle-ready, and the gate has run (judged by the reward model when one exists, else by
the base model as an LLM judge), its result on the job page; the recipe's own record (progress
events, the adapter's files) is checked on the job's folder.

An admin launches a job two ways: the admin's Launch form (the Django test client posting the real
add forms of Dataset and Job as a superuser) and ``launch_training``. Each method is trained
through one of them; the other is followed up to the queued message (the job row queued with the
same recipe config, its run message on the real broker's training queue, taken there so that no
worker trains it a second time).

Every job is tiny (1-2 steps, a dozen rows, 64-256 tokens) and so is the gate (2 prompts, 8
tokens): the suite runs on 2 CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import time
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from arena.pairing.contestants import contestants_battle_ready
from serving.models import ServedModel
from tests.factories import make_vote
from tests.test_training_loop import launch_and_wait, recipe_events, wait_for
from training import services
from training.gate import SCORER_SKIP
from training.models import Checkpoint, Dataset, GateRun, Job
from training.tests.test_recipe_run import assert_progress, assert_servable_adapter

pytestmark = [pytest.mark.vllm, pytest.mark.training, pytest.mark.celery]

REPO = Path(__file__).resolve().parents[1]
#: Per method, on top of the cpu-smoke preset: the least work that still trains and saves an adapter.
TINY = {
    # 12 pairs, half held out: the accuracy is measured on 6 pairs
    "reward": ["max_steps=2", "max_length=256", "per_device_train_batch_size=2", "max_train_rows=12",
               "heldout_fraction=0.5"],
    "grpo": ["max_steps=1", "max_length=128", "per_device_train_batch_size=2", "num_generations=2",
             "max_completion_length=8", "max_train_rows=4"],
    "kto": ["max_steps=2", "max_length=128", "per_device_train_batch_size=2", "max_train_rows=8"],
    "pretrain": ["max_steps=2", "max_length=64", "per_device_train_batch_size=2", "max_train_rows=8"],
}
#: The worker's gate: 2 held-out prompts, 8-token answers; the base model judges when no reward model exists.
GATE_ENV = {"ARENA_GATE_JUDGE": "auto", "ARENA_GATE_LLM_JUDGE": "smollm2-135m-instruct", "ARENA_GATE_PROMPTS": "2",
            "ARENA_GATE_MAX_TOKENS": "8", "ARENA_GATE_JUDGE_MAX_TOKENS": "16"}


@pytest.fixture
def start_worker(celery_worker_process, monkeypatch):
    """Starts the real Celery worker with the tiny gate settings (it reads its environment at start);
    returns its Popen. A test starts it after its datasets are made."""
    for key, value in GATE_ENV.items():
        monkeypatch.setenv(key, value)
    return celery_worker_process


def stop(worker: subprocess.Popen) -> None:
    """Stop the idle worker (warm shutdown), so that a job queued next stays on the broker."""
    worker.terminate()
    worker.wait(60)


@pytest.fixture
def admin(client, transactional_db):
    client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
    return client


def admin_import(admin, **fields) -> Dataset:
    """A dataset through the admin's import form (Datasets > Add)."""
    before = set(Dataset.objects.values_list("pk", flat=True))
    response = admin.post(reverse("admin:training_dataset_add"), fields)
    assert response.status_code == 302, response.content.decode()[-3000:]
    return Dataset.objects.exclude(pk__in=before).get()


def admin_queue(admin, method: str, base_model: ServedModel, dataset: Dataset, reward_model=None) -> Job:
    """A job through the admin's Launch form (Jobs > Add), cpu-smoke + TINY; returns it as queued."""
    response = admin.post(reverse("admin:training_job_add"), {
        "base_model": base_model.pk, "method": method, "dataset": dataset.pk, "preset": "cpu-smoke",
        "overrides": "\n".join(TINY[method]), "init_checkpoint": "", "reward_model": reward_model.pk if reward_model else "",
    })
    assert response.status_code == 302, response.content.decode()[-3000:]
    job = Job.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-2]))
    assert response["Location"] == reverse("admin:training_job_change", args=[job.pk])
    return job


def admin_launch(admin, method: str, base_model: ServedModel, dataset: Dataset, reward_model=None) -> Job:
    """:func:`admin_queue`, then the job once a worker has finished it."""
    return wait_for(admin_queue(admin, method, base_model, dataset, reward_model), {"succeeded"})


def command_queue(method: str, base_model: ServedModel, dataset: Dataset, extra: tuple[str, ...] = ()) -> Job:
    """``launch_training`` without ``--wait`` (cpu-smoke + TINY): it prints the queued job and returns."""
    args = ["--method", method, "--base", base_model.public_name, "--dataset", dataset.name, "--preset", "cpu-smoke",
            *extra]
    for item in TINY[method]:
        args += ["--set", item]
    out = StringIO()
    call_command("launch_training", *args, stdout=out)
    printed = json.loads(out.getvalue().strip().splitlines()[-1])
    assert printed["status"] == "queued", printed
    return Job.objects.get(pk=printed["job"])


def assert_queued_like(queued: Job, trained: Job, broker_queue) -> None:
    """The other launch path, up to the queued message: ``queued`` is the same job as ``trained``
    (method, base, dataset, reward model and the whole recipe config) and its run message waits on
    the training queue (taken there; no worker is running). It is then cancelled."""
    queued.refresh_from_db()
    assert queued.status == "queued" and queued.celery_task_id
    assert (queued.method, queued.base_model, queued.dataset, queued.reward_model, queued.config) == (
        trained.method, trained.base_model, trained.dataset, trained.reward_model, trained.config)
    assert broker_queue("training") == [
        {"task": services.JOB_RUN_TASK, "id": queued.celery_task_id, "args": [queued.pk], "eta": None}]
    assert services.job_cancel(queued).status == "cancelled"


def gate_runs_of(job: Job, count: int = 1, timeout: float = 600) -> list[GateRun]:
    """The job's gate runs once ``count`` of them have finished (the worker runs the gate after the job)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = list(GateRun.objects.filter(checkpoint__job=job).exclude(status="running").order_by("created_at"))
        if len(runs) >= count:
            return runs
        assert time.monotonic() < deadline, f"the gate of job {job.pk} never finished"
        time.sleep(1.0)


def job_page(admin, job: Job) -> str:
    return admin.get(reverse("admin:training_job_change", args=[job.pk])).content.decode()


def assert_scorer(admin, job: Job) -> Checkpoint:
    """A reward job's result: a scorer (never served) with its held-out accuracy in the admin, and a
    gate run that says why a scorer is not gated."""
    checkpoint = job.checkpoint
    assert checkpoint.kind == "scorer" and checkpoint.served_model is None
    accuracy = checkpoint.heldout_accuracy()
    # A share of 6 held-out pairs, stored to 4 decimals: k/6 for a whole k (a NaN, a rate over another
    # count or a missing value fails).
    assert checkpoint.final_metrics["heldout_rows"] == 6 and accuracy is not None
    assert any(abs(accuracy - k / 6) < 1e-4 for k in range(7)), accuracy
    page = admin.get(reverse("admin:training_checkpoint_change", args=[checkpoint.pk])).content.decode()
    assert f"{accuracy:.1%} of 6 held-out pairs (95% interval " in page and "chance is 50%" in page and 'id="scorer-accuracy"' in page
    [run] = gate_runs_of(job)
    assert run.status == "skipped" and run.error == SCORER_SKIP
    assert SCORER_SKIP in job_page(admin, job)
    return checkpoint


def assert_contestant(admin, job: Job, vllm_url: str, judge: str) -> GateRun:
    """A policy job's result: a contestant served by vLLM, battle-ready, gated against its parent,
    the result on the job page."""
    model = job.checkpoint.served_model
    assert model.public_name == f"smollm2-135m-instruct-{job.method}-j{job.pk}" and model.kind == "lora"
    assert model.engine_model_id in {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}
    [run] = gate_runs_of(job)
    assert run.status == "done", run.error
    assert run.opponent == model.parent and run.opponent_role == "parent" and run.judge_kind == judge
    assert run.num_prompts == 2 and all(v["new"] is not None for v in run.verdicts)
    assert model.pk in {m.pk for m, weight in contestants_battle_ready() if weight > 0}
    page = job_page(admin, job)
    assert "Gate: pairwise evaluation before the arena" in page and f'id="job-contestant">{model.public_name}' in page
    return run


def test_a_reward_model_from_the_command_line_then_grpo_against_it_through_the_admin(
        base_model, start_worker, admin, vllm_url, broker_queue):
    pairs = admin_import(admin, import_from="builtin", builtin="hh-rlhf-helpful-base-test", name="hh-pairs")
    prompts = admin_import(admin, import_from="arena-prompts")
    assert (pairs.kind, prompts.kind) == ("preference", "prompt")
    worker = start_worker()

    result, reward = launch_and_wait("reward", base_model, "hh-pairs", TINY["reward"])
    assert result["status"] == "succeeded" and result["kind"] == "scorer" and result["model"] is None
    scorer = assert_scorer(admin, reward)
    assert result["heldout_accuracy"] == scorer.heldout_accuracy()
    assert result["checkpoint"] == scorer.weights_dir

    grpo = admin_launch(admin, "grpo", base_model, prompts, reward_model=scorer)
    assert grpo.reward_model == scorer and all(isinstance(m.get("reward"), float) for m in grpo.metrics
                                              if "loss" in m)
    run = assert_contestant(admin, grpo, vllm_url, judge="reward")
    assert run.judge_name == str(scorer) and run.win_rate is not None  # a reward model always gives a verdict
    assert f"reward j{reward.pk}" in " ".join(grpo.checkpoint.lineage())

    # The other path of each: the reward model from the admin, GRPO from the command line.
    stop(worker)
    assert_queued_like(admin_queue(admin, "reward", base_model, pairs), reward, broker_queue)
    assert_queued_like(command_queue("grpo", base_model, prompts, extra=("--reward-job", str(reward.pk))), grpo,
                       broker_queue)


def test_a_kto_job_on_every_vote_from_the_command_line_enters_the_arena_and_is_gated(
        base_model, start_worker, admin, vllm_url, broker_queue):
    rival = ServedModel.objects.create(public_name="rival", endpoint=base_model.endpoint, engine_model_id="rival")
    for index, winner in enumerate(["model_a", "tie (bothbad)", "tie", "model_b"]):
        make_vote(base_model, rival, winner, prompt=f"Question {index}?",
                  answers=(f"A careful answer {index}.", f"meh {index}"))
    votes = admin_import(admin, import_from="arena-kto", name="arena-kto")
    assert (votes.kind, votes.row_count) == ("unpaired", 8)
    worker = start_worker()

    result, kto = launch_and_wait("kto", base_model, "arena-kto", TINY["kto"])
    assert result["status"] == "succeeded" and result["model"] == f"smollm2-135m-instruct-kto-j{kto.pk}"
    assert kto.checkpoint.kind == "contestant" and kto.checkpoint.served_model.public_name == result["model"]
    assert "Lineage: smollm2-135m-instruct → kto j" in kto.checkpoint.served_model.description
    # The recipe's record: KTO against the base as reference, its KL term logged, a servable adapter.
    events = recipe_events(kto)
    assert_progress(events, "kto", 2)
    assert events[1]["reference"] == "base" and all("kl" in e for e in events if e["event"] == "log")
    assert_servable_adapter(Path(kto.checkpoint.weights_dir))

    run = assert_contestant(admin, kto, vllm_url, judge="llm")
    assert run.opponent == base_model
    assert all(len(v["games"]) == 2 for v in run.verdicts)  # an LLM judge sees both orders
    assert "not a verdict" in job_page(admin, kto)

    stop(worker)
    assert_queued_like(admin_queue(admin, "kto", base_model, votes), kto, broker_queue)


def test_continued_pretraining_on_raw_text_through_the_admin(base_model, start_worker, admin, vllm_url, broker_queue):
    # a small text shipped in the repository: the notes on the data the arena uses
    text = (REPO / "data" / "README.md").read_bytes()
    upload = SimpleUploadedFile("notes.txt", text)
    raw = admin_import(admin, import_from="upload", name="data-notes", data_format="raw-text", upload=upload,
                       license="Apache-2.0")
    assert raw.kind == "text" and raw.row_count >= 1
    worker = start_worker()

    pretrain = admin_launch(admin, "pretrain", base_model, raw)
    assert pretrain.total_steps == 2
    assert_contestant(admin, pretrain, vllm_url, judge="llm")
    # The recipe's record: the documents wrapped into 64-token blocks, many more than documents.
    events = recipe_events(pretrain)
    start = events[1]
    assert start["method"] == "pretrain" and start["packing"] == "wrapped" and start["num_rows"] == raw.row_count
    assert start["num_train_rows"] > raw.row_count
    assert events[-1]["event"] == "done"
    assert_servable_adapter(Path(pretrain.checkpoint.weights_dir))

    stop(worker)
    assert_queued_like(command_queue("pretrain", base_model, raw), pretrain, broker_queue)
