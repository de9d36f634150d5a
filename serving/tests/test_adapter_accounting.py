"""Adapters you can account for, against the real vLLM server: the directory hash recorded at load,
verification name → path → hash, and unloading paused adapters to free their slots."""

import shutil

import httpx
import pytest

from serving import adapters, services
from serving.adapter_hash import adapter_dir_sha256
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel


def test_the_directory_hash_follows_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text("{}")
    (tmp_path / "a" / "weights.bin").write_bytes(b"\x00\x01")
    first = adapter_dir_sha256(str(tmp_path / "a"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert adapter_dir_sha256(str(tmp_path / "b")) == first, "same files, same hash, wherever they are"
    (tmp_path / "b" / "weights.bin").write_bytes(b"\x00\x02")
    assert adapter_dir_sha256(str(tmp_path / "b")) != first
    with pytest.raises(EngineError, match="does not exist"):
        adapter_dir_sha256(str(tmp_path / "missing"))


@pytest.fixture
def base(db, vllm_url):
    endpoint = Endpoint.objects.create(name="engine", base_url=f"{vllm_url}/v1", healthy=True)
    return ServedModel.objects.create(public_name="smollm2-135m-instruct", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct")


def served_ids(vllm_url: str) -> set[str]:
    return {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}


@pytest.mark.vllm
def test_a_rewritten_adapter_directory_is_caught_and_its_adapter_unloaded(base, vllm_url, lora_adapter_dir, tmp_path):
    path = str(tmp_path / "adapter")
    shutil.copytree(lora_adapter_dir, path)
    name = "providers-test-lora-v1"
    model = services.served_model_register_adapter(parent=base, name=name, adapter_path=path)
    try:
        assert model.adapter_sha256 == adapter_dir_sha256(lora_adapter_dir)
        assert adapters.adapters_verify(base.endpoint) == {"verified": [name], "failed": []}
        # New weights written over the same directory: vLLM would answer from a stale cache under the old name.
        with open(f"{path}/adapter_config.json", "a") as config:
            config.write("\n")
        report = adapters.adapters_verify(base.endpoint)
        assert report["verified"] == [] and "adapter directory changed since it was loaded" in report["failed"][0]
        model.refresh_from_db()
        assert not model.active
        assert adapters.adapters_unload_inactive(base.endpoint) == [name]
        assert name not in served_ids(vllm_url)
    finally:
        services.adapter_unload(base.endpoint, name=name)


@pytest.mark.vllm
def test_an_adapter_served_from_another_path_fails_verification(base, lora_adapter_dir, tmp_path):
    name = "providers-test-lora-v2"
    model = services.served_model_register_adapter(parent=base, name=name, adapter_path=lora_adapter_dir)
    try:
        elsewhere = tmp_path / "copy"
        shutil.copytree(lora_adapter_dir, elsewhere)
        model.adapter_path = str(elsewhere)
        with pytest.raises(EngineError, match="the engine serves it from"):
            adapters.adapter_verify(model)
    finally:
        services.adapter_unload(base.endpoint, name=name)
