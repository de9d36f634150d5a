import gzip
import json
from pathlib import Path

import pytest

from tests.factories import make_model, make_vote
from tests.helpers import missing_part, shared_data_file
from training import services
from training.models import Dataset


def jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


GOOD_SFT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


@pytest.mark.django_db
class TestDatasetImport:
    def test_it_stores_valid_rows_normalised(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        dataset = services.dataset_import(name="tiny", data=gzip.compress(jsonl(GOOD_SFT, GOOD_SFT)), fmt="messages")
        assert dataset.kind == "sft" and dataset.row_count == 2
        stored = [json.loads(line) for line in Path(dataset.file).read_text().splitlines()]
        assert stored[0]["messages"][-1] == {"role": "assistant", "content": "Hello!"}

    def test_bad_rows_are_reported_by_line_and_nothing_is_stored(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        data = jsonl(GOOD_SFT, "{not json", {"messages": []}, {"text": "no messages"},
                     {"messages": [{"role": "user", "content": 5}]})
        with pytest.raises(services.TrainingError) as err:
            services.dataset_import(name="broken", data=data, fmt="messages")
        problems = "\n".join(err.value.problems)
        for line in (2, 3, 4, 5):
            assert f"line {line}" in problems
        assert "line 1" not in problems
        assert not Dataset.objects.exists()
        assert not list(tmp_path.rglob("*.jsonl"))

    def test_an_empty_file_is_refused(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        with pytest.raises(services.TrainingError) as err:
            services.dataset_import(name="empty", data=b"", fmt="messages")
        assert "no rows" in str(err.value)

    @pytest.mark.parametrize("name", ["", "Has Spaces", "../escape", "ünïcode"])
    def test_names_must_be_slugs(self, name):
        with pytest.raises(services.TrainingError):
            services.dataset_import(name=name, data=jsonl(GOOD_SFT), fmt="messages")

    def test_unknown_formats_and_duplicate_names_are_refused(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        with pytest.raises(services.TrainingError):
            services.dataset_import(name="x", data=jsonl(GOOD_SFT), fmt="csv")
        services.dataset_import(name="x", data=jsonl(GOOD_SFT), fmt="messages")
        with pytest.raises(services.TrainingError):
            services.dataset_import(name="x", data=jsonl(GOOD_SFT), fmt="messages")


@pytest.mark.django_db
class TestDatasetSources:
    def test_builtin_real_datasets_import_with_license(self, settings, tmp_path):
        shared_data_file("hh_rlhf/helpful-base_test.jsonl.gz")
        settings.ARENA_DATA_DIR = tmp_path
        hh = services.dataset_from_builtin("hh-rlhf-helpful-base-test")
        assert hh.kind == "preference" and hh.row_count > 2000 and hh.license == "MIT"
        lima = services.dataset_from_builtin("lima-train")
        assert lima.license.startswith("CC BY-NC") and lima.commercial_use is False

    def test_the_hub_fails_clearly_when_unreachable(self, settings, tmp_path):
        from pathlib import Path

        if not Path(settings.ARENA_ENGINE_PYTHON).exists():
            missing_part(f"engine environment missing: {settings.ARENA_ENGINE_PYTHON} (make engine)")
        settings.ARENA_DATA_DIR = tmp_path
        with pytest.raises(services.TrainingError) as err:
            services.dataset_from_hub("HuggingFaceH4/ultrachat_200k", name="uc", fmt="messages", split="test_sft")
        assert "Could not load 'HuggingFaceH4/ultrachat_200k' from the Hugging Face hub" in err.value.message
        assert not Dataset.objects.exists()

    def test_arena_votes_become_preference_pairs(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        a, b = make_model(), make_model()
        make_vote(a, b, "model_b", answers=("Good answer", "Bad answer"), prompt="Q1")
        make_vote(a, b, "tie")
        make_vote(a, b, "model_a", identity_leak=True)
        make_vote(a, b, "model_a", side_error=True)
        dataset = services.dataset_from_arena_votes(name="from-votes")
        rows = [json.loads(line) for line in Path(dataset.file).read_text().splitlines()]
        assert rows == [{"prompt": [{"role": "user", "content": "Q1"}],
                         "chosen": [{"role": "assistant", "content": "Bad answer"}],
                         "rejected": [{"role": "assistant", "content": "Good answer"}]}]

    def test_no_decisive_votes_is_a_clear_error(self):
        with pytest.raises(services.TrainingError) as err:
            services.dataset_from_arena_votes(name="nothing")
        assert "no decisive" in err.value.message
