"""A provider endpoint end to end: a second real vLLM CPU server started with ``--api-key`` plays an
external provider (key required, a stub price). The admin adds it from a preset, sees it healthy,
registers its model; a battle runs against it; usage and cost are recorded and shown; a spent daily
budget takes it out of pairing.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from arena.models import Response
from arena.pairing.contestants import contestants_battle_ready
from config.asgi import application
from serving import services
from serving.engines import running_engine
from serving.errors import EngineError
from serving.local_models import LOCAL_MODELS
from serving.models import Endpoint, ServedModel
from tests.helpers import free_port, missing_part

pytestmark = [pytest.mark.vllm, pytest.mark.django_db(transaction=True)]

KEY = "test-provider-key-1f3a"
KEY_ENV = "ARENA_KEY_TESTPROVIDER"


@pytest.fixture(scope="module")
def keyed_vllm_url():
    """One extra vLLM CPU server requiring ``--api-key``, for this module only."""
    from django.conf import settings

    spec = LOCAL_MODELS["smollm2"].engine_spec()
    if not Path(spec.python).exists() or not (Path(spec.model_dir) / "config.json").exists():
        missing_part(f"engine python {spec.python} or model {spec.model_dir} missing: run `make models`")
    spec.port, spec.name, spec.extra_args = free_port(), "test-keyed-provider", ["--api-key", KEY]
    spec.log_path = settings.ARENA_DATA_DIR / "logs" / "test-keyed-provider.log"
    try:
        with running_engine(spec, settings.ARENA_ENGINE_START_TIMEOUT_S):
            yield spec.root_url
    except EngineError as exc:
        pytest.fail(str(exc))


def _add_from_preset(admin_client, url: str):
    """What the admin's add form posts: the preset chosen, name, URL and key variable typed, the rest as shown."""
    return admin_client.post("/admin/serving/endpoint/add/", {
        "preset": "openai-compatible", "name": "test-provider", "base_url": url, "api_key_env": KEY_ENV,
        "kind": "vllm", "max_concurrency": 16, "timeout_s": 120.0, "retry_max": 2, "retry_backoff_s": 1.0,
        "health_every_s": 0, "extra_args": "[]", "extra_body": "{}",
    }, follow=True)


async def _battle_and_vote() -> str:
    communicator = WebsocketCommunicator(application, "/ws/arena/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "new_battle"})
    frame = await communicator.receive_json_from(timeout=60)
    assert frame["type"] == "battle", frame
    battle_id = frame["battle_id"]
    await communicator.send_json_to({"type": "prompt", "battle_id": battle_id, "text": "Name a colour."})
    done = 0
    while done < 2:
        frame = await communicator.receive_json_from(timeout=120)
        if frame["type"] == "side_done":
            assert frame["state"] == "done", frame
            done += 1
    await communicator.send_json_to({"type": "vote", "battle_id": battle_id, "winner": "tie"})
    while (await communicator.receive_json_from(timeout=60))["type"] != "revealed":
        pass
    await communicator.disconnect()
    return battle_id


def test_a_provider_from_a_preset_battles_and_its_usage_and_cost_are_recorded(
    admin_client, keyed_vllm_url, vllm_url, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, KEY)
    page = _add_from_preset(admin_client, f"{keyed_vllm_url}/v1")
    assert page.status_code == 200
    endpoint = Endpoint.objects.get(name="test-provider")
    # The preset filled what the admin left untouched; the health check ran on save.
    assert (endpoint.kind, endpoint.preset, endpoint.max_concurrency, endpoint.health_every_s) == (
        "openai", "openai-compatible", 8, 600)
    assert endpoint.healthy, endpoint.last_error
    assert "test-provider: healthy" in page.content.decode().lower()  # the admin message

    (model,) = services.endpoint_register_models(endpoint)
    ServedModel.objects.filter(pk=model.pk).update(
        public_name="provider-model", price_input_per_mtok=Decimal("0.5"), price_output_per_mtok=Decimal("1.5"),
        generation={"temperature": 0.0, "max_tokens": 8},
    )
    local = Endpoint.objects.create(name="local", base_url=f"{vllm_url}/v1", healthy=True)
    ServedModel.objects.create(public_name="local-model", endpoint=local, engine_model_id="smollm2-135m-instruct",
                               generation={"temperature": 0.0, "max_tokens": 8})

    battle_id = async_to_sync(_battle_and_vote)()

    answer = Response.objects.get(turn__battle__public_id=battle_id, model__public_name="provider-model")
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0 and not answer.usage_estimated
    expected = (Decimal(answer.prompt_tokens) * Decimal("0.5") + Decimal(answer.completion_tokens) * Decimal("1.5"))
    assert answer.cost_usd == (expected / 1_000_000).quantize(Decimal("0.00000001"))
    unpriced = Response.objects.get(turn__battle__public_id=battle_id, model__public_name="local-model")
    assert unpriced.cost_usd is None and unpriced.completion_tokens > 0

    model_page = admin_client.get(f"/admin/serving/servedmodel/{model.pk}/change/").content.decode()
    assert "Usage and cost" in model_page and "Serving statistics" in model_page
    assert str(answer.cost_usd) in model_page  # today's cost, in the usage table

    # The daily budget is spent: the model leaves pairing and the admin is told why.
    ServedModel.objects.filter(pk=model.pk).update(daily_budget_usd=Decimal("0.00"))
    assert [m.public_name for m, _ in contestants_battle_ready()] == ["local-model"]
    assert "paused: daily budget spent" in admin_client.get(f"/admin/serving/servedmodel/{model.pk}/change/").content.decode()


def test_a_wrong_or_missing_key_is_a_clear_admin_error(keyed_vllm_url, monkeypatch):
    endpoint = Endpoint.objects.create(name="keyed", kind=Endpoint.Kind.OPENAI_COMPATIBLE,
                                       base_url=f"{keyed_vllm_url}/v1", api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    assert not services.endpoint_check_health(endpoint, force=True)
    assert endpoint.last_error == f"keyed: the server rejected the API key in {KEY_ENV} (HTTP 401); check its value"
    monkeypatch.delenv(KEY_ENV)
    assert not services.endpoint_check_health(endpoint, force=True)
    assert f"{KEY_ENV} is not set" in endpoint.last_error
    monkeypatch.setenv(KEY_ENV, KEY)
    assert services.endpoint_check_health(endpoint, force=True)
    endpoint.refresh_from_db()
    assert endpoint.healthy and not endpoint.last_error
