"""Over-long prompts cannot empty the arena (issue 19, availability), against the real vLLM CPU server.

The attack of the issue: battles whose prompt (3,900 CJK characters, under ARENA_MAX_PROMPT_CHARS) is
over the engine's context made both sides fail, the error-rate hold took every model out, and every
rater got ``no_models``. Here it is played through the real consumer from distinct raters and
addresses (the strongest cheap version: it spreads over three raters and addresses, what a hold
needs), both where the arena knows the models' context (the prompt is refused before any engine
sees it) and where it cannot (a provider without ``/tokenize`` or a context length: the engine
refuses, and the errors are recorded as the rater's). Every model stays in pairing and a normal
battle then starts and answers. Expected token counts come from the engine's own ``/tokenize``.
"""

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from arena import services
from arena.battle.context_fit import FIRST_TURN_REFUSAL, LATER_TURN_REFUSAL
from arena.errors import ArenaError
from arena.models import Battle, Response, Turn
from arena.pairing.contestants import contestants_battle_ready, contestants_pairing_state
from config.asgi import application
from serving import services as serving_services
from serving.context import chat_token_bound, chat_token_count
from serving.models import Endpoint, ServedModel
from serving.streaming import stream_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.vllm]

ENGINE_MODEL = "smollm2-135m-instruct"
#: 3,900 characters of classical Chinese poetry: under ARENA_MAX_PROMPT_CHARS (4,000), ~9,200 SmolLM2 tokens.
CJK_PROMPT = ("春眠不觉晓处处闻啼鸟夜来风雨声花落知多少床前明月光疑是地上霜举头望明月低头思故乡" * 100)[:3900]


@pytest.fixture(autouse=True)
def availability_rules(hold_rules, settings):
    """The holds' documented defaults (arena/tests/conftest.py) and the documented answer cap."""
    settings.ARENA_MAX_OUTPUT_TOKENS = 256


def engine_tokens(vllm_url: str, messages: list[dict]) -> int:
    answer = httpx.post(f"{vllm_url}/tokenize", timeout=60, json={
        "model": ENGINE_MODEL, "messages": messages, "add_generation_prompt": True})
    answer.raise_for_status()
    return answer.json()["count"]


def engine_context(vllm_url: str) -> int:
    entries = httpx.get(f"{vllm_url}/v1/models", timeout=10).json()["data"]
    return next(e["max_model_len"] for e in entries if e["id"] == ENGINE_MODEL)


def served(vllm_url: str, name: str, *, kind=Endpoint.Kind.VLLM, max_tokens=12, refresh=True) -> ServedModel:
    """A contestant on the real server behind an endpoint of its own, its context learnt by the health round."""
    endpoint = Endpoint.objects.create(name=f"ep-{name}", base_url=f"{vllm_url}/v1", healthy=True, kind=kind)
    model = ServedModel.objects.create(public_name=name, endpoint=endpoint, engine_model_id=ENGINE_MODEL,
                                       generation={"temperature": 0.0, "max_tokens": max_tokens})
    if refresh:
        assert serving_services.endpoint_refresh(endpoint)["healthy"]
        model.refresh_from_db()
    return model


def ready_names() -> set[str]:
    return {m.public_name for m, _ in contestants_battle_ready()}


def test_the_health_round_stores_each_models_context_length_from_vllm(vllm_url):
    model = served(vllm_url, "ctx", refresh=False)
    assert model.context_length is None
    assert serving_services.endpoint_refresh(model.endpoint)["healthy"]
    model.refresh_from_db()
    assert model.context_length == engine_context(vllm_url)


