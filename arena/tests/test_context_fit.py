"""The fit check where no engine can count: providers without ``/tokenize``, unreachable engines, unknown
context lengths (the real engine's counts are tested in test_availability.py)."""

import pytest

from arena import services
from arena.battle.context_fit import FIRST_TURN_REFUSAL, models_that_fit
from arena.errors import ArenaError
from arena.models import Battle, Turn
from serving.context import MESSAGE_TOKENS, TEMPLATE_TOKENS, chat_token_bound
from serving.models import Endpoint
from tests.factories import make_endpoint, make_model

pytestmark = pytest.mark.django_db


def provider_model(context_length, *, kind=Endpoint.Kind.OPENAI_COMPATIBLE, max_tokens=100):
    return make_model(endpoint=make_endpoint(kind=kind), context_length=context_length,
                      generation={"max_tokens": max_tokens})


def test_the_bound_counts_utf8_bytes_of_the_text_or_its_nfkc_form_plus_the_template():
    # By hand: "é" is 2 bytes; U+FDFA is 3 bytes, its NFKC form 18 Arabic letters and spaces (33 bytes).
    assert chat_token_bound([{"role": "user", "content": "é"}]) == TEMPLATE_TOKENS + MESSAGE_TOKENS + 2
    assert chat_token_bound([{"role": "user", "content": "\ufdfa"}]) == TEMPLATE_TOKENS + MESSAGE_TOKENS + 33


def test_a_provider_without_tokenize_is_judged_by_the_bound(settings):
    settings.ARENA_MAX_OUTPUT_TOKENS = 256
    roomy, tight = provider_model(128_000), provider_model(1_000)
    messages = [{"role": "user", "content": "z" * 700}]  # bound 256 + 16 + 700 = 972; + 100 answer tokens
    assert models_that_fit([roomy, tight], messages) == {roomy.pk}
    assert models_that_fit([roomy, tight], [{"role": "user", "content": "z" * 600}]) == {roomy.pk, tight.pk}


def test_an_unreachable_engine_falls_back_to_the_bound_and_an_unknown_context_fits():
    engine = provider_model(1_000, kind=Endpoint.Kind.VLLM)  # nothing listens on its port: /tokenize fails
    unknown = provider_model(None)
    messages = [{"role": "user", "content": "z" * 700}]
    assert models_that_fit([engine, unknown], messages) == {unknown.pk}


def test_a_first_prompt_no_model_can_read_is_refused_and_changes_nothing(settings):
    settings.ARENA_ACCOUNTING = True
    a, b = provider_model(1_000), provider_model(1_000)
    battle = Battle.objects.create(model_a=a, model_b=b, rater_id="r1")
    with pytest.raises(ArenaError) as refused:
        services.battle_turn_begin(battle_id=battle.public_id, rater_id="r1", text="z" * 900)
    assert (refused.value.code, refused.value.message) == ("prompt_too_long", FIRST_TURN_REFUSAL)
    assert not any(name in refused.value.message for name in (a.public_name, b.public_name, "1000", "1,000"))
    battle.refresh_from_db()
    assert (battle.turn_total, battle.conversation_a, battle.model_a_id, battle.model_b_id) == (0, [], a.pk, b.pk)
    assert not Turn.objects.exists()


def test_a_first_prompt_only_a_third_model_can_read_is_refused_because_a_pair_needs_two():
    a, b, roomy = provider_model(1_000), provider_model(1_000), provider_model(128_000)
    battle = Battle.objects.create(model_a=a, model_b=b, rater_id="r1")
    with pytest.raises(ArenaError):
        services.battle_turn_begin(battle_id=battle.public_id, rater_id="r1", text="z" * 900)
    second_roomy = provider_model(128_000)
    services.battle_turn_begin(battle_id=battle.public_id, rater_id="r1", text="z" * 900)
    battle.refresh_from_db()
    assert {battle.model_a_id, battle.model_b_id} == {roomy.pk, second_roomy.pk}
