"""Usage, cost and the holds that take a model out of pairing: budgets, error rates, adapter slots."""

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from arena import services
from arena.battle.costs import battle_costs, day_start, model_usage, spend_record
from arena.battle_files.transfer import battles_export
from arena.models import Battle, DailySpend, Response
from arena.pairing.contestants import contestants_battle_ready
from arena.pairing.holds import pairing_holds
from arena.serving_stats import model_serving_stats
from serving.models import ServedModel
from tests.factories import make_endpoint, make_finished_battle, make_model, make_vote

pytestmark = pytest.mark.django_db

PRICES = {"price_input_per_mtok": Decimal("2"), "price_output_per_mtok": Decimal("10")}


def open_turn(model_a, model_b, text="Tell me about the sea, please, in a few words."):
    battle = Battle.objects.create(model_a=model_a, model_b=model_b, rater_id="r1")
    plan = services.battle_turn_begin(battle_id=battle.public_id, rater_id="r1", text=text)
    return battle, plan


def ready_names() -> set[str]:
    return {m.public_name for m, _ in contestants_battle_ready()}


def spend(model, usd: str, *, when=None, state="done"):
    """A finished battle whose side A cost ``usd``, tallied as ``battle_side_finish`` tallies it."""
    when = when or timezone.now()
    battle = make_finished_battle(model_a=model, states=(state, "done"))
    Response.objects.filter(turn__battle=battle, side="a").update(cost_usd=Decimal(usd), started_at=when)
    spend_record(model.pk, Decimal(usd), day=day_start(when).date())
    return battle


def test_a_side_with_api_usage_is_billed_at_its_models_prices():
    priced = make_model(adapter_sha256="ab" * 32, **PRICES)
    battle, plan = open_turn(priced, make_model())
    assert Response.objects.get(pk=plan.response_ids["a"]).adapter_sha256 == "ab" * 32
    services.battle_side_finish(response_id=plan.response_ids["a"], state="done", content="The sea is wide.",
                                completion_tokens=5, prompt_tokens=20)
    services.battle_side_finish(response_id=plan.response_ids["b"], state="done", content="Blue and deep.")
    a, b = Response.objects.get(pk=plan.response_ids["a"]), Response.objects.get(pk=plan.response_ids["b"])
    assert (a.prompt_tokens, a.completion_tokens, a.usage_estimated) == (20, 5, False)
    assert a.cost_usd == Decimal("0.00009")  # 20 × $2/M + 5 × $10/M
    # No usage from the server: estimated from the text, marked so; no prices: no cost.
    assert b.usage_estimated and b.prompt_tokens > 0 and b.completion_tokens == 4 and b.cost_usd is None  # 3 words, 1 mark
    assert battle_costs(battle) == {"a": Decimal("0.00009"), "b": None}
    assert DailySpend.objects.get(served_model=priced).cost_usd == Decimal("0.00009")


def test_a_request_fee_is_added_to_each_answered_request_and_to_the_days_spend():
    # Perplexity's Sonar as its preset ships it: $1 / $1 per million tokens plus $0.005 per request.
    sonar = make_model(price_input_per_mtok=Decimal("1"), price_output_per_mtok=Decimal("1"),
                       price_per_request_usd=Decimal("0.005"))
    fee_only = make_model(price_per_request_usd=Decimal("0.01"))
    battle, plan = open_turn(sonar, fee_only)
    services.battle_side_finish(response_id=plan.response_ids["a"], state="done", content="Waves.",
                                completion_tokens=100, prompt_tokens=900)
    services.battle_side_finish(response_id=plan.response_ids["b"], state="done", content="Tides.")
    assert battle_costs(battle) == {"a": Decimal("0.006"), "b": Decimal("0.01")}  # 1,000 tokens × $1/M + $0.005
    assert DailySpend.objects.get(served_model=sonar).cost_usd == Decimal("0.006")
    failed_battle, failed = open_turn(sonar, fee_only)
    services.battle_side_finish(response_id=failed.response_ids["a"], state="error", content="", error="APIError")
    assert Response.objects.get(pk=failed.response_ids["a"]).cost_usd is None  # nothing answered: no fee


def test_a_side_that_failed_before_answering_is_not_billed():
    battle, plan = open_turn(make_model(**PRICES), make_model())
    services.battle_side_finish(response_id=plan.response_ids["a"], state="error", content="", error="RateLimitError")
    failed = Response.objects.get(pk=plan.response_ids["a"])
    assert failed.cost_usd is None and failed.prompt_tokens is None


def test_accounting_off_records_no_usage_and_holds_nothing(settings):
    settings.ARENA_ACCOUNTING = False
    model = make_model(daily_budget_usd=Decimal("0"), **PRICES)
    other = make_model()
    battle, plan = open_turn(model, other)
    services.battle_side_finish(response_id=plan.response_ids["a"], state="done", content="x", completion_tokens=1,
                                prompt_tokens=1)
    assert Response.objects.get(pk=plan.response_ids["a"]).cost_usd is None
    assert ready_names() == {model.public_name, other.public_name}


