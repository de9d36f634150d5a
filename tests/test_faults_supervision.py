"""Faults under `make run`'s supervisor (``manage.py run_all --no-engines``, on ports of its own, its
contestants on the shared vLLM server through served-model rows): no single part takes the arena down.

* Redis SIGKILLed at a battle's first token while the default worker holds a refit (an ETA message):
  the turn ends, the vote is revealed and recorded, the pages answer; once Redis is back the worker
  (never restarted) queues the message it held again and the refit completes within 60 s.
* The default worker SIGKILLed while it holds a message: run_all restarts it; the held task runs
  once (redelivered by Redis after the visibility timeout), and no finished task runs again.
* PostgreSQL restarted under battles: the same processes play whole battles again and refit.
* The web SIGKILLed: run_all starts it again. run_all SIGKILLed: no process it started is left
  (and, before that, its logs were rotated past ARENA_LOG_MAX_BYTES).

The others stop run_all with Ctrl-C's SIGINT and check that it stopped everything.

Each uses a Redis or PostgreSQL of its own (``tests.faults``), never the machine's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import websockets

from arena.models import RatingSnapshot, Vote
from serving.engines import group_members
from tests.faults import ThrowawayPostgres, start_own_redis
from tests.helpers import REPO, database_url_for_subprocess, free_port, missing_part

pytestmark = [pytest.mark.faults, pytest.mark.vllm]


def wait_until(condition, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(step)
    return condition()


class Stack:
    """A running ``run_all --no-engines``: its process, web port and logs folder."""

    def __init__(self, process: subprocess.Popen, port: int, logs: Path, output: Path):
        self.process, self.port, self.logs, self.output = process, port, logs, output

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/arena/"

    def log(self, name: str) -> str:
        """A child's whole log: its rotated copies (oldest first), then the current file."""
        copies = sorted(self.logs.glob(f"{name}.log.*"), key=lambda p: -int(p.suffix[1:]))
        paths = [*copies, self.logs / f"{name}.log"]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def said(self) -> str:
        return self.output.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """Command line -> pid of run_all's direct children (each the leader of its own group)."""
        found = {}
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
                if entry.name.isdigit() and int(stat[stat.rfind(")") + 2:].split()[1]) == self.process.pid:
                    found[(entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()] = int(entry.name)
            except (OSError, ValueError, IndexError):
                continue
        return found

    def child(self, marker: str) -> int | None:
        return next((pid for command, pid in self.children().items() if marker in command), None)


@contextmanager
def run_all(tmp_path: Path, env_extra: dict[str, str]):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "ARENA_DATA_DIR": str(tmp_path / "data"),
           "ARENA_PORT": str(port), "ARENA_ENGINE_PORT": str(free_port()), "ARENA_LOCAL_MODELS": "smollm2",
           "DJANGO_DEBUG": "true", **env_extra}
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        if name not in env_extra:
            env.pop(name, None)
    tmp_path.mkdir(parents=True, exist_ok=True)
    output = tmp_path / "run_all.out"
    with open(output, "wb") as out:
        process = subprocess.Popen([sys.executable, "manage.py", "run_all", "--no-engines"], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    stack = Stack(process, port, tmp_path / "data" / "logs", output)
    try:
        assert wait_until(lambda: web_answers(port) or process.poll() is not None, 90) and process.poll() is None, \
            stack.said()
        assert wait_until(lambda: "ready." in stack.log("worker") and "ready." in stack.log("training-worker"), 90)
        yield stack
    finally:
        leaders = list(stack.children().values())
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Ctrl-C
            assert process.wait(60) == 0 and "Stopped." in stack.said(), stack.said()
        assert wait_until(lambda: not any(group_members(pgid) for pgid in leaders), 30), "run_all left processes"


def web_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


async def frames_until(socket, types: set[str]) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 120))
        if frame["type"] in types:
            return frame


