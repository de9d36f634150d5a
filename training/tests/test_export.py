"""``manage.py export_model``: a real PEFT adapter written with its model card, the adapter merged
into SmolLM2 in the engine environment and served by a fresh vLLM CPU engine, and every refusal
(a used folder, changed weights, a push without a token or without a network)."""

from __future__ import annotations

import html
import json
from io import StringIO
from pathlib import Path

import httpx
import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from arena.leaderboard.services import snapshot_create
from serving.adapter_hash import adapter_dir_sha256
from serving.engines import EngineSpec, running_engine
from serving.local_models import LOCAL_MODELS
from tests.factories import make_checkpoint, make_model, make_vote
from tests.helpers import free_port, missing_part
from training.errors import TrainingError
from training.export_queue import EXPORT_TASK, export_request, export_run
from training.models import Dataset, ModelExport

pytestmark = pytest.mark.django_db


@pytest.fixture
def checkpoint(lora_adapter_dir, settings):
    """A succeeded SFT job whose checkpoint is the real random r16 adapter, on a non-commercial
    dataset, gated (0.65, passed) and rated from two counted votes."""
    base = make_model(public_name="smollm2-135m-instruct", kind="base", license="Apache-2.0")
    base.endpoint.model_dir = LOCAL_MODELS["smollm2"].engine_spec().model_dir
    base.endpoint.save()
    dataset = Dataset.objects.create(name="oasst-nc", kind="sft", format="messages", source="upload",
                                     source_ref="oasst.jsonl", license="CC-BY-NC-4.0", commercial_use=False,
                                     file="/nonexistent.jsonl", row_count=8)
    checkpoint = make_checkpoint(base=base, dataset=dataset, weights_dir=lora_adapter_dir,
                                 gate={"win_rate": 0.65, "passed": True, "wins": 12, "ties": 2, "losses": 6},
                                 sampling_weight=1.0)
    checkpoint.adapter_sha256 = adapter_dir_sha256(lora_adapter_dir)
    checkpoint.save()
    make_vote(checkpoint.served_model, base, "model_a")
    make_vote(base, checkpoint.served_model, "model_b")
    snapshot_create()
    return checkpoint


def export(*args: str) -> dict:
    out = StringIO()
    call_command("export_model", *args, stdout=out)
    return json.loads(out.getvalue())


def card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_an_adapter_is_exported_with_a_card_that_carries_the_dataset_restriction(checkpoint, tmp_path):
    result = export("--job", str(checkpoint.job_id), "--to", str(tmp_path / "out"))
    folder = tmp_path / "out"
    assert result["format"] == "adapter"
    assert result["files"] == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    source = Path(checkpoint.weights_dir) / "adapter_model.safetensors"
    assert (folder / "adapter_model.safetensors").read_bytes() == source.read_bytes()
    meta, body = card(folder)
    assert meta["base_model"] == "smollm2-135m-instruct" and meta["library_name"] == "peft"
    assert meta["license"] == "other" and "non-commercial" in meta["tags"]
    arena = meta["arena"]
    assert arena["method"] == "sft" and arena["job"]["id"] == checkpoint.job_id
    assert arena["dataset"] == {"name": "oasst-nc", "kind": "sft", "source": "upload", "source_ref": "oasst.jsonl",
                                "license": "CC-BY-NC-4.0", "commercial_use": False, "rows": 8}
    assert arena["training"] == {"max_steps": 2}
    assert arena["gate"]["win_rate"] == 0.65 and arena["gate"]["passed"] is True and arena["gate"]["prompts"] == 20
    rating = arena["rating"]
    assert rating["votes"] == 2 and rating["ci_low"] <= rating["rating"] <= rating["ci_high"]
    assert isinstance(rating["provisional"], bool)
    assert "**Not for commercial use.**" in body and "CC-BY-NC-4.0" in body
    assert "win rate 0.65" in body and "2 counted votes" in body


def test_a_merged_model_is_served_by_a_fresh_vllm(checkpoint, tmp_path, settings):
    result = export("--job", str(checkpoint.job_id), "--to", str(tmp_path / "merged"), "--merge")
    folder = tmp_path / "merged"
    assert result["format"] == "merged"
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= set(result["files"])
    assert not any(name.startswith("adapter") for name in result["files"])
    meta, _ = card(folder)
    assert meta["library_name"] == "transformers" and meta["arena"]["format"] == "merged"
    # The adapter was folded in: the merged attention weights are not the base's.
    base_dir = Path(checkpoint.base_model.endpoint.model_dir)
    key = "model.layers.0.self_attn.q_proj.weight"
    assert tensor_bytes(folder / "model.safetensors", key) != tensor_bytes(base_dir / "model.safetensors", key)

    spec = EngineSpec(name="merged", model_dir=str(folder), served_name="merged-export", port=free_port(),
                      python=settings.ARENA_ENGINE_PYTHON, log_path=settings.ARENA_DATA_DIR / "logs" / "test-merged-engine.log",
                      device=settings.ARENA_ENGINE_DEVICE)
    with running_engine(spec, settings.ARENA_ENGINE_START_TIMEOUT_S):
        answer = httpx.post(f"{spec.root_url}/v1/chat/completions", timeout=120, json={
            "model": "merged-export", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]}).json()
    assert answer["choices"][0]["message"]["content"].strip()
    assert answer["usage"]["completion_tokens"] > 0


