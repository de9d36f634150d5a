"""Faults of a training run, against real TRL on SmolLM2: the recipe SIGKILLed mid-run, the worker's
poll loop losing its database, and a disk that fills up while the adapter is saved. Each job ends
failed with the real reason, no recipe process outlives it, and the arena is unaffected.

(The Celery worker killed mid-run is tests/test_training_loop.py's killed-worker test.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest
from django.db import OperationalError

from arena import services as arena_services
from serving.engines import pid_alive
from serving.models import ServedModel
from tests.helpers import missing_part
from tests.test_training_loop import SMOKE, recipe_pid, wait_for, wait_until
from training import execution, services
from training.models import Job

pytestmark = [pytest.mark.faults, pytest.mark.training, pytest.mark.vllm]

LONG = ["max_steps=200", "max_length=128", "per_device_train_batch_size=1"]


def launch(base_model, overrides) -> Job:
    dataset = services.Dataset.objects.filter(name="oasst-en-messages").first() or services.dataset_from_builtin(
        "oasst-en-messages")
    return services.job_launch(base_model=base_model, method="sft", dataset=dataset, preset_name="cpu-smoke",
                               overrides=overrides)


def test_a_recipe_killed_mid_run_fails_its_job_saying_so(base_model, celery_worker_process):
    celery_worker_process()
    job = launch(base_model, LONG)
    wait_for(job, {"running"}, condition=lambda j: j.step >= 1)
    os.kill(recipe_pid(job), signal.SIGKILL)
    job = wait_for(job, {"failed"}, timeout=120)
    assert "exited with code -9" in job.error and "killed by SIGKILL" in job.error
    assert not ServedModel.objects.filter(kind="lora").exists()


def test_a_poll_loop_that_loses_its_database_stops_the_recipe_and_records_why(base_model, monkeypatch):
    """job_execute in this process (as the worker runs it); the heartbeat write fails once training runs."""
    job = launch(base_model, LONG)
    real_record = execution._job_record_progress

    def record(job, events, log_path, recorded):
        if any(e.get("event") == "log" for e in events):
            raise OperationalError("injected: server closed the connection unexpectedly")
        return real_record(job, events, log_path, recorded)

    monkeypatch.setattr(execution, "_job_record_progress", record)
    with pytest.raises(OperationalError):
        execution.job_execute(job.pk)
    pid = recipe_pid(job)
    assert not pid_alive(pid), "the recipe outlived the loop that followed it"
    job.refresh_from_db()
    assert job.status == "failed" and "OperationalError: injected: server closed the connection" in job.error
    assert services.jobs_reap_stale() == []  # not mistaken for a killed worker later


@pytest.fixture
def small_disk(tmp_path, settings):
    """A 2 MiB tmpfs as the training directory: job files fit, a LoRA adapter (~20 MB) does not."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        missing_part(f"cannot mount a small tmpfs here (needs root): {result.stderr.decode().strip()}")
    settings.ARENA_TRAINING_DIR = mount
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_saving_the_adapter_fails_the_job_clearly_and_the_arena_plays_on(
    base_model, small_disk
):
    rival = ServedModel.objects.create(public_name="rival", endpoint=base_model.endpoint, engine_model_id="rival")
    job = launch(base_model, SMOKE)
    runner = threading.Thread(target=execution.job_execute, args=(job.pk,))
    runner.start()
    # Meanwhile battles start as usual (the arena's database is not on the full disk).
    battle = arena_services.battle_create(rater_id="r")
    assert {battle.model_a_id, battle.model_b_id} == {base_model.pk, rival.pk}
    runner.join(900)
    job.refresh_from_db()
    assert job.status == "failed" and "No space left on device" in job.error, job.error
    assert not ServedModel.objects.filter(kind="lora").exists()
    assert not any(small_disk.glob("*/.adapter.partial-*")), "the half-written adapter was left behind"
    assert wait_until(lambda: not pid_alive(recipe_pid(job)), 30)