async def battle(url: str, on_first_delta=None) -> dict:
    """One battle with one turn and a vote, on a socket of its own; returns the vote's answer."""
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"type": "new_battle"}))
        battle_id = (await frames_until(socket, {"battle"}))["battle_id"]
        await socket.send(json.dumps({"type": "prompt", "battle_id": battle_id, "text": "Name three rivers."}))
        if on_first_delta is not None:
            await frames_until(socket, {"delta"})
            await asyncio.to_thread(on_first_delta)
        await frames_until(socket, {"turn_done"})
        await socket.send(json.dumps({"type": "vote", "battle_id": battle_id, "winner": "model_a"}))
        return await frames_until(socket, {"revealed", "error"})


def task_ids(log: str, task: str, event: str) -> list[str]:
    return re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] {event}", log)


REFRESH = "arena.tasks.ratings_refresh"


@pytest.fixture
def own_redis(tmp_path):
    redis = start_own_redis(tmp_path)
    yield redis
    redis.stop()


@pytest.mark.django_db(transaction=True)
def test_redis_killed_while_a_refit_is_held_ends_the_turn_keeps_the_vote_and_refits_after_it_returns(
    own_redis, battle_models, tmp_path
):
    env = {"REDIS_URL": own_redis.url, "ARENA_LEADERBOARD_REFRESH_DELAY_S": "45"}
    with run_all(tmp_path / "stack", env) as stack:
        first = asyncio.run(battle(stack.ws_url))
        assert first["type"] == "revealed", first
        # The vote queued a refit in 45 s: the default worker holds it (an unacknowledged ETA message).
        held = wait_until(lambda: task_ids(stack.log("worker"), REFRESH, "received"), 30)
        assert held, "the worker never received the refit"

        during = asyncio.run(battle(stack.ws_url, on_first_delta=own_redis.stop))
        assert during["type"] == "revealed", during  # the turn ended and the vote was taken
        assert Vote.objects.count() == 2
        for page in ("/", "/leaderboard/", "/api/leaderboard"):
            assert httpx.get(f"http://127.0.0.1:{stack.port}{page}", timeout=10).status_code == 200, page
        time.sleep(3)

        own_redis.start()
        back = time.monotonic()
        assert wait_until(lambda: RatingSnapshot.objects.exists(), 60, step=1.0), \
            f"no refit within 60 s of Redis coming back:\n{stack.log('worker')[-3000:]}"
        assert time.monotonic() - back <= 60
        worker = stack.log("worker")
        assert "queued again 1 message(s) held when the broker was lost" in worker
        assert task_ids(worker, REFRESH, "succeeded") == held  # the held message, delivered again, ran once
        assert "Unrecoverable error" not in worker
        assert stack.process.poll() is None
        assert "exited with code" not in stack.said(), stack.said()  # nothing had to be restarted
        assert asyncio.run(battle(stack.ws_url))["type"] == "revealed"


@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_worker_is_restarted_and_no_task_runs_twice(own_redis, tmp_path):
    from celery import Celery

    env = {"REDIS_URL": own_redis.url, "CELERY_VISIBILITY_TIMEOUT_S": "60"}
    sender = Celery(broker=own_redis.url, set_as_current=False)  # the suite's app stays current
    sender.conf.task_default_queue = "default"
    with run_all(tmp_path / "stack", env) as stack:
        done, held = str(uuid.uuid4()), str(uuid.uuid4())
        sender.send_task(REFRESH, task_id=done)
        assert wait_until(lambda: done in task_ids(stack.log("worker"), REFRESH, "succeeded"), 30)
        sender.send_task(REFRESH, task_id=held, countdown=20)
        assert wait_until(lambda: held in task_ids(stack.log("worker"), REFRESH, "received"), 30)
        killed = stack.child("default@")
        os.kill(killed, signal.SIGKILL)

        assert wait_until(lambda: stack.child("default@") not in (None, killed), 30), stack.said()
        assert "worker exited with code -9; restarting in 5 s" in stack.said()
        after = str(uuid.uuid4())
        sender.send_task(REFRESH, task_id=after)
        # The restarted worker works, and Redis hands the held message out again after its visibility
        # timeout (60 s; kombu sweeps about every 100 s).
        assert wait_until(lambda: {after, held} <= set(task_ids(stack.log("worker"), REFRESH, "succeeded")), 240,
                          step=2.0), stack.log("worker")[-3000:]
        time.sleep(5)
        succeeded = task_ids(stack.log("worker"), REFRESH, "succeeded")
        assert sorted(succeeded) == sorted([done, held, after])  # each exactly once
    sender.close()


