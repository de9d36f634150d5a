"""The closed loop, for real: a Celery worker runs TRL on SmolLM2, vLLM hot-loads the adapter,
and the new model battles (SFT, after a killed worker's job is reaped; DPO from the command line).
Also cancel, a crashing recipe and a refused adapter."""

import json
import signal
import time
from io import StringIO
from pathlib import Path

import httpx
import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import call_command

from arena.pairing.contestants import contestant_of
from config.asgi import application
from serving.engines import pid_alive
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel
from tests.factories import make_vote
from training import services
from training.models import Checkpoint, Job
from training.tests.test_recipe_run import assert_progress, assert_servable_adapter

pytestmark = [pytest.mark.vllm, pytest.mark.training, pytest.mark.celery]


def wait_for(job: Job, statuses: set[str], timeout: float = 600, condition=None) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in statuses and (condition is None or condition(job)):
            return job
        if job.is_finished() and job.status not in statuses:
            pytest.fail(f"job ended {job.status}: {job.error}\n{job.log_tail}")
        time.sleep(1.0)
    pytest.fail(f"job {job.pk} still {job.status} at step {job.step} after {timeout} s\n{job.log_tail}")


def recipe_events(job: Job) -> list[dict]:
    return [json.loads(line) for line in (job.directory() / "progress.jsonl").read_text().splitlines()]


def recipe_pid(job: Job) -> int:
    """The recipe subprocess's pid, from its ``init`` event."""
    return next(e["pid"] for e in recipe_events(job) if e["event"] == "init")


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


SMOKE = ["max_steps=2", "max_length=128", "per_device_train_batch_size=2", "max_train_rows=8"]


def test_a_dpo_job_trains_on_the_arenas_own_votes_from_the_command_line(base_model, celery_worker_process, capfd):
    other = ServedModel.objects.create(public_name="rival", endpoint=base_model.endpoint, engine_model_id="rival")
    for index in range(4):
        make_vote(base_model, other, "model_a", prompt=f"Question {index}?",
                  answers=(f"A careful answer {index}.", f"meh {index}"))
    dataset = services.dataset_from_arena_votes(name="arena-votes")
    assert dataset.row_count == 4
    celery_worker_process()
    result, job = launch_and_wait("dpo", base_model, "arena-votes")
    assert result["status"] == "succeeded" and result["model"] == f"smollm2-135m-instruct-dpo-j{job.pk}"
    assert result["checkpoint"] == job.checkpoint.weights_dir
    assert any("rewards/margins" in m for m in job.metrics)
    # The recipe's record: 4 pairs from the 4 votes, DPO's rewards logged at each step, a servable adapter.
    events = recipe_events(job)
    assert_progress(events, "dpo", 2, num_rows=4)
    for e in (e for e in events if e["event"] == "log"):
        assert {"rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"} <= set(e)
    assert_servable_adapter(Path(job.checkpoint.weights_dir))
    # The progress bar went to stderr and ended full, with the job's own step count.
    bar = capfd.readouterr().err.rsplit("\r", 1)[-1]
    assert f"job {job.pk} succeeded [{'#' * 30}] {job.total_steps}/{job.total_steps}" in bar, bar


