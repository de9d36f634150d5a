"""Error holds an attacker cannot use to empty the arena: distinct raters and IP hashes, the rater's own
errors left out, and the floor of two battle-ready models with its admin-visible reason."""

import datetime as dt
import logging

import httpx
import openai
import pytest
from django.urls import reverse

from arena.models import Battle, Response
from arena.pairing import holds as pairing_holds
from arena.pairing.contestants import contestants_battle_ready, contestants_pairing_state
from arena.serving_stats import serving_stats
from serving.errors import input_refused
from tests.factories import make_finished_battle, make_model

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hold_rules")]


def fail(model, rival, *, raters, ips, battles=6, rater_caused=False, rival_state="done"):
    """``battles`` battles where ``model`` failed, spread round-robin over the given raters and IP hashes."""
    for index in range(battles):
        battle = make_finished_battle(model_a=model, model_b=rival, states=("error", rival_state),
                                      rater_id=raters[index % len(raters)])
        Battle.objects.filter(pk=battle.pk).update(ip_hash=ips[index % len(ips)])
        Response.objects.filter(turn__battle=battle, side="a").update(rater_caused=rater_caused)


def ready_names() -> set[str]:
    return {m.public_name for m, _ in contestants_battle_ready()}


@pytest.mark.parametrize("raters,ips", [
    (["attacker"], ["ip-1"]),  # one client, fifty battles
    (["a1", "a2", "a3", "a4"], ["ip-1"]),  # fresh rater ids (no cookie) from one address
    (["attacker"], ["ip-1", "ip-2", "ip-3", "ip-4"]),  # one account over many addresses
    (["r1", "r2"], ["ip-1", "ip-2"]),  # two clients are fewer than three
])
def test_fewer_than_three_raters_or_addresses_cannot_hold_a_model_however_many_battles_fail(raters, ips):
    target, rival, third = make_model(), make_model(), make_model()
    fail(target, rival, raters=raters, ips=ips, battles=50)
    assert ready_names() == {target.public_name, rival.public_name, third.public_name}
    stats = serving_stats([target.pk], dt.timedelta(hours=1))[target.pk]
    assert (stats["error_rate"], stats["error_raters"], stats["error_ips"]) == (1.0, len(raters), len(ips))


def test_errors_from_three_distinct_raters_and_addresses_hold_a_model():
    target, rival, third = make_model(), make_model(), make_model()
    fail(target, rival, raters=["r1", "r2", "r3"], ips=["ip-1", "ip-2", "ip-3"])
    assert ready_names() == {rival.public_name, third.public_name}
    assert contestants_pairing_state().holds[target.pk].startswith("error rate 100% ")


def test_errors_the_raters_input_caused_never_count_toward_a_hold():
    target, rival, _third = make_model(), make_model(), make_model()  # a third: the floor leaves room for a hold
    fail(target, rival, raters=["r1", "r2", "r3", "r4"], ips=["ip-1", "ip-2", "ip-3", "ip-4"], battles=40,
         rater_caused=True)
    assert target.public_name in ready_names()
    stats = serving_stats([target.pk], dt.timedelta(hours=1))[target.pk]
    assert (stats["responses"], stats["errors"], stats["rater_errors"], stats["error_rate"]) == (0, 0, 40, 0.0)


def test_holds_never_leave_fewer_than_two_models_and_the_admin_and_the_log_say_why(admin_client, caplog,
                                                                                    monkeypatch):
    monkeypatch.setattr(pairing_holds, "_floor_logged", {})  # logged at most every 5 min per model id and process
    first, second = make_model(), make_model()
    raters, ips = ["r1", "r2", "r3"], ["ip-1", "ip-2", "ip-3"]
    fail(first, second, raters=raters, ips=ips, battles=6, rival_state="error")  # both sides fail
    fail(first, second, raters=raters, ips=ips, battles=2, rival_state="done")  # only the first
    with caplog.at_level(logging.WARNING, logger="arena.pairing.holds"):
        assert ready_names() == {first.public_name, second.public_name}
    state = contestants_pairing_state()
    assert state.holds == {} and set(state.kept) == {first.pk, second.pk}
    assert "holding it would leave fewer than 2 battle-ready models" in state.kept[first.pk]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(first.public_name in line and "fewer than 2" in line for line in logged)

    page = admin_client.get(reverse("admin:serving_servedmodel_change", args=[first.pk])).content.decode()
    assert "ALERT: in pairing despite error rate" in page
    listing = admin_client.get(reverse("admin:serving_servedmodel_changelist")).content.decode()
    assert listing.count("ALERT: in pairing despite") == 2

    # A third model makes room for one hold: the worse of the two (8 errors of 8 vs 6 of 8) goes out.
    third = make_model()
    state = contestants_pairing_state()
    assert set(state.holds) == {first.pk} and set(state.kept) == {second.pk}
    assert ready_names() == {second.public_name, third.public_name}


def api_error(status: int, message: str) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://engine/v1/chat/completions")
    response = httpx.Response(status, request=request, json={"error": {"message": message}})
    return openai.OpenAI(api_key="x", base_url="http://engine/v1")._make_status_error_from_response(response)


@pytest.mark.parametrize("status,message,rater", [
    (400, "This model's maximum context length is 2048 tokens. However, your prompt contains at least 2049 "
          "input tokens", True),  # vLLM 0.32, measured
    (400, "'max_tokens' is too large: 256. This model's maximum context length is 2048 tokens", True),
    (400, "context_length_exceeded", True),
    (413, "Payload Too Large", True),
    (400, "The response was filtered due to the prompt triggering Azure OpenAI's content management policy", True),
    (400, "Unknown parameter: 'repetition_penalty'", False),  # the endpoint's configuration, not the prompt
    (401, "Invalid API key", False),
    (404, "The model `forgotten-lora` does not exist.", False),
    (429, "Too many requests", False),
    (500, "maximum context length", False),  # a 5xx is the server's whatever it says
])
def test_only_a_refusal_of_the_prompt_itself_is_the_raters_error(status, message, rater):
    assert input_refused(api_error(status, message)) is rater


def test_timeouts_and_lost_connections_are_the_models_errors():
    request = httpx.Request("POST", "http://engine/v1/chat/completions")
    assert not input_refused(TimeoutError())
    assert not input_refused(openai.APIConnectionError(request=request))
