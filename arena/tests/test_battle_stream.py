"""What the battle socket streams before the vote (ARENA_STREAM), against the real vLLM CPU server.

The pacer the consumer uses is the real one, wrapped only to note the clock times it is ticked
at; the frames are what a script on the socket receives.
"""

import re
import subprocess
import sys

import pytest
from channels.testing import WebsocketCommunicator

from arena import consumers
from arena.battle.pacing import PaceConfig, Pacer
from arena.models import Response
from config.asgi import application
from serving.models import ServedModel

PROMPT = "List five fruits and say one thing about each."


class NotingPacer(Pacer):
    """The real pacer, noting every tick's time and what it released."""

    made: list["NotingPacer"] = []

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ticks: list[tuple[float, list]] = []
        NotingPacer.made.append(self)

    def tick(self, now: float) -> list[tuple[str, str]]:
        released = super().tick(now)
        self.ticks.append((now, released))
        return released


@pytest.fixture
def noting_pacer(monkeypatch):
    NotingPacer.made = []
    monkeypatch.setattr(consumers, "Pacer", NotingPacer)
    return NotingPacer.made


async def one_turn(prompt: str = PROMPT) -> list[dict]:
    """A battle's first turn, every frame from the prompt to ``turn_done``."""
    communicator = WebsocketCommunicator(application, "/ws/arena/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "new_battle"})
    battle_id = (await communicator.receive_json_from(timeout=30))["battle_id"]
    await communicator.send_json_to({"type": "prompt", "battle_id": battle_id, "text": prompt})
    frames = []
    while not frames or frames[-1]["type"] != "turn_done":
        frames.append(await communicator.receive_json_from(timeout=120))
    await communicator.disconnect()
    return frames


def deltas(frames: list[dict], side: str) -> list[str]:
    return [f["text"] for f in frames if f["type"] == "delta" and f["side"] == side]


async def stored_contents() -> dict[str, str]:
    return {r.side: r.content async for r in Response.objects.all()}


@pytest.mark.django_db(transaction=True)
@pytest.mark.vllm
class TestPacedStream:
    async def test_chunks_are_whole_words_released_together_on_one_clock(self, battle_models, noting_pacer):
        await ServedModel.objects.aupdate(generation={"temperature": 0.7, "max_tokens": 60})
        frames = await one_turn()
        contents = await stored_contents()
        max_word = PaceConfig().max_word_chars
        for side in "ab":
            chunks = deltas(frames, side)
            assert "".join(chunks) == contents[side] and len(chunks) > 1
            for chunk, following in zip(chunks, chunks[1:], strict=False):
                # A chunk ends at the end of a word; only a run of max_word letters is cut inside.
                assert following[0].isspace() or len(re.split(r"\s", chunk)[-1]) == max_word, (chunk, following)

        (pacer,) = noting_pacer
        tick = pacer.config.tick_s
        releasing = [(at, released) for at, released in pacer.ticks if released]
        # Every release is on the clock, and the first one gives both sides their first chunk.
        for at, _ in pacer.ticks:
            steps = (at - pacer.start) / tick
            assert steps == pytest.approx(round(steps), abs=1e-6) and round(steps) >= 1
        assert [side for side, _ in releasing[0][1]] == ["a", "b"]
        # Each tick's chunks are sent back to back, a then b: the frames in order are the ticks'.
        sent = [(f["side"], f["text"]) for f in frames if f["type"] == "delta"]
        assert sent == [pair for _, released in releasing for pair in released]
        # Nothing of how each engine ended shows before both sides' text is out: both side_done
        # frames come together after the last delta, then turn_done.
        kinds = [f["type"] for f in frames]
        last_delta = max(i for i, kind in enumerate(kinds) if kind == "delta")
        assert kinds[last_delta + 1 :] == ["side_done", "side_done", "turn_done"]

    async def test_whole_sends_each_side_once_when_both_are_complete(self, battle_models, settings):
        settings.ARENA_STREAM = "whole"
        await ServedModel.objects.aupdate(generation={"temperature": 0.7, "max_tokens": 40})
        frames = await one_turn()
        contents = await stored_contents()
        kinds = [f["type"] for f in frames]
        assert kinds == ["turn_started", "delta", "delta", "side_done", "side_done", "turn_done"]
        assert {f["side"]: f["text"] for f in frames if f["type"] == "delta"} == contents
        assert all(contents.values())

    async def test_a_stop_stores_what_the_rater_was_shown(self, battle_models):
        await ServedModel.objects.aupdate(generation={"temperature": 0.7, "max_tokens": 200})
        communicator = WebsocketCommunicator(application, "/ws/arena/")
        assert (await communicator.connect())[0]
        await communicator.send_json_to({"type": "new_battle"})
        battle_id = (await communicator.receive_json_from(timeout=30))["battle_id"]
        await communicator.send_json_to({"type": "prompt", "battle_id": battle_id, "text": "Write a long story."})
        frames = []
        while sum(f["type"] == "delta" for f in frames) < 4:
            frames.append(await communicator.receive_json_from(timeout=120))
        await communicator.send_json_to({"type": "stop"})
        while sum(f["type"] == "side_done" for f in frames) < 2:
            frames.append(await communicator.receive_json_from(timeout=60))
        await communicator.disconnect()
        responses = {r.side: r async for r in Response.objects.all()}
        for side in "ab":
            assert responses[side].content == "".join(deltas(frames, side))
        assert "cancelled" in {r.state for r in responses.values()}


class TestSetting:
    @pytest.mark.parametrize("env", [{"ARENA_STREAM": "fast"}, {"ARENA_STREAM": "tokens", "DJANGO_DEBUG": "false"}])
    def test_an_unknown_or_leaking_stream_mode_stops_the_start(self, env):
        done = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"], capture_output=True, text=True,
            env={"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "true", "ARENA_IP_SALT": "s",
                 "DJANGO_SECRET_KEY": "k", "ARENA_ADMIN_PASSWORD": "p", "PATH": "/usr/bin:/bin", **env},
        )
        assert done.returncode != 0 and "ARENA_STREAM" in done.stderr and "must be paced or whole" in done.stderr
