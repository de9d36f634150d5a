"""The OpenAI, Anthropic, Gemini and Perplexity presets against a FAKE provider at the HTTP boundary.

The real APIs are paid and unreachable here, so ``bench/fake_openai.FakeProvider`` plays each one's
documented quirks (``PROVIDERS``; sources in docs/providers.md): a required key, unknown request
fields refused with 400, ``max_tokens`` refused in favour of ``max_completion_tokens``, a temperature
bound, no model list, usage on every chunk, on the finishing chunk, or never. The admin adds each
preset from the add form; the endpoint's health check, the preset's models and prices, and one
streamed answer go through the real form, probe and openai client.
"""

from __future__ import annotations

import asyncio
import html
from decimal import Decimal

import openai
import pytest

from arena.battle.costs import response_cost, response_usage
from bench.fake_openai import PROVIDERS, WORDS, FakeProvider, Quirks
from serving import services
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel
from serving.presets import PRESETS
from serving.providers import ANY, OPENAI, rules_for, shape_request
from serving.streaming import ModelTarget, stream_chat

pytestmark = pytest.mark.django_db

KEY = "fake-provider-key-93d1"
FORM = {"kind": "vllm", "max_concurrency": 16, "timeout_s": 120.0, "retry_max": 2, "retry_backoff_s": 1.0,
        "health_every_s": 0, "extra_args": "[]", "extra_body": "{}", "api_key_env": ""}
#: The path each provider's base URL ends in (the admin types the fake's host in its place).
PATHS = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta/openai", "perplexity": ""}


def keyed(provider: str) -> Quirks:
    return Quirks(**{**PROVIDERS[provider].__dict__, "api_key": KEY})


def add_from_preset(admin_client, preset: str, url: str):
    return admin_client.post("/admin/serving/endpoint/add/", {**FORM, "preset": preset, "name": preset,
                                                              "base_url": url}, follow=True)


def answer(target: ModelTarget) -> tuple[str, list]:
    async def run():
        return [event async for event in stream_chat(target, [{"role": "user", "content": "Say hi."}])]

    events = asyncio.run(run())
    return "".join(event.text for event in events), events


@pytest.mark.parametrize("preset", ["openai", "anthropic", "gemini", "perplexity"])
def test_each_provider_preset_is_added_from_the_form_and_answers_through_its_quirks(admin_client, monkeypatch,
                                                                                      preset):
    monkeypatch.setenv(PRESETS[preset].api_key_env, KEY)
    with FakeProvider(keyed(preset), tokens=6) as fake:
        page = add_from_preset(admin_client, preset, fake.url(PATHS[preset]))
        endpoint = Endpoint.objects.get(name=preset)
        assert endpoint.healthy, endpoint.last_error
        assert (endpoint.kind, endpoint.api_key_env) == ("openai", f"ARENA_KEY_{preset.upper()}")
        models = ServedModel.objects.filter(endpoint=endpoint)
        assert {m.engine_model_id for m in models} == {m.engine_model_id for m in PRESETS[preset].models}
        assert "set their prices, then activate them" in page.content.decode()
        for entry in PRESETS[preset].models:  # a shipped price says where and when it was read (admin only)
            model = models.get(engine_model_id=entry.engine_model_id)
            assert model.price_input_per_mtok == entry.price_input_per_mtok and not model.active
            note = entry.price_note()
            assert ("read on 2026-12-06 from https://" in note) == (entry.price_input_per_mtok is not None)
            # (the admin capitalises each message's first letter)
            assert f"{model.public_name}: {note}".lower() in html.unescape(page.content.decode()).lower()
            model_page = admin_client.get(f"/admin/serving/servedmodel/{model.pk}/change/").content.decode()
            assert note in html.unescape(model_page) and not model.description

        model = models.first()
        # What an admin may well set: more tokens than the arena allows, a high temperature.
        model.generation = {"temperature": 1.5, "top_p": 0.9, "max_tokens": 512}
        model.full_clean()
        model.save()
        fake.requests.clear()
        text, events = answer(ModelTarget.of(model, max_tokens=4))

    assert text == "".join(WORDS[:4])  # the fake's first four words
    assert (events[-1].finish_reason, events[-1].completion_tokens) == ("length", 4)
    (sent,) = fake.requests
    rules = rules_for(preset)
    assert sent[rules.max_tokens_field] == 4 and sent["temperature"] == min(1.5, rules.temperature_max)
    assert ("stream_options" in sent) == rules.stream_usage


@pytest.mark.parametrize("preset", ["openai", "anthropic", "gemini", "perplexity", "together"])
def test_a_missing_or_wrong_key_gives_the_same_clear_message_for_every_preset(admin_client, monkeypatch, preset):
    variable = PRESETS[preset].api_key_env
    monkeypatch.delenv(variable, raising=False)
    quirks = keyed(preset if preset in PROVIDERS else "lenient")
    with FakeProvider(quirks) as fake:
        add_from_preset(admin_client, preset, fake.url(PATHS.get(preset, "/v1")))
        endpoint = Endpoint.objects.get(name=preset)
        assert not endpoint.healthy
        assert endpoint.last_error == f"{preset}: the server requires an API key (HTTP 401) and {variable} is not set"
        monkeypatch.setenv(variable, "wrong")
        assert not services.endpoint_check_health(endpoint, force=True)
        assert endpoint.last_error == (f"{preset}: the server rejected the API key in {variable} (HTTP 401); "
                                       "check its value")


