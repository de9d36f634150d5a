"""The arena's side of a served model: entering contestants, their weights and boost, the answer-length cap."""

import random

import pytest
from django.utils import timezone

from arena import services
from arena.models import Battle, Contestant, Response
from arena.pairing.contestants import contestant_enter, contestant_of, contestants_battle_ready
from serving.models import ServedModel
from tests.factories import make_finished_battle, make_model

pytestmark = pytest.mark.django_db


def test_a_served_model_without_a_row_battles_on_the_defaults():
    model = make_model()
    assert not Contestant.objects.filter(served_model=model).exists()
    assert contestant_of(model).effective_weight() == 1.0
    assert contestants_battle_ready() == [(model, 1.0)]


def test_entering_a_new_adapter_boosts_it_and_inherits_its_parents_weight(settings):
    settings.ARENA_NEW_MODEL_BOOST, settings.ARENA_NEW_MODEL_BOOST_VOTES = 4.0, 3
    base = make_model(sampling_weight=2.0)
    adapter = make_model(kind=ServedModel.Kind.LORA, parent=base, endpoint=base.endpoint)
    entered = contestant_enter(adapter)
    assert (entered.sampling_weight, entered.boost_weight, entered.boost_votes_left) == (2.0, 4.0, 3)
    assert dict(contestants_battle_ready()) == {base: 2.0, adapter: 8.0}


def test_entering_is_idempotent_and_keeps_what_the_admin_set():
    model = make_model(sampling_weight=0.5)
    again = contestant_enter(model)
    assert (again.sampling_weight, again.boost_votes_left) == (0.5, 0)
    unboosted = make_model()
    assert contestant_enter(unboosted, boost=False).effective_weight() == 1.0
    assert Contestant.objects.count() == 2


def test_only_healthy_active_models_are_battle_ready():
    ready = make_model()
    make_model(active=False)
    sick = make_model()
    sick.endpoint.healthy = False
    sick.endpoint.save()
    assert [model for model, _ in contestants_battle_ready()] == [ready]


def test_a_zero_weight_contestant_is_only_a_last_resort():
    make_model(sampling_weight=0.0)
    strong = [make_model(), make_model()]
    for seed in range(20):
        battle = services.battle_create(rater_id="r", rng=random.Random(seed))
        assert {battle.model_a, battle.model_b} == set(strong)


def test_the_arena_caps_each_answer_at_its_own_limit(settings):
    settings.ARENA_MAX_OUTPUT_TOKENS = 16
    long_winded = make_model(generation={"temperature": 0.0, "max_tokens": 500})
    terse = make_model(generation={"max_tokens": 4})
    battle = Battle.objects.create(model_a=long_winded, model_b=terse, rater_id="me")
    plan = services.battle_turn_begin(battle_id=battle.public_id, rater_id="me", text="Hi")
    assert plan.targets["a"].params == {"temperature": 0.0, "max_tokens": 16}
    assert plan.targets["b"].params["max_tokens"] == 4


def test_only_a_counted_vote_spends_a_boost(settings):
    """A vote left out (here too fast, and an identity leak) must not burn a new rival's boost."""
    settings.ARENA_NEW_MODEL_BOOST, settings.ARENA_NEW_MODEL_BOOST_VOTES = 4.0, 5
    settings.ARENA_MIN_VOTE_SECONDS = 3.0
    old, new = make_model(), make_model()
    contestant_enter(new)
    fast = make_finished_battle(model_a=old, model_b=new)
    Response.objects.filter(turn__battle=fast).update(finished_at=timezone.now())
    leak = make_finished_battle(model_a=old, model_b=new, answers=(f"I am {new.public_name}.", "Hi"))
    counted = make_finished_battle(model_a=new, model_b=old)
    for battle in (fast, leak, counted):
        services.battle_vote(battle_id=battle.public_id, rater_id=battle.rater_id, winner="model_a")
    assert Contestant.objects.get(served_model=new).boost_votes_left == 4
