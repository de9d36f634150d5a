"""A dataset's preview with a real tokenizer (SmolLM2's, from var/models): the rows as the recipes see
them, token lengths and the rows each preset would cut or drop, checked against TRL's own
tokenization and length rules; its failures say why; the page requests, polls and shows it."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from serving.local_models import LOCAL_MODELS
from tests.factories import make_endpoint, make_model
from tests.helpers import missing_part
from training import previews
from training.models import Dataset, PreviewStatus
from training.recipes.config import PRESETS
from training.tests.test_admin import admin_client  # noqa: F401 - fixture


def _message(role: str, words: int, seed: int) -> dict:
    return {"role": role, "content": " ".join(f"word{(seed * 7 + i) % 97}" for i in range(words))}


# Lengths straddle the cpu-smoke limit (256 tokens), and one DPO prompt alone fills it (dropped there).
PAIRS = [{"prompt": [_message("user", n_prompt, i)], "chosen": [_message("assistant", n_reply, i + 1)],
          "rejected": [_message("assistant", n_reply // 2, i + 2)]}
         for i, (n_prompt, n_reply) in enumerate([(5, 10), (40, 60), (60, 80), (150, 20), (30, 200)])]
CONVERSATIONS = [{"messages": [_message("user", 5 + 40 * i, i), _message("assistant", 10 + 30 * i, i + 1)]}
                 for i in range(5)]

# The recipes' own rules, through TRL's own tokenization (trl.data_utils._tokenize), for the pairs:
# DPO drops a row whose common prompt prefix fills max_length and truncates the rest; the reward
# trainer drops a pair whose chosen or rejected conversation is longer than max_length.
TRL_RULES = r"""
import json, sys
from transformers import AutoTokenizer
from trl.data_utils import _tokenize, common_prefix_length
tok = AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)
rows, limits = json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = {"lengths": [], "dpo": {}, "reward": {}}
facts = []
for row in rows:
    p = _tokenize(tok, row["prompt"], add_generation_prompt=True)["input_ids"]
    c = _tokenize(tok, row["prompt"] + row["chosen"])["input_ids"]
    r = _tokenize(tok, row["prompt"] + row["rejected"])["input_ids"]
    facts.append((min(common_prefix_length(p, c), common_prefix_length(p, r)), len(c), len(r)))
    out["lengths"].append(max(len(c), len(r)))
for name, limit in limits.items():
    dropped = sum(1 for n_p, n_c, n_r in facts if n_p >= limit)
    cut = sum(1 for n_p, n_c, n_r in facts if n_p < limit and max(n_c, n_r) > limit)
    out["dpo"][name] = [cut, dropped]
    out["reward"][name] = sum(1 for n_p, n_c, n_r in facts if max(n_c, n_r) > limit)
