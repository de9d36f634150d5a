"""Faults of the web side: a web process SIGKILLed mid-stream, and an answer that cannot be recorded.

Either way no battle stays stuck: the answer ends as an error (on the socket when the process
lives, by ``arena.battle.reaper`` after the generation timeout when it does not), and the battle can
be voted (the vote is marked ``side_error``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
import websockets
from channels.testing import WebsocketCommunicator
from django.db import DatabaseError

from arena import services
from arena.battle import reaper
from arena.models import Battle, Response
from config.asgi import application
from tests.faults import start_daphne
from tests.helpers import REPO, database_url_for_subprocess, free_port

pytestmark = [pytest.mark.faults, pytest.mark.vllm, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def long_answers(battle_models):
    for model in battle_models:
        model.generation = {**model.generation, "max_tokens": 200}
        model.save(update_fields=["generation"])
    return battle_models


async def kill_at_first_delta(url: str, process) -> str:
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"type": "new_battle"}))
        battle_id = json.loads(await asyncio.wait_for(socket.recv(), 30))["battle_id"]
        await socket.send(json.dumps({"type": "prompt", "battle_id": battle_id, "text": "Tell me a long story."}))
        while json.loads(await asyncio.wait_for(socket.recv(), 120))["type"] != "delta":
            pass
        process.kill()
    return battle_id


def test_answers_of_a_web_process_killed_mid_stream_are_reaped_and_the_battle_is_votable(long_answers, settings):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    process = start_daphne(REPO, port, env, REPO / "var" / "logs" / "test-fault-daphne.log")
    try:
        battle_id = asyncio.run(kill_at_first_delta(f"ws://127.0.0.1:{port}/ws/arena/", process))
    finally:
        process.kill()
        process.wait(10)
    pending = set(Response.objects.filter(state=Response.State.PENDING).values_list("pk", flat=True))
    assert pending, "the killed process left its answers pending"
    assert reaper.responses_reap_stale() == []  # nothing is reaped before the generation timeout

    settings.ARENA_GENERATION_TIMEOUT_S = 1
    settings.ARENA_REAP_GRACE_S = 0
    time.sleep(1.5)
    assert set(reaper.responses_reap_stale()) == pending
    assert not Response.objects.filter(state=Response.State.PENDING).exists()
    battle = Battle.objects.get(public_id=battle_id)
    vote = services.battle_vote(battle_id=battle_id, rater_id=battle.rater_id, winner="tie")
    assert vote.side_error  # left out of the ratings


async def play(communicator, battle_id: str) -> list[dict]:
    await communicator.send_json_to({"type": "prompt", "battle_id": battle_id, "text": "Name a colour."})
    frames = []
    while not frames or frames[-1]["type"] != "turn_done":
        frames.append(await communicator.receive_json_from(timeout=120))
    return frames


@pytest.mark.parametrize("failures", [1, 99], ids=["recorded-as-error", "not-recorded-at-all"])
async def test_a_side_whose_answer_cannot_be_recorded_still_ends(battle_models, monkeypatch, settings, failures):
    """The database refuses the finished answer (once, or every time): the side ends with an error at once."""
    real_finish = services.battle_side_finish
    calls = {"a": 0}

    def failing_finish(*, response_id, **fields):
        if Response.objects.get(pk=response_id).side == "a" and calls["a"] < failures:
            calls["a"] += 1
            raise DatabaseError("injected: the database refused the write")
        return real_finish(response_id=response_id, **fields)

    monkeypatch.setattr(services, "battle_side_finish", failing_finish)
    communicator = WebsocketCommunicator(application, "/ws/arena/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "new_battle"})
    battle_id = (await communicator.receive_json_from(timeout=30))["battle_id"]
    done = {f["side"]: f for f in await play(communicator, battle_id) if f["type"] == "side_done"}
    assert done["a"]["state"] == "error" and "could not be saved" in done["a"]["error"]
    assert done["b"]["state"] == "done"

    if failures > 1:
        # Nothing could be recorded: the vote waits, and the reaper closes the answer after the timeout.
        await communicator.send_json_to({"type": "vote", "battle_id": battle_id, "winner": "model_b"})
        assert (await communicator.receive_json_from(timeout=30))["code"] == "not_finished"
        monkeypatch.setattr(services, "battle_side_finish", real_finish)  # the database is back
        settings.ARENA_GENERATION_TIMEOUT_S = 1
        settings.ARENA_REAP_GRACE_S = 0
        await asyncio.sleep(1.5)
        from channels.db import database_sync_to_async

        assert len(await database_sync_to_async(reaper.responses_reap_stale)()) == 1
    await communicator.send_json_to({"type": "vote", "battle_id": battle_id, "winner": "model_b"})
    revealed = await communicator.receive_json_from(timeout=30)
    assert revealed["type"] == "revealed"
    await communicator.disconnect()