@pytest.mark.parametrize("text", [
    "Name a fruit.", CJK_PROMPT, "x " * 1800, "🦜" * 900, "\ufdfa" * 900, "S\u200bm\u200bo\u200bl" * 300,
    "Ｓｍｏｌ" * 700, "a\u0301" * 1500, "".join(chr(0x10000 + i) for i in range(900)), " " * 3000, "\n" * 3000,
    "\u3000" * 1000,
])
def test_the_token_bound_is_never_below_the_engines_count(vllm_url, text):
    model = served(vllm_url, "bound", refresh=False)
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": "OK."},
                {"role": "user", "content": text[:50]}]
    exact = engine_tokens(vllm_url, messages)
    assert chat_token_count(model, messages) == exact
    assert chat_token_bound(messages) >= exact


async def socket_from(address: str) -> WebsocketCommunicator:
    """A rater without a session cookie (a fresh rater id) connecting from ``address``."""
    communicator = WebsocketCommunicator(application, "/ws/arena/")
    communicator.scope["client"] = (address, 40000)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def next_of(communicator, types: set[str], timeout: float = 180) -> dict:
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        if frame["type"] in types:
            return frame


async def attack_and_then_battle(battles: int) -> dict:
    """``battles`` battles from distinct raters and addresses, each with the CJK prompt; then a normal battle."""
    seen = {"refused": [], "states": [], "normal": None}
    for index in range(battles):
        communicator = await socket_from(f"203.0.113.{index + 1}")
        await communicator.send_json_to({"type": "new_battle"})
        battle = await next_of(communicator, {"battle", "error"})
        assert battle["type"] == "battle", battle
        await communicator.send_json_to({"type": "prompt", "battle_id": battle["battle_id"], "text": CJK_PROMPT})
        frame = await next_of(communicator, {"turn_started", "error"})
        if frame["type"] == "error":
            seen["refused"].append(frame)
        else:
            for _ in range(2):
                seen["states"].append((await next_of(communicator, {"side_done"}))["state"])
            await next_of(communicator, {"turn_done"})
        await communicator.disconnect()
    communicator = await socket_from("198.51.100.7")
    await communicator.send_json_to({"type": "new_battle"})
    battle = await next_of(communicator, {"battle", "error"})
    assert battle["type"] == "battle", f"a normal battle must start at once after the attack: {battle}"
    await communicator.send_json_to({"type": "prompt", "battle_id": battle["battle_id"], "text": "Name a fruit."})
    seen["normal"] = [await next_of(communicator, {"side_done", "error"}) for _ in range(2)]
    await communicator.disconnect()
    return seen


def test_over_long_prompts_are_refused_before_any_engine_and_every_model_stays_in_pairing(vllm_url):
    models = [served(vllm_url, f"known-{i}") for i in range(3)]
    assert all(m.context_length == engine_context(vllm_url) for m in models)
    assert engine_tokens(vllm_url, [{"role": "user", "content": CJK_PROMPT}]) > models[0].context_length
    seen = async_to_sync(attack_and_then_battle)(5)
    assert [f["code"] for f in seen["refused"]] == ["prompt_too_long"] * 5 and not seen["states"]
    assert {f["message"] for f in seen["refused"]} == {FIRST_TURN_REFUSAL}
    assert not Turn.objects.filter(prompt=CJK_PROMPT).exists(), "a refused prompt stores nothing"
    assert [f["state"] for f in seen["normal"]] == ["done", "done"]
    assert ready_names() == {m.public_name for m in models}


def test_fifty_refused_prompts_from_fifty_raters_change_nothing(vllm_url):
    """The faster equivalent of fifty socket battles: the same service calls the consumer makes."""
    models = [served(vllm_url, f"fifty-{i}") for i in range(2)]
    for index in range(50):
        battle = services.battle_create(rater_id=f"rater-{index}", ip_hash=f"ip-{index}")
        with pytest.raises(ArenaError) as refused:
            services.battle_turn_begin(battle_id=battle.public_id, rater_id=f"rater-{index}", text=CJK_PROMPT)
        assert refused.value.code == "prompt_too_long"
    assert not Turn.objects.exists() and not Response.objects.exists()
    assert set(Battle.objects.values_list("turn_total", flat=True)) == {0}
    assert ready_names() == {m.public_name for m in models}


