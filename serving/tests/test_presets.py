"""Endpoint presets in the admin's add form, and the endpoint's own checks of its request terms."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from serving.models import Endpoint, ServedModel
from serving.presets import PRESETS

pytestmark = pytest.mark.django_db

FORM_DEFAULTS = {"kind": "vllm", "max_concurrency": 16, "timeout_s": 120.0, "retry_max": 2, "retry_backoff_s": 1.0,
                 "health_every_s": 0, "extra_args": "[]", "extra_body": "{}", "api_key_env": "", "base_url": ""}


def add(admin_client, **fields):
    return admin_client.post("/admin/serving/endpoint/add/", {**FORM_DEFAULTS, **fields}, follow=True)


def test_a_preset_fills_the_blanks_and_creates_its_models_inactive(admin_client):
    # A closed local port stands for the provider: the endpoint is saved, its health check fails clearly.
    page = add(admin_client, preset="together", name="together", base_url="http://127.0.0.1:9/v1")
    endpoint = Endpoint.objects.get(name="together")
    preset = PRESETS["together"]
    assert (endpoint.kind, endpoint.api_key_env, endpoint.max_concurrency, endpoint.retry_max) == (
        "openai", "ARENA_KEY_TOGETHER", preset.max_concurrency, preset.retry_max)
    assert endpoint.base_url == "http://127.0.0.1:9/v1", "what the admin typed wins over the preset"
    models = ServedModel.objects.filter(endpoint=endpoint)
    assert {m.engine_model_id for m in models} == {m.engine_model_id for m in preset.models}
    assert not any(m.active for m in models) and all(m.context_length for m in models)
    assert not endpoint.healthy and "/v1/models failed" in endpoint.last_error
    assert "set their prices, then activate them" in page.content.decode()


def test_perplexitys_models_come_with_their_request_fee_and_the_admin_is_told(admin_client):
    page = add(admin_client, preset="perplexity", name="pplx", base_url="http://127.0.0.1:9")
    sonar = ServedModel.objects.get(endpoint__name="pplx", engine_model_id="sonar")
    assert (sonar.price_input_per_mtok, sonar.price_output_per_mtok, sonar.price_per_request_usd) == (
        Decimal("1"), Decimal("1"), Decimal("0.005"))
    assert "plus USD 0.005 per request" in page.content.decode()


def test_a_preset_url_with_a_placeholder_must_be_filled_in(admin_client):
    page = add(admin_client, preset="hf-endpoint", name="hf")
    assert "Fill in the part in &lt;...&gt;" in page.content.decode()
    assert not Endpoint.objects.exists()
    page = add(admin_client, name="bare")
    assert "Give the base URL (up to /v1), or choose a preset." in page.content.decode()


def test_extra_request_fields_may_not_override_what_the_arena_sets():
    endpoint = Endpoint(name="x", base_url="http://127.0.0.1:9/v1", extra_body={"model": "other", "top_k": 5})
    with pytest.raises(ValidationError, match="set by the arena: model"):
        endpoint.full_clean()
    endpoint.extra_body = {"top_k": 5}
    endpoint.full_clean()


def test_adapter_slots_come_from_the_field_or_the_engine_arguments():
    assert Endpoint(extra_args=["--max-loras", "3"]).lora_slots() == 3
    assert Endpoint(extra_args=["--max-loras=2"]).lora_slots() == 2
    assert Endpoint(extra_args=["--max-loras", "3"], max_loras=5).lora_slots() == 5
    assert Endpoint().lora_slots() is None
