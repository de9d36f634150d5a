"""The rater's loop over the WebSocket, against the real vLLM CPU server."""

import json

import pytest
from channels.testing import WebsocketCommunicator

from arena.models import Battle, Response, Vote
from config.asgi import application
from serving.models import Endpoint, ServedModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.vllm]


async def connect() -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/arena/")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive_until(communicator, *, types: set[str], log: list, count: int = 1, timeout: float = 120) -> list:
    """Collect frames until ``count`` frames of the given types arrive; every frame goes into ``log``."""
    matched = []
    while len(matched) < count:
        frame = await communicator.receive_json_from(timeout=timeout)
        log.append(frame)
        if frame["type"] in types:
            matched.append(frame)
    return matched


async def play_turn(communicator, battle_id: str, text: str, log: list) -> dict[str, dict]:
    await communicator.send_json_to({"type": "prompt", "battle_id": battle_id, "text": text})
    done = await receive_until(communicator, types={"side_done"}, log=log, count=2)
    await receive_until(communicator, types={"turn_done"}, log=log)
    return {frame["side"]: frame for frame in done}


async def test_a_whole_battle_streams_both_sides_then_reveals_only_after_the_vote(battle_models):
    log: list[dict] = []
    communicator = await connect()
    await communicator.send_json_to({"type": "new_battle"})
    (battle,) = await receive_until(communicator, types={"battle"}, log=log)
    battle_id = battle["battle_id"]

    first = await play_turn(communicator, battle_id, "Name a fruit.", log)
    assert {side: frame["state"] for side, frame in first.items()} == {"a": "done", "b": "done"}
    deltas = {side: "".join(f["text"] for f in log if f["type"] == "delta" and f["side"] == side) for side in "ab"}
    assert deltas["a"].strip() and deltas["b"].strip(), "both sides streamed text"
    second = await play_turn(communicator, battle_id, "And a vegetable?", log)
    assert second["a"]["state"] == "done"

    # What the frames may say before the vote is tested over every path in test_anonymity.py.
    await communicator.send_json_to({"type": "vote", "battle_id": battle_id, "winner": "model_b"})
    (revealed,) = await receive_until(communicator, types={"revealed"}, log=log)
    names = {revealed["model_a"]["name"], revealed["model_b"]["name"]}
    assert names == {"smollm2-test-a", "smollm2-test-b"}

    stored = await Battle.objects.aget(public_id=battle_id)
    assert stored.status == "voted" and len(stored.conversation_a) == 4
    assert await Vote.objects.filter(battle=stored, winner="model_b").aexists()
    responses = [r async for r in Response.objects.filter(turn__battle=stored)]
    assert len(responses) == 4
    assert all(r.state == "done" and r.ttft_ms and r.ttft_ms > 0 and r.finish_reason for r in responses)

    # Locked: more prompts and a second vote get clear errors.
    await communicator.send_json_to({"type": "prompt", "battle_id": battle_id, "text": "More?"})
    (error,) = await receive_until(communicator, types={"error"}, log=log)
    assert error["code"] == "battle_closed"
    await communicator.send_json_to({"type": "vote", "battle_id": battle_id, "winner": "model_a"})
    (error,) = await receive_until(communicator, types={"error"}, log=log)
    assert error["code"] == "already_voted"
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame,code",
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"no": "type"}', "bad_message"),
        ('{"type": "launch_missiles"}', "unknown_type"),
        ('{"type": "prompt", "battle_id": "nope", "text": "hi"}', "unknown_battle"),
        ('{"type": "vote", "battle_id": "nope", "winner": "model_a"}', "unknown_battle"),
        ("x" * 70000, "frame_too_large"),
    ],
)
async def test_malformed_frames_get_a_clear_error_and_change_nothing(battle_models, frame, code):
    communicator = await connect()
    await communicator.send_to(text_data=frame)
    reply = await communicator.receive_json_from(timeout=10)
    assert reply == {"type": "error", "code": code, "message": reply["message"]} and reply["message"]
    assert await Battle.objects.acount() == 0 and await Vote.objects.acount() == 0
    await communicator.disconnect()


async def test_binary_frames_are_refused(battle_models):
    communicator = await connect()
    await communicator.send_to(bytes_data=b"\x00\x01")
    reply = await communicator.receive_json_from(timeout=10)
    assert reply["code"] == "bad_frame"
    await communicator.disconnect()


async def test_a_failing_side_shows_its_error_without_breaking_the_other(battle_models):
    # Point one contestant at a port where nothing listens: a real connection failure.
    broken = battle_models[1]
    await Endpoint.objects.filter(pk=broken.endpoint_id).aupdate(base_url="http://127.0.0.1:9/v1")
    log: list[dict] = []
    communicator = await connect()
    await communicator.send_json_to({"type": "new_battle"})
    (battle,) = await receive_until(communicator, types={"battle"}, log=log)
    done = await play_turn(communicator, battle["battle_id"], "Say hello.", log)
    states = {frame["state"] for frame in done.values()}
    assert states == {"done", "error"}
    failed = next(frame for frame in done.values() if frame["state"] == "error")
    assert failed["error"] == "This model could not be reached."
    assert "127.0.0.1" not in json.dumps(log)
    # The vote is accepted (the rater saw both sides) but never counts in the ratings.
    await communicator.send_json_to({"type": "vote", "battle_id": battle["battle_id"], "winner": "model_a"})
    (revealed,) = await receive_until(communicator, types={"revealed"}, log=log)
    vote = await Vote.objects.aget()
    assert vote.side_error
    await communicator.disconnect()


async def test_stop_cancels_both_sides_and_keeps_partial_answers(battle_models):
    await ServedModel.objects.aupdate(generation={"temperature": 0.7, "max_tokens": 200})
    log: list[dict] = []
    communicator = await connect()
    await communicator.send_json_to({"type": "new_battle"})
    (battle,) = await receive_until(communicator, types={"battle"}, log=log)
    await communicator.send_json_to({"type": "prompt", "battle_id": battle["battle_id"], "text": "Write a long story."})
    await receive_until(communicator, types={"delta"}, log=log)
    await communicator.send_json_to({"type": "stop"})
    done = await receive_until(communicator, types={"side_done"}, log=log, count=2)
    assert {frame["state"] for frame in done} <= {"cancelled", "done"}
    assert "cancelled" in {frame["state"] for frame in done}
    responses = [r async for r in Response.objects.all()]
    assert {r.state for r in responses} <= {"cancelled", "done"} and all(r.state != "pending" for r in responses)
    # Cancelled answers still let the rater vote.
    await communicator.send_json_to({"type": "vote", "battle_id": battle["battle_id"], "winner": "tie"})
    await receive_until(communicator, types={"revealed"}, log=log)
    await communicator.disconnect()


async def test_no_battle_starts_without_two_healthy_models(db):
    communicator = await connect()
    await communicator.send_json_to({"type": "new_battle"})
    reply = await communicator.receive_json_from(timeout=10)
    assert reply["code"] == "no_models"
    await communicator.disconnect()