def test_when_the_context_is_unknown_the_engines_refusals_are_the_raters_and_hold_no_model(vllm_url):
    """A provider the arena cannot ask (no /tokenize, no context length): the prompt reaches the engine."""
    models = [served(vllm_url, f"unknown-{i}", kind=Endpoint.Kind.OPENAI_COMPATIBLE, refresh=False)
              for i in range(2)]
    assert all(m.context_length is None for m in models)
    seen = async_to_sync(attack_and_then_battle)(6)
    assert not seen["refused"] and seen["states"] == ["error"] * 12
    errors = Response.objects.filter(state=Response.State.ERROR)
    assert errors.count() == 12 and not errors.filter(rater_caused=False).exists()
    assert "maximum context length" in errors.first().error
    assert [f["state"] for f in seen["normal"]] == ["done", "done"]
    assert ready_names() == {m.public_name for m in models}
    assert contestants_pairing_state().kept == {}, "not even held back by the floor: no error counted"


def test_the_first_turn_re_pairs_among_models_that_fit_and_later_turns_refuse(vllm_url):
    # The same engine; what differs is the room each keeps for its answer: 256 tokens or 12.
    wide, narrow_1, narrow_2 = (served(vllm_url, "wide", max_tokens=256), served(vllm_url, "narrow-1"),
                                served(vllm_url, "narrow-2"))
    context = wide.context_length
    prompt = "x " * 1850  # one token each, under ARENA_MAX_PROMPT_CHARS
    tokens = engine_tokens(vllm_url, [{"role": "user", "content": prompt}])
    assert context - 256 < tokens <= context - 12, "the prompt fits the narrow answers only"

    battle = Battle.objects.create(model_a=wide, model_b=narrow_1, rater_id="r1", ip_hash="ip-1")
    plan = services.battle_turn_begin(battle_id=battle.public_id, rater_id="r1", text=prompt)
    battle.refresh_from_db()
    assert {battle.model_a_id, battle.model_b_id} == {narrow_1.pk, narrow_2.pk}
    assert {t.params["max_tokens"] for t in plan.targets.values()} == {12}

    async def answer(side):
        return [event async for event in stream_chat(plan.targets[side], plan.messages[side])]

    for side in "ab":
        events = async_to_sync(answer)(side)  # the engine takes the re-paired side's request (no 400)
        assert events[-1].finish_reason in ("stop", "length") and events[-1].prompt_tokens == tokens
        services.battle_side_finish(response_id=plan.response_ids[side], state="done",
                                    content="".join(e.text for e in events))

    battle.refresh_from_db()
    follow_up = "And now? " * 100
    assert engine_tokens(vllm_url, [*battle.conversation_a, {"role": "user", "content": follow_up}]) + 12 > context
    before = (battle.turn_total, battle.conversation_a, battle.conversation_b, battle.model_a_id, battle.model_b_id)
    with pytest.raises(ArenaError) as refused:
        services.battle_turn_begin(battle_id=battle.public_id, rater_id="r1", text=follow_up)
    assert refused.value.code == "prompt_too_long" and refused.value.message == LATER_TURN_REFUSAL
    battle.refresh_from_db()
    assert (battle.turn_total, battle.conversation_a, battle.conversation_b, battle.model_a_id,
            battle.model_b_id) == before
    assert Turn.objects.filter(battle=battle).count() == 1 and Response.objects.count() == 2


def test_a_first_turn_that_fits_keeps_its_pair(vllm_url):
    wide, narrow = served(vllm_url, "keep-wide", max_tokens=256), served(vllm_url, "keep-narrow")
    served(vllm_url, "keep-other")
    battle = Battle.objects.create(model_a=wide, model_b=narrow, rater_id="r1")
    services.battle_turn_begin(battle_id=battle.public_id, rater_id="r1", text="Name a fruit.")
    battle.refresh_from_db()
    assert (battle.model_a_id, battle.model_b_id) == (wide.pk, narrow.pk)
