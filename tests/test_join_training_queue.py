"""``scripts/join_training_queue.sh``, its CPU path: a second training worker, started by the script
from a checkout of its own in a separate folder, takes a queued job from the arena's real Redis
broker, trains it (the cpu-smoke SFT preset, two steps) on the arena's PostgreSQL, and its adapter
reaches the arena: registered, hot-loaded by the arena's vLLM from the shared data folder, and
served. The GPU path of the same script is docs/gpu-workers.md's, not run here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.helpers import REPO, database_url_for_subprocess, missing_part
from training import services
from training.models import Checkpoint, Job

pytestmark = [pytest.mark.vllm, pytest.mark.training, pytest.mark.celery]

SCRIPT = REPO / "scripts" / "join_training_queue.sh"
SMOKE = ["max_steps=2", "max_length=128", "per_device_train_batch_size=2", "max_train_rows=8"]


def shared_parts() -> dict[str, str]:
    """The arena's PostgreSQL and Redis, which a second machine's worker shares."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        missing_part("a worker on another machine shares the arena's PostgreSQL and Redis: run with "
                     "DATABASE_URL=postgres://... and REDIS_URL=redis://...")
    return {"DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
            "ARENA_DATA_DIR": str(settings.ARENA_DATA_DIR), "ARENA_ENGINE_PYTHON": settings.ARENA_ENGINE_PYTHON,
            "ARENA_WEB_PYTHON": sys.executable, "ARENA_TRAINING_DEVICE": "cpu"}


def committed_head() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_script_refuses_an_arena_it_cannot_share(tmp_path):
    env = {**os.environ, "DATABASE_URL": "sqlite:///x.sqlite3", "REDIS_URL": "redis://127.0.0.1:6379/7",
           "ARENA_DATA_DIR": str(tmp_path)}
    done = subprocess.run(["bash", str(SCRIPT), "--dir", str(tmp_path / "w")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "a SQLite file is one machine's" in done.stderr
    env = {**env, "DATABASE_URL": "postgres://x@127.0.0.1/x", "ARENA_DATA_DIR": str(tmp_path / "not-mounted")}
    done = subprocess.run(["bash", str(SCRIPT), "--dir", str(tmp_path / "w")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "mount the arena's shared storage" in done.stderr
    assert not (tmp_path / "w").exists()


def test_a_second_worker_joined_by_the_script_trains_a_queued_job_for_the_arena(base_model, tmp_path, vllm_url):
    env = {**os.environ, **shared_parts(), "WORKER_NAME": "joined"}
    dataset = services.dataset_from_builtin("oasst-en-messages")
    job = services.job_launch(base_model=base_model, method="sft", dataset=dataset, preset_name="cpu-smoke",
                              overrides=SMOKE)
    assert Job.objects.get(pk=job.pk).status == "queued"  # on the broker, no worker yet

    folder = tmp_path / "second-machine"
    log_path = tmp_path / "join.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(["bash", str(SCRIPT), "--dir", str(folder)], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 900  # hang guard: two CPU steps take well under a minute
        while time.monotonic() < deadline and worker.poll() is None:
            job.refresh_from_db()
            if job.is_finished():
                break
            time.sleep(1)
        log = log_path.read_text(errors="replace")
        assert job.status == "succeeded", f"{job.status}: {job.error}\n{job.log_tail}\n--- script log:\n{log[-4000:]}"
        # The worker ran from its own folder, at the arena's commit, under the script's name.
        assert job.worker.startswith("joined@")
        assert f"code imported from {folder}" in log
        assert Path(os.readlink(f"/proc/{worker.pid}/cwd")) == folder
        assert subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              ).stdout.strip() == committed_head()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)

    # Its checkpoint reached the arena: in the shared data folder, registered, and served by the arena's vLLM.
    checkpoint = Checkpoint.objects.get(job=job)
    assert Path(checkpoint.weights_dir).is_relative_to(settings.ARENA_DATA_DIR)
    assert (Path(checkpoint.weights_dir) / "adapter_config.json").is_file()
    served = {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}
    assert checkpoint.served_model.engine_model_id in served and checkpoint.served_model.active