def test_a_sampling_parameter_the_provider_refuses_is_refused_by_name_on_the_model():
    endpoint = Endpoint.objects.create(name="openai", kind="openai", base_url="https://api.openai.com/v1",
                                       preset="openai")
    model = ServedModel(public_name="gpt", endpoint=endpoint, engine_model_id="gpt-5.5",
                        generation={"temperature": 0.5, "repetition_penalty": 1.1})
    with pytest.raises(Exception, match="OpenAI does not accept repetition_penalty; remove it"):
        model.full_clean()
    model.generation = {"temperature": 0.5, "max_tokens": 100}  # renamed on the way, so accepted
    model.full_clean()


def test_a_refused_parameter_already_stored_is_not_sent_to_a_strict_provider():
    with FakeProvider(PROVIDERS["openai"]) as fake:
        endpoint = Endpoint.objects.create(name="openai", kind="openai", base_url=fake.url(), preset="openai")
        # Written past the form (an older row): the provider would answer 400 to these fields.
        model = ServedModel.objects.create(public_name="gpt", endpoint=endpoint, engine_model_id="gpt-5.5",
                                           generation={"repetition_penalty": 1.1, "seed": 3})
        text, _ = answer(ModelTarget.of(model, max_tokens=3))
    assert text == "".join(WORDS[:3])
    assert "repetition_penalty" not in fake.requests[-1] and fake.requests[-1]["seed"] == 3


def test_the_strict_fake_does_refuse_an_unshaped_request():
    """The check above can fail: the same request without the provider's rules is answered 400."""
    with FakeProvider(PROVIDERS["openai"]) as fake:
        target = ModelTarget(fake.url(), "EMPTY", "gpt-5.5", {"max_tokens": 3, "top_k": 5}, rules=ANY)
        with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: top_k"):
            answer(target)
        target = ModelTarget(fake.url(), "EMPTY", "gpt-5.5", {"max_tokens": 3}, rules=ANY)
        with pytest.raises(openai.BadRequestError, match="Use 'max_completion_tokens' instead"):
            answer(target)


def test_a_provider_that_sends_no_usage_gets_an_estimated_priced_usage():
    with FakeProvider(Quirks(usage="never")) as fake:
        endpoint = Endpoint.objects.create(name="quiet", kind="openai", base_url=fake.url(),
                                           preset="openai-compatible")
        model = ServedModel.objects.create(public_name="quiet", endpoint=endpoint, engine_model_id="m",
                                           price_input_per_mtok=Decimal("1"), price_output_per_mtok=Decimal("2"))
        text, events = answer(ModelTarget.of(model, max_tokens=5))
    assert "include_usage" in str(fake.requests[-1]["stream_options"])  # asked for, never sent
    assert (events[-1].completion_tokens, events[-1].prompt_tokens) == (None, None)
    usage = response_usage([{"role": "user", "content": "Say hi."}], text, prompt_tokens=None,
                           completion_tokens=None)
    assert usage.estimated and usage.completion_tokens > 0
    assert response_cost(usage, model) > 0


def test_usage_on_every_chunk_counts_once_at_its_last_value():
    with FakeProvider(Quirks(usage="every"), tokens=5) as fake:
        target = ModelTarget(fake.url(), "EMPTY", "m", {"max_tokens": 5}, rules=ANY)
        _, events = answer(target)
    assert (events[-1].completion_tokens, events[-1].prompt_tokens) == (5, 10)


def test_gemini_model_ids_are_registered_without_the_lists_models_prefix():
    with FakeProvider(PROVIDERS["gemini"], tokens=3) as fake:
        endpoint = Endpoint.objects.create(name="gemini", kind="openai", base_url=fake.url(PATHS["gemini"]),
                                           preset="gemini")
        ServedModel.objects.create(endpoint=endpoint, engine_model_id="fake-model", public_name="fake-model", active=False)
        assert services.endpoint_list_models(endpoint)[0]["id"] == "models/fake-model"
        assert services.endpoint_register_models(endpoint) == []  # the preset's model, not a second one
        ServedModel.objects.all().delete()
        [model] = services.endpoint_register_models(endpoint)
    assert model.engine_model_id == "fake-model"


def test_a_provider_without_a_model_list_says_so_when_asked_to_register_models():
    endpoint = Endpoint.objects.create(name="pplx", kind="openai", base_url="https://api.perplexity.ai",
                                       preset="perplexity")
    with pytest.raises(EngineError, match="reads no model list from Perplexity"):
        services.endpoint_register_models(endpoint)


def test_shaping_renames_the_cap_bounds_the_temperature_and_drops_the_unaccepted():
    params, extra, dropped = shape_request(OPENAI, {"max_tokens": 7, "temperature": 3.0, "top_k": 2},
                                           {"user": "x"})
    assert params == {"max_completion_tokens": 7, "temperature": 2.0}
    assert (extra, dropped) == ({"user": "x"}, ["top_k"])
    assert shape_request(ANY, {"max_tokens": 7, "top_k": 2}, {}) == ({"max_tokens": 7, "top_k": 2}, {}, [])
