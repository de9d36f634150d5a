"""The admin's chat with one model, on the real vLLM CPU server: multi-turn, streamed (through the
ASGI handler) or whole, with a base model or with a checkpoint whose adapter vLLM loads at run
time; staff only; never a battle or a vote."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import AsyncClient

from arena.models import Battle, Response, Vote
from serving.local_models import LOCAL_MODELS
from serving.models import Endpoint, ServedModel
from serving.services import adapter_unload
from tests.factories import make_checkpoint

pytestmark = [pytest.mark.vllm, pytest.mark.django_db(transaction=True)]
PAGE, SEND = "/admin/training/checkpoint/chat/", "/admin/training/checkpoint/chat/send/"


@pytest.fixture
def base(vllm_url, settings) -> ServedModel:
    spec = LOCAL_MODELS["smollm2"].engine_spec()
    endpoint = Endpoint.objects.create(name=f"chat-{uuid.uuid4().hex[:8]}", base_url=f"{vllm_url}/v1", healthy=True,
                                       model_dir=spec.model_dir)
    # A name of its own: the contestant names of its checkpoints must not meet another run's on a shared engine.
    return ServedModel.objects.create(public_name=f"chat-base-{uuid.uuid4().hex[:8]}", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct", generation={"temperature": 0.0})


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("staff", password="pw", is_staff=True, is_superuser=True)


def no_battles() -> bool:
    return not (Battle.objects.exists() or Vote.objects.exists() or Response.objects.exists())


def test_a_multi_turn_chat_with_a_served_model_answers_and_is_never_a_battle(client, base, staff):
    client.force_login(staff)
    page = client.get(PAGE)
    assert page.status_code == 200 and f'value="model:{base.pk}"' in page.content.decode()
    conversation = [{"role": "system", "content": "Answer in one short sentence."},
                    {"role": "user", "content": "What is the capital of France?"}]
    first = client.post(SEND, {"with": f"model:{base.pk}", "messages": conversation, "stream": False, "max_tokens": 12},
                        content_type="application/json").json()
    assert first["text"].strip() and first["completion_tokens"] > 0 and first["model"] == base.public_name
    conversation += [{"role": "assistant", "content": first["text"]}, {"role": "user", "content": "And of Italy?"}]
    second = client.post(SEND, {"with": f"model:{base.pk}", "messages": conversation, "max_tokens": 12},
                         content_type="application/json").json()
    # The second turn saw the whole conversation: its prompt is longer than the first one's.
    assert second["text"].strip() and second["prompt_tokens"] > first["prompt_tokens"]
    assert no_battles()


@pytest.fixture
def unserved_checkpoint(base, lora_adapter_dir):
    checkpoint = make_checkpoint(base=base, served=False, weights_dir=lora_adapter_dir)
    yield checkpoint
    adapter_unload(base.endpoint, name=checkpoint.job.contestant_name())  # frees the shared engine's slot


async def test_a_checkpoint_is_loaded_at_run_time_and_its_answer_streams(base, staff, unserved_checkpoint, vllm_url):
    name = await sync_to_async(unserved_checkpoint.job.contestant_name)()
    assert name not in {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}
    client = AsyncClient()
    await client.aforce_login(staff)
    response = await client.post(SEND, {"with": f"checkpoint:{unserved_checkpoint.pk}", "stream": True, "max_tokens": 8,
                                        "messages": [{"role": "user", "content": "Say hello."}]},
                                 content_type="application/json")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) async for chunk in response.streaming_content for line in chunk.decode().splitlines()]
    assert len(lines) >= 2 and all("text" in line for line in lines[:-1])
    assert lines[-1]["done"] and lines[-1]["model"] == name and lines[-1]["finish_reason"] in ("length", "stop")
    assert "".join(line["text"] for line in lines[:-1]).strip()
    assert name in {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}
    assert await sync_to_async(no_battles)()


def test_a_non_staff_user_is_sent_to_the_login_and_a_staff_user_without_permission_refused(client):
    rater = User.objects.create_user("rater", password="pw")
    client.force_login(rater)
    for response in (client.get(PAGE), client.post(SEND, {}, content_type="application/json")):
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    clerk = User.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(clerk)
    assert client.get(PAGE).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_checkpoint"))
    assert client.get(PAGE).status_code == 200
    assert no_battles()


def test_bad_requests_say_what_is_wrong(client, staff):
    client.force_login(staff)
    scorer = make_checkpoint(served=False)
    base = scorer.base_model
    scorer.kind = "scorer"
    scorer.save()
    cases = [
        ({"with": f"model:{base.pk}", "messages": []}, "non-empty list of messages"),
        ({"with": f"model:{base.pk}", "messages": [{"role": "assistant", "content": "hi"}]}, "must be the user's"),
        ({"with": f"model:{base.pk}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
         "between 1 and 2048"),
        ({"with": "model:999999", "messages": [{"role": "user", "content": "hi"}]}, "no such served model"),
        ({"with": f"checkpoint:{scorer.pk}", "messages": [{"role": "user", "content": "hi"}]}, "does not chat"),
    ]
    for body, error in cases:
        response = client.post(SEND, body, content_type="application/json")
        assert response.status_code == 400 and error in response.json()["error"], body


def test_the_checkpoint_pages_link_to_the_chat(client, staff):
    client.force_login(staff)
    checkpoint = make_checkpoint(served=False)
    assert 'id="studio-chat-link"' in client.get("/admin/training/checkpoint/").content.decode()
    page = client.get(f"/admin/training/checkpoint/{checkpoint.pk}/change/").content.decode()
    assert f'href="{PAGE}?with=checkpoint:{checkpoint.pk}"' in page