SETUP = """
from serving.models import Endpoint, ServedModel
for side in "ab":
    endpoint = Endpoint.objects.create(name=f"pg-{side}", base_url="{vllm}/v1", healthy=True)
    ServedModel.objects.create(public_name=f"pg-{side}", endpoint=endpoint, engine_model_id="smollm2-135m-instruct",
                               generation={"temperature": 0.7, "max_tokens": 30})
"""


def test_postgresql_restarted_under_battles_and_the_same_processes_play_and_refit_again(
        vllm_url, tmp_path, migrated_postgres_data):
    postgres = ThrowawayPostgres(free_port(), template=migrated_postgres_data)  # "arena" migrated
    try:
        postgres.start()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        missing_part(f"cannot start a PostgreSQL cluster of the test's own: {exc}")
    try:
        env = {**os.environ, "DATABASE_URL": postgres.url, "DJANGO_DEBUG": "true"}
        subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP.replace("{vllm}", vllm_url)], cwd=REPO,
                       env=env, check=True, capture_output=True, timeout=300)
        stack_env = {"DATABASE_URL": postgres.url, "ARENA_LEADERBOARD_REFRESH_DELAY_S": "1"}
        with run_all(tmp_path / "stack", stack_env) as stack:
            leaders = stack.children()
            asyncio.run(battle(stack.ws_url, on_first_delta=postgres.restart))  # clear errors, checked elsewhere

            def whole_battle():
                try:
                    return asyncio.run(battle(stack.ws_url))["type"] == "revealed"
                except Exception:  # noqa: BLE001 - the first tries may meet a dropped connection
                    return False

            assert wait_until(whole_battle, 90, step=1.0), "no whole battle after PostgreSQL came back"
            assert wait_until(lambda: postgres.sql("SELECT count(*) FROM arena_ratingsnapshot")[0][0] >= 1, 60), \
                stack.log("worker")[-3000:]
            assert stack.children() == leaders, "a process was restarted"
            assert "exited with code" not in stack.said()
    finally:
        postgres.stop()


def test_a_sigkilled_web_comes_back_and_a_sigkilled_run_all_leaves_no_process_behind(tmp_path, transactional_db):
    with run_all(tmp_path / "stack", {"ARENA_LOG_MAX_BYTES": "1024", "ARENA_LOG_BACKUPS": "2"}) as stack:
        # Celery's start-up banner alone is over 1 KiB: the supervisor's next round rotates it.
        assert wait_until(lambda: (stack.logs / "worker.log.1").exists(), 30)
        assert (stack.logs / "worker.log.1").stat().st_size > 1024
        assert not (stack.logs / "worker.log.3").exists()

        web = stack.child("config.web")
        os.kill(web, signal.SIGKILL)
        assert wait_until(lambda: stack.child("config.web") not in (None, web) and web_answers(stack.port), 60), \
            stack.said()
        assert "web exited with code -9; restarting in 5 s" in stack.said()
        leaders = list(stack.children().values())
        assert len(leaders) == 4  # the group guard, web, worker, training worker
        members = {pid for leader in leaders for pid in group_members(leader)}
        assert len(members) > len(leaders)  # Celery's pool processes too
        stack.process.kill()
        stack.process.wait(10)
        assert wait_until(lambda: not any(group_members(leader) for leader in leaders), 30), \
            [group_members(leader) for leader in leaders]
        assert not web_answers(stack.port)