print(json.dumps(out))
"""


@pytest.fixture
def smollm2_base(db):
    model_dir = LOCAL_MODELS["smollm2"].engine_spec().model_dir
    if not Path(settings.ARENA_ENGINE_PYTHON).exists() or not (Path(model_dir) / "tokenizer.json").is_file():
        missing_part("engine environment or SmolLM2 directory missing: run `make models`")
    return make_model(public_name="smollm2-135m-instruct", endpoint=make_endpoint(model_dir=model_dir))


def make_dataset(tmp_path, kind: str, rows: list[dict], name: str = "") -> Dataset:
    path = tmp_path / f"{name or kind}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return Dataset.objects.create(name=name or kind, kind=kind, format="messages", source="upload", file=str(path),
                                  row_count=len(rows))


def computed(dataset: Dataset, base) -> Dataset:
    previews.dataset_preview_request(dataset, base)
    return previews.dataset_preview_compute(dataset.pk, base.pk)


@pytest.mark.django_db
class TestPreviewWithARealTokenizer:
    def test_pairs_are_rendered_and_counted_as_trl_counts_them(self, smollm2_base, tmp_path, broker_queue):
        dataset = computed(make_dataset(tmp_path, "preference", PAIRS), smollm2_base)
        assert dataset.preview_status == PreviewStatus.READY, dataset.preview_error
        preview = dataset.preview
        limits = {name: PRESETS["dpo"][name].max_length for name in PRESETS["dpo"]}
        trl = json.loads(subprocess.run(
            [settings.ARENA_ENGINE_PYTHON, "-c", TRL_RULES, smollm2_base.endpoint.model_dir, json.dumps(PAIRS),
             json.dumps(limits)], capture_output=True, text=True, check=True).stdout)
        assert preview["stats"]["max"] == max(trl["lengths"]) and preview["stats"]["count"] == len(PAIRS)
        assert sum(b[2] for b in preview["histogram"]) == len(PAIRS)
        effects = {(e["method"], e["preset"]): e for e in preview["presets"]}
        for name in limits:
            assert [effects["dpo", name]["cut"], effects["dpo", name]["dropped"]] == trl["dpo"][name]
            assert effects["reward", name]["dropped"] == trl["reward"][name]
        assert trl["dpo"]["cpu-smoke"][0] > 0 and trl["dpo"]["cpu-smoke"][1] > 0  # the data straddles 256
        first = preview["rows"][0]
        # the chat template applied: SmolLM2's ChatML turns, the prompt ending where the reply starts
        assert first["prompt"]["text"].startswith("<|im_start|>") and first["prompt"]["text"].endswith(
            "<|im_start|>assistant\n")
        assert first["chosen"]["text"].startswith(PAIRS[0]["chosen"][0]["content"])
        assert first["chosen"]["tokens"] > 0 and first["rejected"]["tokens"] > 0
        assert preview["base"] == "smollm2-135m-instruct"

    def test_conversations_are_cut_at_each_presets_max_length(self, smollm2_base, tmp_path, broker_queue):
        dataset = computed(make_dataset(tmp_path, "sft", CONVERSATIONS), smollm2_base)
        assert dataset.preview_status == PreviewStatus.READY, dataset.preview_error
        script = ("import json,sys\nfrom transformers import AutoTokenizer\n"
                  "t=AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)\n"
                  "print(json.dumps([len(t.encode(t.apply_chat_template(r['messages'], tokenize=False), "
                  "add_special_tokens=False)) for r in json.loads(sys.argv[2])]))")
        lengths = json.loads(subprocess.run([settings.ARENA_ENGINE_PYTHON, "-c", script,
                                             smollm2_base.endpoint.model_dir, json.dumps(CONVERSATIONS)],
                                            capture_output=True, text=True, check=True).stdout)
        preview = dataset.preview
        assert preview["stats"]["max"] == max(lengths) and preview["stats"]["min"] == min(lengths)
        for effect in preview["presets"]:
            assert effect["method"] == "sft"
            assert effect["cut"] == sum(1 for n in lengths if n > effect["max_length"]) and effect["dropped"] == 0
        smoke = next(e for e in preview["presets"] if e["preset"] == "cpu-smoke")
        assert 0 < smoke["cut"] < len(CONVERSATIONS)
        assert preview["rows"][0]["text"]["text"].count("<|im_start|>") >= 2

    def test_unpaired_prompt_and_text_rows_show_their_parts(self, smollm2_base, tmp_path, broker_queue):
        kto = [{"prompt": [_message("user", 5, 1)], "completion": [_message("assistant", 8, 2)], "label": False}]
        prompts = [{"prompt": [_message("user", 300, 3)]}, {"prompt": [_message("user", 4, 4)]}]
        texts = [{"text": "A plain document about tokens. " * 200}]
        for kind, rows in (("unpaired", kto), ("prompt", prompts), ("text", texts)):
            dataset = computed(make_dataset(tmp_path, kind, rows), smollm2_base)
            assert dataset.preview_status == PreviewStatus.READY, dataset.preview_error
            first = dataset.preview["rows"][0]
            if kind == "unpaired":
                assert first["label"] is False and first["completion"]["text"].startswith("word")
            elif kind == "prompt":
                grpo = {e["preset"]: e for e in dataset.preview["presets"]}
                assert grpo["cpu-smoke"]["limit"] == 224 and grpo["cpu-smoke"]["dropped"] == 1
            else:
                # a long text is stored by its start; its count covers all of it
                assert texts[0]["text"].startswith(first["text"]["text"]) and first["text"]["more_chars"] > 0
                assert first["text"]["tokens"] > 1000
                assert {e["effect"] for e in dataset.preview["presets"]} == {"packed"}


@pytest.mark.django_db
class TestPreviewFailures:
    def test_a_base_without_local_tokenizer_files_fails_saying_so(self, tmp_path, broker_queue):
        if not Path(settings.ARENA_ENGINE_PYTHON).exists():
            missing_part(f"engine environment missing: {settings.ARENA_ENGINE_PYTHON}")
        empty = tmp_path / "no-weights"
        empty.mkdir()
        base = make_model(endpoint=make_endpoint(model_dir=str(empty)))
        dataset = computed(make_dataset(tmp_path, "sft", CONVERSATIONS), base)
        assert dataset.preview_status == PreviewStatus.FAILED
        assert "not available locally" in dataset.preview_error and str(empty) in dataset.preview_error
        assert "nothing is downloaded" in dataset.preview_error

    def test_rows_that_do_not_parse_fail_with_their_line_and_reason(self, smollm2_base, tmp_path, broker_queue):
        dataset = make_dataset(tmp_path, "sft", CONVERSATIONS)
        Path(dataset.file).write_text(json.dumps(CONVERSATIONS[0]) + "\n{not json\n")
        dataset = computed(dataset, smollm2_base)
        assert dataset.preview_status == PreviewStatus.FAILED
        assert "do not parse" in dataset.preview_error and "line 2" in dataset.preview_error
        assert Path(dataset.file).read_text().endswith("{not json\n")  # the file is left as it was

    def test_no_base_with_local_weights_is_a_clear_refusal(self, tmp_path, broker_queue):
        make_model(endpoint=make_endpoint(model_dir=""))
        dataset = previews.dataset_preview_ensure(make_dataset(tmp_path, "sft", CONVERSATIONS))
        assert dataset.preview_status == PreviewStatus.FAILED and "No active base model" in dataset.preview_error
        assert broker_queue("default") == []


@pytest.mark.django_db
class TestPreviewPage:
    def test_the_first_visit_requests_it_once_and_the_page_says_computing(
            self, admin_client, smollm2_base, tmp_path, broker_queue, django_capture_on_commit_callbacks):  # noqa: F811
        dataset = make_dataset(tmp_path, "sft", CONVERSATIONS)
        url = reverse("admin:training_dataset_change", args=[dataset.pk])
        with django_capture_on_commit_callbacks(execute=True):
            page = admin_client.get(url).content.decode()
            admin_client.get(url)
        assert "Computing the preview with smollm2-135m-instruct" in page
        [message] = broker_queue("default")
        assert (message["task"], message["args"]) == (previews.DATASET_PREVIEW_TASK, [dataset.pk, smollm2_base.pk])
        # what the worker does with that message, then what the page and its poll show
        previews.dataset_preview_compute(dataset.pk, smollm2_base.pk)
        page = admin_client.get(url).content.decode()
        assert 'id="preview-histogram"' in page and "<svg" in page and 'id="preview-cuts"' in page
        assert page.count('class="preview-row"') == len(CONVERSATIONS)
        polled = admin_client.get(reverse("admin:training_dataset_preview", args=[dataset.pk])).json()
        assert polled["status"] == "ready" and polled["finished"] is True and 'id="preview-cuts"' in polled["html"]
        # only the worker writes the preview: the dataset's own form neither shows nor saves it
        assert 'name="preview_status"' not in page and 'name="preview"' not in page
        admin_client.post(url, {"license": "MIT", "description": "", "skipped_rows": "[]"})
        dataset.refresh_from_db()
        assert dataset.license == "MIT" and dataset.preview_status == PreviewStatus.READY and dataset.preview

    def test_a_failure_is_shown_and_compute_again_requests_a_new_one(
            self, admin_client, tmp_path, broker_queue, django_capture_on_commit_callbacks):  # noqa: F811
        base = make_model(endpoint=make_endpoint(model_dir="/models/base"))
        dataset = make_dataset(tmp_path, "sft", CONVERSATIONS)
        Dataset.objects.filter(pk=dataset.pk).update(preview_status=PreviewStatus.FAILED, preview_base=base,
                                                     preview_error="the tokenizer is not available locally: x")
        url = reverse("admin:training_dataset_change", args=[dataset.pk])
        page = admin_client.get(url).content.decode()
        assert "The preview could not be computed" in page and "not available locally" in page
        assert broker_queue("default") == []  # a failed preview is not requested again by a visit
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(url, {"_preview_compute": "1", "preview_base": base.pk})
        assert response.status_code == 302
        dataset.refresh_from_db()
        assert dataset.preview_status == PreviewStatus.COMPUTING and dataset.preview_error == ""
        assert [m["args"] for m in broker_queue("default")] == [[dataset.pk, base.pk]]

    def test_a_request_no_worker_took_stops_the_polling_and_says_why_then_a_late_result_still_lands(
            self, admin_client, smollm2_base, tmp_path, broker_queue):  # noqa: F811
        dataset = make_dataset(tmp_path, "sft", CONVERSATIONS)
        asked = timezone.now() - timedelta(seconds=previews.PREVIEW_STALLED_S - 5)
        Dataset.objects.filter(pk=dataset.pk).update(preview_status=PreviewStatus.COMPUTING, preview_base=smollm2_base,
                                                     preview_at=asked)
        poll = reverse("admin:training_dataset_preview", args=[dataset.pk])
        polled = admin_client.get(poll).json()
        assert polled["finished"] is False and 'id="preview-computing"' in polled["html"]  # not yet: keep waiting
        Dataset.objects.filter(pk=dataset.pk).update(preview_at=asked - timedelta(seconds=10))
        polled = admin_client.get(poll).json()
        assert polled["status"] == "computing" and polled["finished"] is True
        assert 'id="preview-stalled"' in polled["html"] and "no worker took the task" in polled["html"]
        page = admin_client.get(reverse("admin:training_dataset_change", args=[dataset.pk])).content.decode()
        assert 'id="preview-stalled"' in page and 'data-live-finished="1"' in page and 'id="preview-compute"' in page
        previews.dataset_preview_compute(dataset.pk, smollm2_base.pk)  # the worker comes back and takes it
        polled = admin_client.get(poll).json()
        assert polled["status"] == "ready" and 'id="preview-cuts"' in polled["html"]
