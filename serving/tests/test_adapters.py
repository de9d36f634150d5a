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


def test_an_adapter_is_hot_loaded_as_a_served_model(base, vllm_url, lora_adapter_dir):
    model = services.served_model_register_adapter(parent=base, name="smollm2-test-lora-v1", adapter_path=lora_adapter_dir)
    assert "smollm2-test-lora-v1" in served_ids(vllm_url)
    assert model.kind == "lora" and model.parent == base and model.generation == base.generation
    assert set(ServedModel.objects.healthy()) == {base, model}
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
    report = services.adapters_reconcile(base.endpoint)
    assert report["reloaded"] == [good.public_name] and report["deactivated"] == [gone.public_name]
    assert "smollm2-test-lora-v2" in served_ids(vllm_url)
    gone.refresh_from_db()
    assert not gone.active
    services.adapter_unload(base.endpoint, name="smollm2-test-lora-v2")


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
