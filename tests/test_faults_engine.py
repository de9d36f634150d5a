"""Fault: the vLLM engine dies in mid-battle. A real engine of its own (never the shared one) is
SIGKILLed at its first streamed token; both sides end, no process of it is left, it leaves
pairing at the next health check and comes back only with its adapter re-loaded."""

from __future__ import annotations

import os
import signal

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from arena.models import Battle, Contestant, Response
from config.asgi import application
from serving import services
from serving.engines import EngineProcess, group_members, pid_alive
from serving.models import Endpoint, ServedModel
from tests.helpers import start_smollm2_engine

pytestmark = [pytest.mark.faults, pytest.mark.vllm, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_engine():
    """A SmolLM2 engine started for this test alone, on a free port; stopped (whole group) at the end."""
    engine = start_smollm2_engine("test-fault-engine.log")
    yield engine
    engine.stop()


async def battle_killing_at_first_token(engine: EngineProcess, victim_id: int) -> dict:
    """One battle turn; SIGKILL the engine's API server when the victim's side streams its first token."""
    communicator = WebsocketCommunicator(application, "/ws/arena/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "new_battle"})
    battle_id = (await communicator.receive_json_from(timeout=30))["battle_id"]
    battle = await database_sync_to_async(Battle.objects.get)(public_id=battle_id)
    victim_side = "a" if battle.model_a_id == victim_id else "b"
    await communicator.send_json_to({"type": "prompt", "battle_id": battle_id,
                                     "text": "Tell me a long story about a dragon and a lighthouse."})
    frames, killed_at = [], None
    while not frames or frames[-1]["type"] != "turn_done":
        frame = await communicator.receive_json_from(timeout=180)  # nothing may hang: this bounds it
        frames.append(frame)
        if killed_at is None and frame["type"] == "delta" and frame["side"] == victim_side:
            os.kill(engine.process.pid, signal.SIGKILL)
            killed_at = len(frames)
    await communicator.send_json_to({"type": "vote", "battle_id": battle_id, "winner": "tie"})
    revealed = await communicator.receive_json_from(timeout=30)
    await communicator.disconnect()
    return {"frames": frames, "killed_at": killed_at, "victim_side": victim_side, "revealed": revealed}


def test_a_killed_engine_ends_both_sides_leaves_no_process_and_returns_with_its_adapter(
    own_engine, vllm_url, lora_adapter_dir
):
    endpoint = Endpoint.objects.create(name="fault-engine", base_url=f"{own_engine.spec.root_url}/v1", healthy=True)
    victim = ServedModel.objects.create(public_name="victim", endpoint=endpoint, engine_model_id="smollm2-135m-instruct",
                                        generation={"temperature": 0.7, "max_tokens": 200})
    rival_endpoint = Endpoint.objects.create(name="shared-engine", base_url=f"{vllm_url}/v1", healthy=True)
    ServedModel.objects.create(public_name="rival", endpoint=rival_endpoint, engine_model_id="smollm2-135m-instruct",
                               generation={"temperature": 0.0, "max_tokens": 8})
    adapter = services.served_model_register_adapter(parent=victim, name="victim-lora-v1",
                                                     adapter_path=lora_adapter_dir)
    Contestant.objects.create(served_model=adapter, sampling_weight=0)  # battles pit victim against rival

    old_pgid = own_engine.pgid
    result = async_to_sync(battle_killing_at_first_token)(own_engine, victim.pk)
    assert result["killed_at"] is not None, "the victim never streamed a token"
    done = {f["side"]: f for f in result["frames"] if f["type"] == "side_done"}
    victim_side, rival_side = result["victim_side"], "ab"[result["victim_side"] == "a"]
    assert done[victim_side]["state"] == "error" and done[victim_side]["error"]
    assert done[rival_side]["state"] == "done"
    assert result["revealed"]["type"] == "revealed"  # the battle ended votable
    assert not Response.objects.filter(state=Response.State.PENDING).exists()

    # The next health check takes the engine, and its adapter, out of pairing.
    assert not services.endpoint_refresh(endpoint)["healthy"]
    assert set(ServedModel.objects.healthy().values_list("public_name", flat=True)) == {"rival"}

    # Restarted as run_all does: nothing of the old engine may survive (its EngineCore included).
    leftovers = group_members(old_pgid)
    own_engine.process = None
    own_engine.start()
    assert not group_members(old_pgid) and not any(pid_alive(pid) for pid in leftovers)
    own_engine.wait_ready(600)

    # Back only with its adapter re-loaded, which then generates.
    refresh = services.endpoint_refresh(endpoint)
    assert refresh["healthy"] and refresh["adapters"]["reloaded"] == ["victim-lora-v1"]
    assert set(ServedModel.objects.healthy().values_list("public_name", flat=True)) == {
        "victim", "victim-lora-v1", "rival"}
    answer = httpx.post(f"{own_engine.spec.root_url}/v1/chat/completions", timeout=120, json={
        "model": "victim-lora-v1", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}).json()
    assert answer["model"] == "victim-lora-v1" and answer["choices"][0]["message"]["content"]

    new_pgid = own_engine.pgid
    own_engine.stop()
    assert not group_members(new_pgid)

