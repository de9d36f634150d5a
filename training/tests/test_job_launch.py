import json

import pytest

from tests.factories import make_endpoint, make_model
from tests.helpers import dead_broker
from training import services
from training.models import Dataset, Job


def make_dataset(kind: str, name: str, tmp_path) -> Dataset:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}))
    return Dataset.objects.create(name=name, kind=kind, format="messages", source="upload", file=str(path), row_count=1)


@pytest.mark.django_db
class TestJobLaunch:
    def setup_method(self):
        self.base = make_model(endpoint=make_endpoint(model_dir="/models/base"))

    def test_a_launch_queues_the_job_with_its_full_recipe_config(self, tmp_path, broker_queue,
                                                                 django_capture_on_commit_callbacks):
        dataset = make_dataset("sft", "sft-data", tmp_path)
        with django_capture_on_commit_callbacks(execute=True):
            job = services.job_launch(base_model=self.base, method="sft", dataset=dataset, preset_name="cpu-smoke",
                                      overrides=["learning_rate=1e-4"])
        job.refresh_from_db()
        assert job.status == "queued"
        assert job.config["learning_rate"] == 1e-4 and job.config["max_steps"] > 0
        assert broker_queue("training") == [
            {"task": "training.tasks.job_run", "id": job.celery_task_id, "args": [job.pk], "eta": None}]

    def test_the_dataset_must_fit_the_method(self, tmp_path):
        sft_data = make_dataset("sft", "sft-data", tmp_path)
        with pytest.raises(services.TrainingError) as err:
            services.job_launch(base_model=self.base, method="dpo", dataset=sft_data, preset_name="cpu-smoke")
        assert "preference" in err.value.message
        assert not Job.objects.exists()

    @pytest.mark.parametrize("overrides", [["lora_r=64"], ["learning_rate=fast"], ["no_such_key=1"], ["use_dora=true"]])
    def test_bad_or_unservable_configs_are_refused(self, tmp_path, overrides):
        dataset = make_dataset("sft", "sft-data", tmp_path)
        with pytest.raises(services.TrainingError) as err:
            services.job_launch(base_model=self.base, method="sft", dataset=dataset, preset_name="cpu-smoke",
                                overrides=overrides)
        assert err.value.problems
        assert not Job.objects.exists()

    def test_unknown_methods_and_presets_are_refused(self, tmp_path):
        dataset = make_dataset("sft", "sft-data", tmp_path)
        with pytest.raises(services.TrainingError):
            services.job_launch(base_model=self.base, method="ppo", dataset=dataset)
        with pytest.raises(services.TrainingError):
            services.job_launch(base_model=self.base, method="sft", dataset=dataset, preset_name="nope")

    def test_queued_jobs_cancel_at_once_and_running_ones_on_request(self, tmp_path):
        dataset = make_dataset("sft", "sft-data", tmp_path)
        queued = services.job_launch(base_model=self.base, method="sft", dataset=dataset, preset_name="cpu-smoke")
        assert services.job_cancel(queued).status == "cancelled"
        running = services.job_launch(base_model=self.base, method="sft", dataset=dataset, preset_name="cpu-smoke")
        Job.objects.filter(pk=running.pk).update(status="running")
        running = services.job_cancel(running)
        assert running.status == "running" and running.cancel_requested


@pytest.mark.django_db
def test_a_job_whose_message_never_reached_the_broker_is_sent_again(tmp_path, django_capture_on_commit_callbacks,
                                                                     broker_queue, caplog):
    base = make_model(endpoint=make_endpoint(model_dir="/models/base"))
    dataset = make_dataset("sft", "sft-data", tmp_path)
    with dead_broker(), django_capture_on_commit_callbacks(execute=True):
        job = services.job_launch(base_model=base, method="sft", dataset=dataset, preset_name="cpu-smoke")
    job.refresh_from_db()
    assert job.status == "queued" and job.celery_task_id == ""
    assert f"could not send job {job.pk} to the training queue" in caplog.text
    assert services.jobs_dispatch_unsent(min_age_s=0) == [job.pk]
    job.refresh_from_db()
    assert [(m["id"], m["args"]) for m in broker_queue("training")] == [(job.celery_task_id, [job.pk])]
    assert job.celery_task_id
    assert services.jobs_dispatch_unsent(min_age_s=0) == []
