"""Anonymity until the vote, as a tested property, against the real vLLM CPU server.

Two different contestants (names, organizations, licenses, descriptions, endpoints, an adapter
path) battle through every path a rater can take: a normal turn, stop, a failing side (no
server, and an HTTP error status), a timeout, a rate limit and a reconnect; plus every HTTP
response a rater can reach before the vote. Nothing the server sends before the vote may
contain any of those database values, and no per-side field may exist beyond the text and a
done/length/stopped state.
"""

import json
from urllib.parse import urlparse

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import AsyncClient

from arena.consumers import BattleConsumer
from arena.models import Battle
from config.asgi import application
from serving.models import Endpoint, ServedModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.vllm]

SIDE_FIELDS = {"delta": {"type", "side", "text"},
               "side_done": {"type", "side", "state", "finish_reason", "html", "error"}}
PUBLIC_STATES = {"done", "error", "cancelled"}
PUBLIC_FINISH = {"done", "length", "stopped", ""}
PUBLIC_ERRORS = {"", "This model took too long to answer.", "This model could not be reached.",
                 "This model's server answered with an error.", "This model failed to answer."}


@pytest.fixture
def two_contestants(db, vllm_url):
    """Two different contestants on the real server, every descriptive field distinct."""
    specs = [
        ("contestant-alpha", "Hugging Face", "Apache-2.0", "A tiny instruct model from the SmolLM2 family.",
         "", {"temperature": 0.7, "max_tokens": 8}),
        ("contestant-omega", "Zyxwv Research", "CC-BY-NC-4.0", "An adapter trained on quokka recipes.",
         "/srv/adapters/quokka-lora-r16", {"temperature": 0.0, "max_tokens": 8}),
    ]
    models = []
    for index, (name, org, lic, description, adapter, generation) in enumerate(specs):
        endpoint = Endpoint.objects.create(name=f"private-endpoint-{index}", base_url=f"{vllm_url}/v1", healthy=True)
        models.append(ServedModel.objects.create(
            public_name=name, endpoint=endpoint, engine_model_id="smollm2-135m-instruct", organization=org,
            license=lic, description=description, adapter_path=adapter, generation=generation))
    return models


def secrets_from_rows() -> set[str]:
    """Every value that would tell a rater which model is which, read from the database rows."""
    values: set[str] = set()
    for model in ServedModel.objects.select_related("endpoint"):
        url = urlparse(model.endpoint.base_url)
        values |= {model.public_name, model.engine_model_id, model.organization, model.license, model.description,
                   model.adapter_path, model.endpoint.name, model.endpoint.base_url, url.hostname,
                   f"{url.hostname}:{url.port}"}
    return {v.lower() for v in values if v}


def check_frames(frames: list[dict]) -> None:
    """The per-side rule: only text and a public end state, before the vote."""
    for frame in frames:
        assert frame["type"] != "revealed"
        if frame["type"] in SIDE_FIELDS:
            assert set(frame) == SIDE_FIELDS[frame["type"]], frame
        if frame["type"] == "side_done":
            assert frame["state"] in PUBLIC_STATES and frame["finish_reason"] in PUBLIC_FINISH, frame
            assert frame["error"] in PUBLIC_ERRORS, frame


def scrub(frames: list[dict]) -> str:
    """The frames without the models' own words (identity leaks in answers are the filter's job)."""
    kept = [{k: v for k, v in f.items() if not (k == "text" and f["type"] == "delta") and k != "html"} for f in frames]
    return json.dumps(kept).lower()


class Rater:
    def __init__(self, log: list):
        self.log = log
        self.ws: WebsocketCommunicator | None = None

    async def connect(self):
        self.ws = WebsocketCommunicator(application, "/ws/arena/")
        assert (await self.ws.connect())[0]

    async def send(self, frame: dict):
        await self.ws.send_json_to(frame)

    async def until(self, *types: str, count: int = 1) -> list[dict]:
        matched = []
        while len(matched) < count:
            frame = await self.ws.receive_json_from(timeout=120)
            self.log.append(frame)
            if frame["type"] in types:
                matched.append(frame)
        return matched

    async def battle(self) -> str:
        await self.send({"type": "new_battle"})
        return (await self.until("battle"))[0]["battle_id"]

    async def turn(self, battle_id: str, text: str = "Name a fruit.") -> list[dict]:
        await self.send({"type": "prompt", "battle_id": battle_id, "text": text})
        done = await self.until("side_done", count=2)
        await self.until("turn_done")
        return done