def test_a_spent_daily_budget_pauses_the_model_until_the_next_day():
    model, other, third = make_model(daily_budget_usd=Decimal("1.00"), **PRICES), make_model(), make_model()
    # (each spend() battle adds a rival model too)
    spend(model, "0.99")
    assert model.public_name in ready_names()
    spend(model, "0.02", when=timezone.now() - timedelta(days=1, hours=1))  # yesterday's spend does not count
    assert model.public_name in ready_names()
    spend(model, "0.01")
    assert model.public_name not in ready_names() and {other.public_name, third.public_name} <= ready_names()
    assert pairing_holds([model])[model.pk] == "daily budget spent ($1.00 of $1.00)"


def test_an_endpoints_budget_pauses_all_its_models():
    endpoint = make_endpoint(daily_budget_usd=Decimal("0.50"))
    first, second = make_model(endpoint=endpoint, **PRICES), make_model(endpoint=endpoint, **PRICES)
    elsewhere = make_model()
    spend(first, "0.30")
    assert ready_names() >= {first.public_name, second.public_name}
    spend(second, "0.20")
    ready = ready_names()
    assert first.public_name not in ready and second.public_name not in ready and elsewhere.public_name in ready
    assert "daily budget spent ($0.50 of $0.50)" in pairing_holds([second])[second.pk]


def test_a_high_error_rate_takes_a_model_out_until_the_failures_age_out(settings):
    settings.ARENA_PAIRING_MAX_ERROR_RATE, settings.ARENA_PAIRING_ERROR_MIN_RESPONSES = 0.5, 4
    settings.ARENA_PAIRING_ERROR_MIN_RATERS = 3
    flaky, steady, third = make_model(), make_model(), make_model()
    for index, state in enumerate(("error", "error", "done")):
        battle = make_finished_battle(model_a=flaky, model_b=steady, states=(state, "done"), rater_id=f"r{index}")
        Battle.objects.filter(pk=battle.pk).update(ip_hash=f"ip{index}")
    assert flaky.public_name in ready_names(), "three responses are too few to judge"
    battle = make_finished_battle(model_a=flaky, model_b=steady, states=("error", "done"), rater_id="r3")
    Battle.objects.filter(pk=battle.pk).update(ip_hash="ip3")
    assert ready_names() == {steady.public_name, third.public_name}
    everyone = [flaky, steady, third]
    assert pairing_holds(everyone)[flaky.pk] == "error rate 75% over the last 15 min (3 of 4, from 3 raters)"
    Response.objects.filter(model=flaky).update(started_at=timezone.now() - timedelta(hours=1))
    assert flaky.public_name in ready_names()


def test_adapters_beyond_an_engines_slots_wait_for_a_free_slot():
    engine = make_endpoint(kind="vllm", extra_args=["--max-loras", "1"])
    base = make_model(endpoint=engine)
    first, second = (make_model(endpoint=engine, kind=ServedModel.Kind.LORA, parent=base) for _ in range(2))
    assert engine.lora_slots() == 1
    assert ready_names() == {base.public_name, first.public_name, second.public_name}
    battle = Battle.objects.create(model_a=first, model_b=base, rater_id="r1")
    assert ready_names() == {base.public_name, first.public_name}
    assert pairing_holds([second])[second.pk] == f"all 1 adapter slots of {engine.name} are in concurrent battles"
    Battle.objects.filter(pk=battle.pk).update(status=Battle.Status.VOTED)
    assert second.public_name in ready_names()


def test_usage_per_model_per_1000_votes_stats_and_the_usage_export():
    model, other = make_model(**PRICES), make_model()
    vote = make_vote(model, other, winner="tie")
    Response.objects.filter(turn__battle=vote.battle, side="a").update(
        prompt_tokens=100, completion_tokens=20, cost_usd=Decimal("0.002"), ttft_ms=80.0, tokens_per_s=12.0)
    make_finished_battle(model_a=model, model_b=other, states=("error", "done"))
    usage = model_usage(model, days=1)
    assert (usage["responses"], usage["votes"], usage["cost"], usage["cost_per_1000_votes"]) == (
        2, 1, Decimal("0.002"), Decimal("2.0000"))
    hour = model_serving_stats(model)["hour"]
    assert (hour["responses"], hour["errors"], hour["error_rate"], hour["ttft_ms"]) == (2, 1, 0.5, 80.0)
    out = io.StringIO()
    battles_export(out, include_flagged=True, include_usage=True)
    record = json.loads(out.getvalue())
    assert record["usage"]["a"] == {"prompt_tokens": 100, "completion_tokens": 20, "estimated": False,
                                    "cost_usd": "0.00200000"}
    out = io.StringIO()
    battles_export(out, include_flagged=True)
    assert "usage" not in json.loads(out.getvalue())
