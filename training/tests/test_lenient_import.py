"""Lenient imports (--skip-invalid): the valid rows are stored and every skipped line is named;
without the option a single bad row still refuses the whole file."""

import gzip
import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.factories import make_endpoint, make_model
from tests.helpers import shared_data_file
from training import services
from training.models import Dataset, Job


def hh_file_with_bad_rows(tmp_path, good: int = 6):
    """Real HH-RLHF rows, then a rejected conversation ending on a Human turn (as in the
    helpful-online test split) and a line that is not JSON."""
    lines = gzip.decompress(shared_data_file("hh_rlhf/helpful-base_test.jsonl.gz").read_bytes()).decode().splitlines()
    rows = [json.loads(line) for line in lines[:good]]
    bad = dict(rows[0], rejected=rows[0]["rejected"] + "\n\nHuman: and then?")
    text = "\n".join([*(json.dumps(r) for r in rows[:3]), json.dumps(bad), *(json.dumps(r) for r in rows[3:]),
                      "{not json"]) + "\n"
    path = tmp_path / "helpful-online.jsonl"
    path.write_text(text)
    return path, good


@pytest.mark.django_db
class TestSkipInvalid:
    def test_the_command_stores_the_rest_and_names_each_skipped_line(self, tmp_path, settings):
        settings.ARENA_DATA_DIR = tmp_path
        path, good = hh_file_with_bad_rows(tmp_path)
        out, err = StringIO(), StringIO()
        call_command("import_dataset", str(path), "--format", "hh-rlhf", "--skip-invalid", "--name", "online",
                     stdout=out, stderr=err)
        printed = json.loads(out.getvalue())
        assert printed["rows"] == good and printed["skipped"] == 2
        assert "skipped line 4: rejected ends with a Human turn" in err.getvalue()
        assert f"skipped line {good + 2}: invalid JSON" in err.getvalue()
        dataset = Dataset.objects.get(name="online")
        assert [s["line"] for s in dataset.skipped_rows] == [4, good + 2]
        assert len(open(dataset.file).read().splitlines()) == good

    def test_without_the_option_the_file_is_still_refused_whole(self, tmp_path, settings):
        settings.ARENA_DATA_DIR = tmp_path
        path, _ = hh_file_with_bad_rows(tmp_path)
        err = StringIO()
        with pytest.raises(CommandError, match="nothing was stored"):
            call_command("import_dataset", str(path), "--format", "hh-rlhf", stderr=err)
        assert "line 4" in err.getvalue() and not Dataset.objects.exists()

    def test_a_file_with_no_valid_row_or_a_file_level_problem_is_refused(self, tmp_path, settings):
        settings.ARENA_DATA_DIR = tmp_path
        with pytest.raises(services.TrainingError, match="no valid row is left"):
            services.dataset_import(name="x", data=b"{oops\n[1]\n", fmt="preference", skip_invalid=True)
        with pytest.raises(services.TrainingError, match="nothing was stored"):
            services.dataset_import(name="x", data=b"\xff\xfe{}", fmt="preference", skip_invalid=True)
        assert not Dataset.objects.exists()

    def test_every_skipped_line_is_listed_beyond_the_strict_error_cap(self, tmp_path, settings):
        settings.ARENA_DATA_DIR = tmp_path
        good = json.dumps({"prompt": "Q?", "chosen": "yes", "rejected": "no"})
        data = "\n".join([good] + ["{bad"] * 60).encode()
        dataset = services.dataset_import(name="many", data=data, fmt="preference", skip_invalid=True)
        assert dataset.row_count == 1 and dataset.skipped_count == 60 and len(dataset.skipped_rows) == 60

    def test_the_admin_checkbox_and_the_job_page_show_the_dropped_rows(self, client, tmp_path, settings):
        settings.ARENA_DATA_DIR = tmp_path
        client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
        path, good = hh_file_with_bad_rows(tmp_path)
        upload = SimpleUploadedFile("online.jsonl", path.read_bytes())
        response = client.post(reverse("admin:training_dataset_add"), {
            "import_from": "upload", "name": "online", "data_format": "hh-rlhf", "upload": upload,
            "skip_invalid": "on"})
        assert response.status_code == 302, response.content[:2000]
        dataset = Dataset.objects.get(name="online")
        page = client.get(reverse("admin:training_dataset_change", args=[dataset.pk])).content.decode()
        assert "line 4: rejected ends with a Human turn" in page
        base = make_model(public_name="base", endpoint=make_endpoint(model_dir="/m"))
        job = Job.objects.create(base_model=base, method="dpo", dataset=dataset, config={})
        page = client.get(reverse("admin:training_job_change", args=[job.pk])).content.decode()
        assert f"{good} rows kept, 2 invalid rows dropped" in page