def launch_and_wait(method: str, base_model: ServedModel, dataset: str, overrides: list[str] = SMOKE,
                    extra: tuple[str, ...] = ()) -> tuple[dict, Job]:
    """``launch_training --wait`` on the cpu-smoke preset + ``overrides`` (and ``extra`` arguments, e.g.
    ``--reward-job``): (its printed result, the job)."""
    args = ["--method", method, "--base", base_model.public_name, "--dataset", dataset, "--preset", "cpu-smoke", *extra]
    for item in overrides:
        args += ["--set", item]
    out = StringIO()
    call_command("launch_training", *args, "--wait", stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    return result, Job.objects.get(pk=result["job"])


def test_cancel_stops_a_running_job_cleanly(base_model, celery_worker_process):
    celery_worker_process()
    dataset = services.dataset_from_builtin("oasst-en-messages")
    job = services.job_launch(base_model=base_model, method="sft", dataset=dataset, preset_name="cpu-smoke",
                              overrides=["max_steps=200", "max_length=128", "per_device_train_batch_size=1"])
    step_at_cancel = wait_for(job, {"running"}, condition=lambda j: j.step >= 1).step
    services.job_cancel(job)
    job = wait_for(job, {"cancelled"})
    # It stopped at a step boundary after the request, long before its last step, and says which.
    stopped = recipe_events(job)[-1]
    assert stopped["event"] == "cancelled" and step_at_cancel <= stopped["step"] < job.total_steps
    assert not pid_alive(recipe_pid(job))
    assert not Checkpoint.objects.filter(job=job).exists()
    assert not ServedModel.objects.filter(kind="lora").exists()


def test_a_crashing_recipe_marks_the_job_failed_with_the_error(base_model, celery_worker_process):
    Endpoint.objects.filter(pk=base_model.endpoint_id).update(model_dir="/nonexistent/model")
    base_model.refresh_from_db()
    celery_worker_process()
    dataset = services.dataset_from_builtin("oasst-en-messages")
    job = services.job_launch(base_model=base_model, method="sft", dataset=dataset, preset_name="cpu-smoke")
    job = wait_for(job, {"failed"}, timeout=300)
    assert "/nonexistent/model" in job.error
    assert not ServedModel.objects.filter(kind="lora").exists()


def test_a_killed_worker_leaves_the_job_failed_then_the_next_sft_job_trains_is_served_and_battles(
        base_model, celery_worker_process, vllm_url, settings):
    worker = celery_worker_process()
    dataset = services.dataset_from_builtin("oasst-en-messages")
    job = services.job_launch(base_model=base_model, method="sft", dataset=dataset, preset_name="cpu-smoke",
                              overrides=["max_steps=200", "max_length=128", "per_device_train_batch_size=1"])
    wait_for(job, {"running"}, condition=lambda j: j.step >= 1)
    pid = recipe_pid(job)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    settings.ARENA_TRAINING_HEARTBEAT_TIMEOUT_S = 1
    time.sleep(2)  # past the heartbeat timeout: the dead worker writes none
    assert services.jobs_reap_stale() == [job.pk]
    job.refresh_from_db()
    assert job.status == "failed" and "stopped at step" in job.error
    # The recipe died with its worker (PR_SET_PDEATHSIG sends SIGTERM: it stops after its step and
    # says so): nothing trains on unseen.
    assert wait_until(lambda: not pid_alive(pid), 120), f"recipe {pid} still runs after its worker died"
    assert recipe_events(job)[-1]["event"] == "cancelled"

    # The next job runs alone on a new worker, succeeds, is served and battles.
    celery_worker_process()
    job = services.job_launch(base_model=base_model, method="sft", dataset=dataset, preset_name="cpu-smoke",
                              overrides=SMOKE)
    job = wait_for(job, {"succeeded"})
    assert recipe_pid(job) != pid and not pid_alive(pid)
    assert job.total_steps == 2 and job.step == 2
    assert [m["step"] for m in job.metrics] == [1, 2] and all("loss" in m for m in job.metrics)
    checkpoint = Checkpoint.objects.get(job=job)
    assert (Path(checkpoint.weights_dir) / "adapter_config.json").exists()
    contestant = checkpoint.served_model
    assert contestant.public_name == f"smollm2-135m-instruct-sft-j{job.pk}"
    assert contestant.kind == "lora" and contestant.active and contestant_of(contestant).boost_votes_left > 0
    assert contestant_of(contestant).effective_weight() > contestant_of(base_model).effective_weight()
    served = {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}
    assert contestant.engine_model_id in served

    # Only two contestants are battle-ready, so the next battle pits the new model against its base.
    async def battle() -> dict:
        communicator = WebsocketCommunicator(application, "/ws/arena/")
        assert (await communicator.connect())[0]
        await communicator.send_json_to({"type": "new_battle"})
        battle = await communicator.receive_json_from(timeout=30)
        await communicator.send_json_to({"type": "prompt", "battle_id": battle["battle_id"], "text": "Hello!"})
        done = []
        while len(done) < 2:
            frame = await communicator.receive_json_from(timeout=120)
            if frame["type"] == "side_done":
                done.append(frame)
        await communicator.send_json_to({"type": "vote", "battle_id": battle["battle_id"], "winner": "model_a"})
        while (frame := await communicator.receive_json_from(timeout=30))["type"] != "revealed":
            pass
        await communicator.disconnect()
        return {"done": done, "revealed": frame}

    from asgiref.sync import async_to_sync

    result = async_to_sync(battle)()
    assert {f["state"] for f in result["done"]} == {"done"}
    names = {result["revealed"]["model_a"]["name"], result["revealed"]["model_b"]["name"]}
    assert names == {contestant.public_name, base_model.public_name}


def test_an_adapter_vllm_refuses_creates_no_contestant(base_model, tmp_path):
    job = Job.objects.create(base_model=base_model, method="sft", dataset=services.dataset_from_builtin(
        "oasst-en-messages"), config={}, status="running")
    bogus = tmp_path / "not-an-adapter"
    bogus.mkdir()
    with pytest.raises(EngineError):
        services.job_register_checkpoint(job, {"adapter_dir": str(bogus), "metrics": {}})
    assert not ServedModel.objects.filter(kind="lora").exists()
