import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.factories import make_endpoint, make_model
from training.models import Dataset, Job


@pytest.mark.django_db
class TestImportDataset:
    def test_a_good_file_is_stored_and_described(self, tmp_path, settings, capsys):
        settings.ARENA_DATA_DIR = tmp_path
        path = tmp_path / "pairs.jsonl"
        path.write_text(json.dumps({"prompt": "Q?", "chosen": "yes", "rejected": "no"}) + "\n")
        out = StringIO()
        call_command("import_dataset", str(path), "--format", "preference", "--name", "pairs", stdout=out)
        printed = json.loads(out.getvalue())
        assert printed["name"] == "pairs" and printed["rows"] == 1 and printed["kind"] == "preference"

    def test_a_bad_file_prints_each_bad_line_and_stores_nothing(self, tmp_path, settings):
        settings.ARENA_DATA_DIR = tmp_path
        path = tmp_path / "bad.jsonl"
        path.write_text('{"prompt": "Q?", "chosen": "yes"}\nnot json\n')
        err = StringIO()
        with pytest.raises(CommandError, match="nothing was stored"):
            call_command("import_dataset", str(path), "--format", "preference", stderr=err)
        assert "line 1" in err.getvalue() and "line 2" in err.getvalue()
        assert not Dataset.objects.exists()

    def test_a_missing_file_is_a_clear_error(self):
        with pytest.raises(CommandError, match="no such file"):
            call_command("import_dataset", "/nope.jsonl", "--format", "messages")


@pytest.mark.django_db
class TestLaunchTraining:
    def test_launch_training_queues_like_the_admin(self, tmp_path, broker_queue, django_capture_on_commit_callbacks):
        base = make_model(public_name="base-model", endpoint=make_endpoint(model_dir="/m"))
        path = tmp_path / "d.jsonl"
        path.write_text("{}")
        Dataset.objects.create(name="d", kind="sft", format="messages", source="upload", file=str(path))
        out = StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("launch_training", "--method", "sft", "--base", "base-model", "--dataset", "d",
                         "--preset", "cpu-smoke", "--set", "max_steps=3", stdout=out)
        job = Job.objects.get()
        assert json.loads(out.getvalue()) == {"job": job.pk, "status": "queued"}
        assert job.config["max_steps"] == 3 and job.base_model == base
        assert [(m["id"], m["args"]) for m in broker_queue("training")] == [(job.celery_task_id, [job.pk])]

    def test_unknown_base_or_dataset_or_bad_values_are_errors(self, tmp_path):
        make_model(public_name="base-model", endpoint=make_endpoint(model_dir="/m"))
        with pytest.raises(CommandError, match="no base model"):
            call_command("launch_training", "--method", "sft", "--base", "nope", "--dataset", "d")
        with pytest.raises(CommandError, match="no dataset"):
            call_command("launch_training", "--method", "sft", "--base", "base-model", "--dataset", "d")
        path = tmp_path / "d.jsonl"
        path.write_text("{}")
        Dataset.objects.create(name="d", kind="sft", format="messages", source="upload", file=str(path))
        with pytest.raises(CommandError, match="lora_r"):
            call_command("launch_training", "--method", "sft", "--base", "base-model", "--dataset", "d",
                         "--set", "lora_r=999")
        assert not Job.objects.exists()
