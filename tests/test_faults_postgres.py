"""Fault: PostgreSQL goes down for a few seconds in mid-battle, then comes back (a restart).

A PostgreSQL cluster of the test's own (tests.faults.ThrowawayPostgres, never the shared one)
serves a daphne web process. The outage starts at the battle's first token: the streams finish,
the rater gets clear errors (the side "could not be saved", the vote "unavailable"), the socket
stays open, no half-written rows are left, and once PostgreSQL is back the same web process
(not restarted) plays whole battles again; the reaper then closes the answers the outage left pending.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
import websockets

from tests.faults import ThrowawayPostgres, start_daphne
from tests.helpers import REPO, free_port, missing_part

pytestmark = [pytest.mark.faults, pytest.mark.vllm]

SETUP = """
from serving.models import Endpoint, ServedModel
for side in "ab":
    endpoint = Endpoint.objects.create(name=f"pg-{side}", base_url="{vllm}/v1", healthy=True)
    ServedModel.objects.create(public_name=f"pg-{side}", endpoint=endpoint, engine_model_id="smollm2-135m-instruct",
                               generation={"temperature": 0.7, "max_tokens": 60})
"""


@pytest.fixture
def own_postgres(migrated_postgres_data):
    """A cluster of the test's own, its database ``arena`` migrated (a copy of the session's template)."""
    postgres = ThrowawayPostgres(free_port(), template=migrated_postgres_data)
    try:
        postgres.start()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        missing_part(f"cannot start a PostgreSQL cluster of the test's own: {exc}")
    yield postgres
    postgres.stop()


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True,
                          text=True, timeout=300).stdout


async def frames_until(socket, types: set[str], log: list) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 120))
        log.append(frame)
        if frame["type"] in types:
            return frame


async def outage_battle(url: str, postgres: ThrowawayPostgres) -> dict:
    log: list[dict] = []
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"type": "new_battle"}))
        battle_id = (await frames_until(socket, {"battle"}, log))["battle_id"]
        await socket.send(json.dumps({"type": "prompt", "battle_id": battle_id, "text": "Tell me about rivers."}))
        await frames_until(socket, {"delta"}, log)
        await asyncio.to_thread(postgres.stop, remove=False)  # the outage starts at the first token
        await frames_until(socket, {"turn_done"}, log)
        await socket.send(json.dumps({"type": "vote", "battle_id": battle_id, "winner": "tie"}))
        vote = await frames_until(socket, {"revealed", "error"}, log)
        await socket.send(json.dumps({"type": "new_battle"}))
        during = await frames_until(socket, {"battle", "error"}, log)
        await asyncio.to_thread(postgres.start)  # back after a few seconds
        # The same socket, the same web process: whole battles again.
        deadline = time.monotonic() + 90
        revealed = None
        while revealed is None and time.monotonic() < deadline:
            await socket.send(json.dumps({"type": "new_battle"}))
            battle = await frames_until(socket, {"battle", "error"}, log)
            if battle["type"] == "error":
                await asyncio.sleep(1.0)
                continue
            await socket.send(json.dumps({"type": "prompt", "battle_id": battle["battle_id"], "text": "Hi!"}))
            await frames_until(socket, {"turn_done"}, log)
            await socket.send(json.dumps({"type": "vote", "battle_id": battle["battle_id"], "winner": "model_a"}))
            answer = await frames_until(socket, {"revealed", "error"}, log)
            revealed = answer if answer["type"] == "revealed" else None
    return {"log": log, "vote": vote, "during": during, "revealed": revealed}


def test_a_postgresql_outage_mid_battle_gives_clear_errors_and_the_app_resumes_without_a_restart(
    own_postgres, vllm_url
):
    env = {**os.environ, "DATABASE_URL": own_postgres.url}
    env.pop("REDIS_URL", None)
    manage(env, "shell", "-c", SETUP.replace("{vllm}", vllm_url))
    port = free_port()
    web = start_daphne(REPO, port, env, REPO / "var" / "logs" / "test-fault-postgres-daphne.log")
    try:
        result = asyncio.run(outage_battle(f"ws://127.0.0.1:{port}/ws/arena/", own_postgres))
        assert web.poll() is None, "the web process died"
    finally:
        web.terminate()
        web.wait(20)
    done = [f for f in result["log"] if f["type"] == "side_done"]
    failed = [f for f in done[:2] if f["state"] == "error"]
    assert failed and all("could not be saved" in f["error"] for f in failed), done[:2]
    unavailable = "The arena's database is unavailable right now; try again in a moment."
    assert result["vote"]["type"] == "error" and result["vote"]["message"] == unavailable
    assert result["during"] == {"type": "error", "code": "unavailable", "message": unavailable}
    assert result["revealed"] is not None, "no whole battle after PostgreSQL came back"

    # No half-written rows: every battle has all its turns, every turn both sides, every voted battle its vote.
    assert own_postgres.sql("SELECT b.id FROM arena_battle b WHERE b.turn_total <> "
                            "(SELECT count(*) FROM arena_turn t WHERE t.battle_id = b.id)") == []
    assert own_postgres.sql("SELECT t.id FROM arena_turn t WHERE (SELECT count(*) FROM arena_response r "
                            "WHERE r.turn_id = t.id) <> 2") == []
    assert own_postgres.sql("SELECT b.id FROM arena_battle b LEFT JOIN arena_vote v ON v.battle_id = b.id "
                            "WHERE (b.status = 'voted') <> (v.id IS NOT NULL)") == []
    # What the outage left pending, the reaper closes (timeout 1 s here), and the battle can then be voted.
    # (Only the reaper gets the 1 s timeout: the web's streams keep theirs, or a slow first token on a
    # busy machine would end both sides before the outage starts.)
    time.sleep(1.5)
    reaper_env = {**env, "ARENA_GENERATION_TIMEOUT_S": "1", "ARENA_REAP_GRACE_S": "0"}
    reaped = manage(reaper_env, "shell", "-c",
                    "from arena.battle.reaper import responses_reap_stale; print(len(responses_reap_stale()))")
    assert int(reaped.strip().splitlines()[-1]) == len(failed)
    assert own_postgres.sql("SELECT count(*) FROM arena_response WHERE state = 'pending'") == [(0,)]
