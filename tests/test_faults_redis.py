"""Fault: Redis (channel layer and shared cache) stops during battles, then comes back.

A Redis of the test's own (tests.faults.ThrowawayRedis) is SIGKILLed at a battle's first token:
the battle streams on, is voted and revealed (the battle socket does not use the channel layer);
the leaderboard's poll endpoint keeps answering while the push socket cannot; once Redis is back,
pushes reach leaderboard sockets again without restarting anything.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from arena.leaderboard.services import leaderboard_broadcast
from arena.models import Vote
from config.asgi import application
from tests.faults import start_own_redis

pytestmark = [pytest.mark.faults, pytest.mark.vllm, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_redis(tmp_path, settings):
    redis = start_own_redis(tmp_path)
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis.url]}}
    }
    settings.CACHES = {**settings.CACHES, "shared": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url, "KEY_PREFIX": "arena"}}
    yield redis
    redis.stop()


async def leaderboard_push_arrives(snapshot_id: int) -> bool:
    communicator = WebsocketCommunicator(application, "/ws/leaderboard/")
    arrived = False
    try:
        connected, _ = await communicator.connect(timeout=5)
        if connected:
            await database_sync_to_async(leaderboard_broadcast)(snapshot_id)
            frame = await communicator.receive_json_from(timeout=5)
            arrived = frame == {"type": "leaderboard", "snapshot_id": snapshot_id}
        await communicator.disconnect()
    except Exception:  # noqa: BLE001 - with Redis down the socket fails in one of several ways
        pass
    return arrived


async def battle(on_first_delta=None) -> dict:
    communicator = WebsocketCommunicator(application, "/ws/arena/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "new_battle"})
    battle_id = (await communicator.receive_json_from(timeout=30))["battle_id"]
    await communicator.send_json_to({"type": "prompt", "battle_id": battle_id, "text": "Name three rivers."})
    frames = []
    while not frames or frames[-1]["type"] != "turn_done":
        frames.append(await communicator.receive_json_from(timeout=120))
        if on_first_delta and frames[-1]["type"] == "delta":
            on_first_delta()
            on_first_delta = None
    await communicator.send_json_to({"type": "vote", "battle_id": battle_id, "winner": "model_a"})
    revealed = await communicator.receive_json_from(timeout=30)
    await communicator.disconnect()
    return {"states": sorted(f["state"] for f in frames if f["type"] == "side_done"), "revealed": revealed}


async def test_battles_outlive_a_redis_outage_and_pushes_resume_when_it_returns(own_redis, battle_models):
    assert await leaderboard_push_arrives(1)

    during = await battle(on_first_delta=own_redis.stop)
    assert during["states"] == ["done", "done"] and during["revealed"]["type"] == "revealed"
    after = await battle()  # a whole battle with Redis down
    assert after["states"] == ["done", "done"] and after["revealed"]["type"] == "revealed"
    assert await database_sync_to_async(Vote.objects.count)() == 2

    # The push cannot work now; the page's poll endpoint still answers.
    assert not await leaderboard_push_arrives(2)
    response = await AsyncClient().get("/api/leaderboard")
    assert response.status_code == 200 and "snapshot" in response.json()

    own_redis.start()  # same port: nothing is restarted on the app's side
    # A page's socket reconnects with backoff; the first attempts may still meet a dropped pool connection.
    recovered = False
    for attempt in range(10):
        if await leaderboard_push_arrives(3 + attempt):
            recovered = True
            break
        await asyncio.sleep(1.0)
    assert recovered, "leaderboard pushes did not resume after Redis came back"