async def test_nothing_before_the_vote_tells_two_different_models_apart(two_contestants, settings):
    # This test breaks sides on purpose and battles on: no error-rate hold (arena.pairing.holds).
    settings.ARENA_PAIRING_MAX_ERROR_RATE = 2.0
    log: list[dict] = []
    http: list[str] = []
    client = AsyncClient()
    http.append((await client.get("/")).content.decode())
    http.append((await client.get("/api/prompts/suggestions")).content.decode())
    rater = Rater(log)
    await rater.connect()

    # A normal turn, then the battle's public state over HTTP.
    battle_id = await rater.battle()
    done = await rater.turn(battle_id)
    assert {frame["state"] for frame in done} == {"done"}
    http.append((await client.get(f"/api/battles/{battle_id}")).content.decode())

    # Stop during generation.
    await sync_to_async(ServedModel.objects.update)(generation={"temperature": 0.7, "max_tokens": 200})
    battle_id = await rater.battle()
    await rater.send({"type": "prompt", "battle_id": battle_id, "text": "Write a long story."})
    await rater.until("delta")
    await rater.send({"type": "stop"})
    assert "cancelled" in {f["state"] for f in await rater.until("side_done", count=2)}

    # A failing side: no server, then an HTTP error status (a forgotten adapter answers 404).
    alpha, omega = two_contestants
    await sync_to_async(ServedModel.objects.update)(generation={"max_tokens": 8})
    await sync_to_async(Endpoint.objects.filter(pk=omega.endpoint_id).update)(base_url="http://127.0.0.1:9/v1")
    assert {f["state"] for f in await rater.turn(await rater.battle())} == {"done", "error"}
    await sync_to_async(Endpoint.objects.filter(pk=omega.endpoint_id).update)(base_url=alpha.endpoint.base_url)
    await sync_to_async(ServedModel.objects.filter(pk=omega.pk).update)(engine_model_id="quokka-lora-forgotten")
    errors = [f for f in await rater.turn(await rater.battle()) if f["state"] == "error"]
    assert [f["error"] for f in errors] == ["This model's server answered with an error."]

    # A timeout on both sides.
    settings.ARENA_GENERATION_TIMEOUT_S = 0.001
    assert {f["state"] for f in await rater.turn(await rater.battle())} == {"error"}
    settings.ARENA_GENERATION_TIMEOUT_S = 120

    # A rate limit, then a reconnect (a new connection, a new battle, a turn).
    settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 1
    await rater.send({"type": "new_battle"})
    (refused,) = await rater.until("error")
    assert refused["code"] == "rate_limited" and refused["retry_after"] >= 1
    settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 0
    battle_id = await rater.battle()
    await rater.send({"type": "prompt", "battle_id": battle_id, "text": "Name a colour."})
    await rater.until("delta")
    await rater.ws.disconnect()
    await rater.connect()
    await rater.turn(await rater.battle())
    http.append((await client.get(f"/api/battles/{battle_id}")).content.decode())

    check_frames(log)
    seen = scrub(log) + "\n".join(http).lower()
    secrets = await sync_to_async(secrets_from_rows)()
    assert {"contestant-alpha", "zyxwv research", "/srv/adapters/quokka-lora-r16", "127.0.0.1"} <= secrets
    leaked = sorted(s for s in secrets if s in seen)
    assert leaked == [], f"leaked before the vote: {leaked}"

    await rater.ws.disconnect()


async def test_the_reveal_carries_names_and_speeds(two_contestants):
    rater = Rater([])
    await rater.connect()
    battle_id = await rater.battle()
    await rater.turn(battle_id)
    await rater.send({"type": "vote", "battle_id": battle_id, "winner": "model_a"})
    (revealed,) = await rater.until("revealed")
    assert {revealed["model_a"]["name"], revealed["model_b"]["name"]} == {"contestant-alpha", "contestant-omega"}
    assert all(revealed[side]["ttft_ms"] > 0 and revealed[side]["tokens_per_s"] > 0 for side in ("model_a", "model_b"))
    await rater.ws.disconnect()


class TestSignIn:
    async def test_without_an_account_the_socket_refuses_when_login_is_required(self, two_contestants, settings):
        settings.ARENA_REQUIRE_LOGIN = True
        ws = WebsocketCommunicator(application, "/ws/arena/")
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from(timeout=10))["code"] == "login_required"
        assert (await ws.receive_output(timeout=10))["type"] == "websocket.close"
        assert await Battle.objects.acount() == 0

    async def test_with_an_account_the_account_is_the_rater(self, two_contestants, settings):
        settings.ARENA_REQUIRE_LOGIN = True
        user = await sync_to_async(User.objects.create_user)("rater1", password="pw-123456")
        ws = WebsocketCommunicator(BattleConsumer.as_asgi(), "/ws/arena/")
        ws.scope["user"] = user
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "new_battle"})
        assert (await ws.receive_json_from(timeout=10))["type"] == "battle"
        assert (await Battle.objects.aget()).rater_id == f"user-{user.pk}"
        await ws.disconnect()

    def test_the_page_sends_anonymous_visitors_to_sign_in(self, client, settings, db):
        settings.ARENA_REQUIRE_LOGIN = True
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        User.objects.create_user("rater2", password="pw-123456")
        assert client.post("/accounts/login/", {"username": "rater2", "password": "pw-123456"}).status_code == 302
        assert client.get("/").status_code == 200
