"""A full fine-tune, for real: a Celery worker trains every weight of SmolLM2 for one step, the
engine supervisor (``manage.py run_engines``, a subprocess on the test database) starts a vLLM
engine of its own on the saved model, the new contestant answers through ``serving.streaming``,
and deactivating it stops its engine's whole process group."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from arena.pairing.contestants import contestant_of
from serving.engines import group_members
from serving.models import Endpoint, ServedModel
from serving.streaming import ModelTarget, stream_chat
from tests.helpers import REPO, database_url_for_subprocess
from tests.test_training_loop import wait_for, wait_until
from training import services
from training.models import Checkpoint

pytestmark = [pytest.mark.vllm, pytest.mark.training, pytest.mark.celery]

TINY_FULL = ["finetuning_type=full", "learning_rate=2e-5", "max_steps=1", "max_length=96",
             "per_device_train_batch_size=2", "max_train_rows=4"]


def engine_pgid(port: int) -> int | None:
    """The process group of the vLLM server listening on ``port`` (found by its command line)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vllm.entrypoints.openai.api_server" in argv and str(port).encode() in argv:
            return os.getpgid(int(entry.name))
    return None


@pytest.fixture
def run_engines():
    """``manage.py run_engines`` on the test database; SIGTERMed (and waited for) at the end."""
    log_path = settings.ARENA_DATA_DIR / "logs" / "test-run-engines.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "ARENA_LOCAL_MODELS": "",
           "ARENA_DATA_DIR": str(settings.ARENA_DATA_DIR)}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "manage.py", "run_engines", "--poll", "1"], cwd=REPO, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def test_a_full_fine_tune_gets_its_own_engine_answers_and_its_engine_stops_when_deactivated(
        base_model, celery_worker_process, run_engines):
    celery_worker_process()
    dataset = services.dataset_from_builtin("oasst-en-messages")
    job = services.job_launch(base_model=base_model, method="sft", dataset=dataset, preset_name="cpu-smoke",
                              overrides=TINY_FULL)
    job = wait_for(job, {"succeeded"})
    checkpoint = Checkpoint.objects.get(job=job)
    model_dir = Path(checkpoint.weights_dir)
    assert checkpoint.finetuning_type == "full" and model_dir.name == "model"
    assert not (model_dir / "adapter_config.json").exists()
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "llama"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()

    model = checkpoint.served_model
    endpoint = model.endpoint
    assert model.kind == "full" and endpoint.managed and endpoint != base_model.endpoint
    assert wait_until(lambda: Endpoint.objects.get(pk=endpoint.pk).healthy, settings.ARENA_ENGINE_START_TIMEOUT_S), \
        Endpoint.objects.get(pk=endpoint.pk).last_error
    assert ServedModel.objects.healthy().filter(pk=model.pk).exists()  # battle-ready
    assert contestant_of(model).effective_weight() > 0
    served = httpx.get(f"{endpoint.base_url}/models").json()["data"]
    assert [(m["id"], m["root"]) for m in served] == [(model.engine_model_id, str(model_dir))]

    async def answer() -> str:
        target = ModelTarget.of(model, max_tokens=8)
        return "".join([e.text async for e in stream_chat(target, [{"role": "user", "content": "Say hello."}])])

    assert asyncio.run(answer()).strip()

    port = int(endpoint.base_url.rsplit(":", 1)[1].split("/")[0])
    pgid = engine_pgid(port)
    assert pgid is not None and group_members(pgid)
    ServedModel.objects.filter(pk=model.pk).update(active=False)
    assert wait_until(lambda: not group_members(pgid), 60), f"engine group {pgid} still has {group_members(pgid)}"
    run_engines.send_signal(signal.SIGTERM)
    assert run_engines.wait(60) == 0