def tensor_bytes(path: Path, key: str) -> bytes:
    """One tensor's raw bytes, read from the safetensors header (no torch in the web environment)."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    begin, end = json.loads(raw[8:8 + size])[key]["data_offsets"]
    return raw[8 + size + begin:8 + size + end]


def test_a_used_folder_and_changed_weights_are_refused(checkpoint, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(CommandError, match="is not an empty folder"):
        export("--job", str(checkpoint.job_id), "--to", str(used))
    assert [p.name for p in used.iterdir()] == ["notes.txt"]
    checkpoint.adapter_sha256 = "0" * 64  # as if the directory had been rewritten since it was judged
    checkpoint.save()
    with pytest.raises(CommandError, match="changed since they were served"):
        export("--job", str(checkpoint.job_id), "--to", str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()


def test_a_job_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(CommandError, match="job 999999 has no checkpoint"):
        export("--job", "999999", "--to", str(tmp_path / "x"))


def test_a_push_without_a_token_says_so_and_writes_nothing(checkpoint, tmp_path, settings):
    settings.HF_TOKEN = ""
    with pytest.raises(CommandError, match="No model hub token: set HF_TOKEN"):
        export("--job", str(checkpoint.job_id), "--to", str(tmp_path / "out"), "--push", "me/model")
    assert not (tmp_path / "out").exists()


def test_a_push_without_a_network_says_so(checkpoint, tmp_path, settings):
    settings.HF_TOKEN = "hf_not_a_real_token"
    settings.HF_ENDPOINT = f"http://127.0.0.1:{free_port()}"  # nobody listens: a refused connection, for real
    with pytest.raises(CommandError, match=r"The model hub is unreachable: 127\.0\.0\.1:\d+ cannot be reached .*"
                                           r"No network, so nothing was pushed"):
        export("--job", str(checkpoint.job_id), "--to", str(tmp_path / "out"), "--push", "me/model")
    assert not (tmp_path / "out").exists()


def test_a_bad_repository_id_is_refused(checkpoint, tmp_path):
    with pytest.raises(CommandError, match="is not a hub repository id"):
        export("--job", str(checkpoint.job_id), "--to", str(tmp_path / "out"), "--push", "../etc")


def test_the_admin_action_queues_the_export_for_a_worker_and_the_checkpoint_page_shows_it(
        client, checkpoint, tmp_path, settings, broker_queue, django_capture_on_commit_callbacks):
    settings.ARENA_DATA_DIR = tmp_path
    client.force_login(User.objects.create_user("staff", password="pw", is_staff=True, is_superuser=True))
    form = {"action": "export_jobs", "_selected_action": [checkpoint.job_id]}
    confirm = client.post("/admin/training/job/", form)
    assert confirm.status_code == 200 and "Export 1 model with a model card" in confirm.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post("/admin/training/job/", {**form, "confirm": "1", "merge": "0"}, follow=True)
    export = ModelExport.objects.get()
    assert export.status == "queued" and not (tmp_path / "exports").exists()  # nothing written in the request
    assert f"export queued on the training queue, to be written to {export.folder}" in done.content.decode()
    [message] = broker_queue("training")  # routed where the weights are, behind any fine-tune
    assert (message["task"], message["args"]) == (EXPORT_TASK, [export.pk])
    # what the training worker does with that message (twice: a redelivery finds it claimed)
    first = export_run(export.pk)
    assert first.status == "done", first.error
    assert export_run(export.pk).status == "done"
    (folder,) = (tmp_path / "exports").iterdir()
    assert str(folder) == ModelExport.objects.get().folder
    assert folder.name.startswith(checkpoint.served_model.public_name + "-adapter-")
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors"} == {p.name for p in folder.iterdir()}
    page = client.get(f"/admin/training/checkpoint/{checkpoint.pk}/change/").content.decode()
    assert 'id="exports"' in page and "export-done" in page and str(folder) in page and "adapter_model.safetensors" in page


def test_an_export_that_fails_on_the_worker_says_why_on_the_checkpoint_page(
        client, checkpoint, tmp_path, settings, broker_queue):
    settings.ARENA_DATA_DIR = tmp_path
    client.force_login(User.objects.create_user("staff", password="pw", is_staff=True, is_superuser=True))
    export = export_request(checkpoint, merge=False)
    # the weights changed after they were judged (the hash recorded then no longer matches; the
    # session's shared adapter directory itself is left alone)
    type(checkpoint).objects.filter(pk=checkpoint.pk).update(adapter_sha256="0" * 64)
    assert export_run(export.pk).status == "failed"
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())
    page = client.get(f"/admin/training/checkpoint/{checkpoint.pk}/change/").content.decode()
    assert "export-failed" in page and html.escape(ModelExport.objects.get().error) in page
    checkpoint.kind = checkpoint.Kind.SCORER  # a reward model: refused at once, nothing queued
    with pytest.raises(TrainingError, match="score head"):
        export_request(checkpoint, merge=True)
    assert ModelExport.objects.count() == 1


def test_a_full_fine_tune_exports_its_own_weights_even_with_merge(tmp_path):
    model_dir = LOCAL_MODELS["smollm2"].engine_spec().model_dir
    if not (Path(model_dir) / "config.json").exists():
        missing_part(f"model {model_dir} missing: run `make models`")
    full = make_checkpoint(served=False, weights_dir=model_dir, finetuning_type="full")
    result = export("--job", str(full.job_id), "--to", str(tmp_path / "full"), "--merge")
    assert result["format"] == "full" and {"config.json", "model.safetensors", "README.md"} <= set(result["files"])
    meta, body = card(tmp_path / "full")
    assert meta["library_name"] == "transformers" and meta["arena"]["finetuning_type"] == "full"
    assert meta["arena"]["rating"] is None and "Not rated" in body
    assert "not stated" in body  # the dataset's commercial use is unknown: the card says so
