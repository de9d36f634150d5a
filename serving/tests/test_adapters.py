"""Runtime LoRA loading and reconciliation against the real vLLM server."""

import httpx
import pytest

from serving import services
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel

pytestmark = [pytest.mark.vllm, pytest.mark.django_db]


@pytest.fixture
def base(vllm_url):
    endpoint = Endpoint.objects.create(name="engine", base_url=f"{vllm_url}/v1", healthy=True)
    return ServedModel.objects.create(public_name="smollm2-135m-instruct", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct", organization="Hugging Face")


def served_ids(vllm_url: str) -> set[str]:
    return {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}


def complete(vllm_url: str, model: str) -> dict:
    """A greedy completion from ``model``: which model answered, and its text."""
    answer = httpx.post(f"{vllm_url}/v1/chat/completions", timeout=120, json={
        "model": model, "max_tokens": 12, "temperature": 0.0,
        "messages": [{"role": "user", "content": "Write one sentence about the sea."}]}).json()
    return {"model": answer["model"], "text": answer["choices"][0]["message"]["content"]}


def test_an_adapter_is_hot_loaded_as_a_served_model(base, vllm_url, lora_adapter_dir):
    try:
        model = services.served_model_register_adapter(parent=base, name="smollm2-test-lora-v1",
                                                       adapter_path=lora_adapter_dir)
        assert "smollm2-test-lora-v1" in served_ids(vllm_url)
        assert model.kind == "lora" and model.parent == base and model.generation == base.generation
        assert set(ServedModel.objects.healthy()) == {base, model}
        # It generates, through the adapter (a random LoRA answers otherwise than its base).
        through = complete(vllm_url, "smollm2-test-lora-v1")
        assert through["model"] == "smollm2-test-lora-v1" and through["text"]
        assert through["text"] != complete(vllm_url, "smollm2-135m-instruct")["text"]
    finally:
        services.adapter_unload(base.endpoint, name="smollm2-test-lora-v1")


def test_a_bad_adapter_path_raises_and_creates_nothing(base, tmp_path):
    with pytest.raises(EngineError) as err:
        services.served_model_register_adapter(parent=base, name="broken-v1", adapter_path=str(tmp_path / "missing"))
    assert "load_lora_adapter answered 404" in str(err.value)
    assert not ServedModel.objects.filter(kind="lora").exists()


def test_reconciliation_reloads_forgotten_adapters_and_retires_unloadable_ones(base, vllm_url, lora_adapter_dir, tmp_path):
    good = services.served_model_register_adapter(parent=base, name="smollm2-test-lora-v2", adapter_path=lora_adapter_dir)
    # What a vLLM restart does: the server forgets runtime-loaded adapters.
    services.adapter_unload(base.endpoint, name="smollm2-test-lora-v2")
    assert "smollm2-test-lora-v2" not in served_ids(vllm_url)
    gone = ServedModel.objects.create(public_name="gone-v1", endpoint=base.endpoint, engine_model_id="gone-v1",
                                      kind="lora", parent=base, adapter_path=str(tmp_path / "deleted"))
    try:
        report = services.adapters_reconcile(base.endpoint)
        assert report["reloaded"] == [good.public_name] and report["deactivated"] == [gone.public_name]
        assert report["engine_down"] == ""
        assert "smollm2-test-lora-v2" in served_ids(vllm_url)
        gone.refresh_from_db()
        assert not gone.active and "vLLM refused its adapter" in gone.last_error  # the admin sees why
    finally:
        services.adapter_unload(base.endpoint, name="smollm2-test-lora-v2")


def test_an_engine_that_is_down_deactivates_nothing_and_stays_out_of_battles(base):
    """Engine down is not adapter broken: the adapter stays active, the endpoint unhealthy, and it is retried."""
    dead = Endpoint.objects.create(name="down", base_url="http://127.0.0.1:9/v1", healthy=True)
    parent = ServedModel.objects.create(public_name="parent-on-down", endpoint=dead, engine_model_id="p")
    adapter = ServedModel.objects.create(public_name="lora-on-down", endpoint=dead, engine_model_id="lora-on-down",
                                         kind="lora", parent=parent, adapter_path="/somewhere")
    report = services.adapters_reconcile(dead)
    assert "/v1/models failed" in report["engine_down"] and report["deactivated"] == []
    adapter.refresh_from_db()
    assert adapter.active and not adapter.last_error
    refreshed = services.endpoint_refresh(dead)
    assert not refreshed["healthy"]
    assert set(ServedModel.objects.healthy().values_list("public_name", flat=True)) == {base.public_name}


def test_a_restarted_engine_re_enters_battles_only_with_its_adapters_back(base, vllm_url, lora_adapter_dir):
    Endpoint.objects.filter(pk=base.endpoint_id).update(healthy=False)  # as after a restart's health check
    adapter = ServedModel.objects.create(public_name="smollm2-test-lora-v3", endpoint=base.endpoint,
                                         engine_model_id="smollm2-test-lora-v3", kind="lora", parent=base,
                                         adapter_path=lora_adapter_dir)
    try:
        refreshed = services.endpoint_refresh(base.endpoint)
        assert refreshed["healthy"] and refreshed["adapters"]["reloaded"] == [adapter.public_name]
        assert "smollm2-test-lora-v3" in served_ids(vllm_url)
        assert set(ServedModel.objects.healthy().values_list("public_name", flat=True)) == {
            base.public_name, adapter.public_name}
    finally:
        services.adapter_unload(base.endpoint, name="smollm2-test-lora-v3")


def test_health_checks_take_a_dead_endpoint_out_of_the_healthy_models(base):
    dead = Endpoint.objects.create(name="dead", base_url="http://127.0.0.1:9/v1", healthy=True)
    ServedModel.objects.create(public_name="on-dead", endpoint=dead, engine_model_id="x")
    assert services.endpoint_check_health(base.endpoint)
    assert not services.endpoint_check_health(dead)
    dead.refresh_from_db()
    assert not dead.healthy and "/health failed" in dead.last_error
    assert list(ServedModel.objects.healthy().values_list("public_name", flat=True)) == ["smollm2-135m-instruct"]


def test_register_models_adds_what_the_server_reports(vllm_url):
    endpoint = Endpoint.objects.create(name="fresh", base_url=f"{vllm_url}/v1")
    created = services.endpoint_register_models(endpoint)
    assert [m.engine_model_id for m in created] == ["smollm2-135m-instruct"]
    assert services.endpoint_register_models(endpoint) == []
