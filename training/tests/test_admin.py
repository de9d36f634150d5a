"""Admins work in the admin: launch, watch and cancel jobs; import datasets. Only staff may."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import make_endpoint, make_model
from training.forms import DatasetImportForm, JobLaunchForm
from training.models import Dataset, Job

GOOD_SFT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("boss", "", "pw-for-tests")
    client.force_login(user)
    client.user = user
    return client


@pytest.mark.django_db
class TestDatasetAdmin:
    def test_an_upload_is_validated_and_stored(self, admin_client, settings, tmp_path):
        from django.core.files.uploadedfile import SimpleUploadedFile

        settings.ARENA_DATA_DIR = tmp_path
        upload = SimpleUploadedFile("chat.jsonl", (json.dumps(GOOD_SFT) + "\n").encode())
        response = admin_client.post(reverse("admin:training_dataset_add"), {
            "import_from": "upload", "name": "chat", "data_format": "messages", "upload": upload, "license": "MIT",
        })
        assert response.status_code == 302, response.content[:2000]
        dataset = Dataset.objects.get(name="chat")
        assert dataset.row_count == 1 and dataset.created_by == admin_client.user

    def test_a_bad_upload_shows_each_bad_line_and_stores_nothing(self, admin_client, settings, tmp_path):
        from django.core.files.uploadedfile import SimpleUploadedFile

        settings.ARENA_DATA_DIR = tmp_path
        upload = SimpleUploadedFile("chat.jsonl", b'{"messages": []}\n{oops\n')
        response = admin_client.post(reverse("admin:training_dataset_add"), {
            "import_from": "upload", "name": "chat", "data_format": "messages", "upload": upload,
        })
        assert response.status_code == 200
        page = response.content.decode()
        assert "line 1" in page and "line 2" in page and "nothing was stored" in page
        assert 'name="name" value="chat"' in page  # what was typed is kept
        assert not Dataset.objects.exists()

    def test_the_form_only_validates_and_stores_nothing(self, admin_client, settings, tmp_path):
        from django.core.files.uploadedfile import SimpleUploadedFile

        settings.ARENA_DATA_DIR = tmp_path
        upload = SimpleUploadedFile("chat.jsonl", (json.dumps(GOOD_SFT) + "\n").encode())
        form = DatasetImportForm({"import_from": "upload", "name": "chat", "data_format": "messages"},
                                 {"upload": upload})
        assert form.is_valid(), form.errors
        assert not Dataset.objects.exists() and not (tmp_path / "datasets").exists()
        missing = DatasetImportForm({"import_from": "upload", "data_format": "messages"}, {"upload": upload})
        assert not missing.is_valid() and "Give the dataset a name." in missing.non_field_errors()


@pytest.mark.django_db
class TestJobAdmin:
    def setup_method(self):
        self.base = make_model(endpoint=make_endpoint(model_dir="/models/base"))

    def make_dataset(self, tmp_path) -> Dataset:
        path = tmp_path / "d.jsonl"
        path.write_text(json.dumps(GOOD_SFT) + "\n")
        return Dataset.objects.create(name="d", kind="sft", format="messages", source="upload", file=str(path))

    def test_launch_records_who_launched_and_queues_the_job(self, admin_client, broker_queue, tmp_path,
                                                           django_capture_on_commit_callbacks):
        dataset = self.make_dataset(tmp_path)
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:training_job_add"), {
                "base_model": self.base.pk, "method": "sft", "dataset": dataset.pk, "preset": "cpu-smoke",
                "overrides": "learning_rate=1e-4\nmax_steps=3",
            })
        assert response.status_code == 302, response.content[:3000]
        job = Job.objects.get()
        assert job.created_by == admin_client.user and job.config["max_steps"] == 3
        assert [(m["id"], m["args"]) for m in broker_queue("training")] == [(job.celery_task_id, [job.pk])]

    def test_a_bad_launch_shows_the_reasons(self, admin_client, broker_queue, tmp_path,
                                            django_capture_on_commit_callbacks):
        dataset = self.make_dataset(tmp_path)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin_client.post(reverse("admin:training_job_add"), {
                "base_model": self.base.pk, "method": "dpo", "dataset": dataset.pk, "preset": "cpu-smoke",
            })
            assert response.status_code == 200 and "needs a preference dataset" in response.content.decode()
            response = admin_client.post(reverse("admin:training_job_add"), {
                "base_model": self.base.pk, "method": "sft", "dataset": dataset.pk, "overrides": "lora_r=512",
            })
            page = response.content.decode()
            assert response.status_code == 200 and "lora_r" in page
            assert ">\nlora_r=512</textarea>" in page  # what was typed is kept
        assert not Job.objects.exists() and callbacks == [] and broker_queue("training") == []

    def test_the_launch_form_only_validates_and_queues_nothing(self, tmp_path, broker_queue):
        form = JobLaunchForm({"base_model": self.base.pk, "method": "sft", "dataset": self.make_dataset(tmp_path).pk,
                              "overrides": "max_steps=3\n\n lr=1e-4 "})
        assert form.is_valid(), form.errors
        assert form.cleaned_data["overrides"] == ["max_steps=3", "lr=1e-4"]
        assert not Job.objects.exists() and broker_queue("training") == []

    def test_presets_of_one_method_are_grouped_and_refused_for_another(self, admin_client, tmp_path, broker_queue):
        page = admin_client.get(reverse("admin:training_job_add")).content.decode()
        assert '<optgroup label="GRPO only">' in page and page.index("cpu-smoke") < page.index("GRPO only") < page.index("dapo")
        form = {"base_model": self.base.pk, "method": "sft", "dataset": self.make_dataset(tmp_path).pk, "preset": "dapo",
                "finetuning_type": "lora", "overrides": ""}
        response = admin_client.post(reverse("admin:training_job_add"), form)
        assert response.status_code == 200 and "unknown sft preset &#x27;dapo&#x27;" in response.content.decode()
        assert not Job.objects.exists() and broker_queue("training") == []

    def test_a_full_fine_tune_is_a_choice_on_the_launch_form_said_once(self, admin_client, broker_queue, tmp_path,
                                                                      django_capture_on_commit_callbacks):
        dataset = self.make_dataset(tmp_path)
        page = admin_client.get(reverse("admin:training_job_add")).content.decode()
        assert 'name="finetuning_type" value="full"' in page and "an engine of its own" in page
        form = {"base_model": self.base.pk, "method": "sft", "dataset": dataset.pk, "preset": "cpu-smoke",
                "finetuning_type": "lora", "overrides": "finetuning_type=full"}
        response = admin_client.post(reverse("admin:training_job_add"), form)
        assert response.status_code == 200 and "set it once" in response.content.decode()
        assert not Job.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:training_job_add"),
                                         {**form, "finetuning_type": "full", "overrides": "learning_rate=2e-5"})
        assert response.status_code == 302, response.content[:3000]
        job = Job.objects.get()
        assert job.config["finetuning_type"] == "full" and job.config["learning_rate"] == 2e-5
        # left out (an older form, a script): LoRA, the default
        assert JobLaunchForm({**form, "finetuning_type": "", "overrides": ""}).is_valid()

    def test_the_job_page_shows_progress_plots_and_cancel(self, admin_client, tmp_path):
        job = Job.objects.create(base_model=self.base, method="dpo", dataset=self.make_dataset(tmp_path), config={},
                                 status="running", step=2, total_steps=4,
                                 metrics=[{"step": 1, "loss": 0.69, "rewards/margins": 0.0},
                                          {"step": 2, "loss": 0.6, "rewards/margins": 0.1}],
                                 log_tail="step 2 done")
        page = admin_client.get(reverse("admin:training_job_change", args=[job.pk])).content.decode()
        assert "Training loss" in page and "Reward margin" in page and "<svg" in page and "step 2 done" in page
        assert "Cancel this job" in page
        progress = admin_client.get(reverse("admin:training_job_progress", args=[job.pk])).json()
        assert progress["step"] == 2 and progress["finished"] is False and "<svg" in progress["html"]
        response = admin_client.post(reverse("admin:training_job_cancel", args=[job.pk]))
        assert response.status_code == 302
        job.refresh_from_db()
        assert job.cancel_requested

    def test_non_staff_cannot_launch_watch_or_cancel(self, client, db, tmp_path):
        job = Job.objects.create(base_model=self.base, method="sft", dataset=self.make_dataset(tmp_path), config={})
        user = get_user_model().objects.create_user("rater", "", "pw-for-tests")
        client.force_login(user)
        for url in (reverse("admin:training_job_add"), reverse("admin:training_job_progress", args=[job.pk])):
            assert client.get(url).status_code == 302  # to the admin login
        assert client.post(reverse("admin:training_job_cancel", args=[job.pk])).status_code == 302
        job.refresh_from_db()
        assert not job.cancel_requested
