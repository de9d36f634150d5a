"""Repeat and vary a run: the job page's command, "Launch again" and saved configurations."""

from __future__ import annotations

import html
import json
import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from tests.factories import make_endpoint, make_model
from training import services
from training.errors import TrainingError
from training.launch_args import command_arguments
from training.models import Checkpoint, Dataset, Job, SavedConfiguration
from training.recipes.config import PRESETS
from training.repeat import saved_configuration_create
from training.tests.test_admin import admin_client  # noqa: F401 - fixture

ROWS = {
    "sft": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
    "preference": {"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "y"}],
                   "rejected": [{"role": "assistant", "content": "n"}]},
    "prompt": {"prompt": [{"role": "user", "content": "Q?"}]},
}


def make_dataset(tmp_path, kind: str, name: str | None = None) -> Dataset:
    name = name or f"{kind}-data"
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps(ROWS[kind]) + "\n")
    return Dataset.objects.create(name=name, kind=kind, format="messages", source="upload", file=str(path), row_count=1)


def shown_command(client, job: Job) -> str:
    page = client.get(reverse("admin:training_job_change", args=[job.pk])).content.decode()
    match = re.search(r'<pre id="job-command" class="job-command">(.*?)</pre>', page, re.S)
    assert match, "the job page shows no command"
    return html.unescape(match.group(1))


def same_job(a: Job, b: Job) -> None:
    fields = ("method", "base_model_id", "dataset_id", "init_checkpoint_id", "reward_model_id", "config")
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}


@pytest.mark.django_db
class TestJobCommand:
    def setup_method(self):
        self.base = make_model(public_name="base-model", endpoint=make_endpoint(model_dir="/models/base"))

    @pytest.mark.parametrize("method,kind", [("sft", "sft"), ("dpo", "preference"), ("reward", "preference")])
    def test_running_the_shown_command_queues_an_equivalent_job(self, method, kind, admin_client, tmp_path,  # noqa: F811
                                                                broker_queue):
        dataset = make_dataset(tmp_path, kind)
        for preset in ["", *PRESETS[method]]:
            job = services.job_launch(base_model=self.base, method=method, dataset=dataset, preset_name=preset,
                                      overrides=["learning_rate=3.3e-5", "lora_target_modules=q_proj,v_proj",
                                                 "gradient_checkpointing=true", "seed=7", "max_steps=5"])
            args = command_arguments(shown_command(admin_client, job))
            before = set(Job.objects.values_list("pk", flat=True))
            call_command("launch_training", *args, stdout=StringIO())
            [new_id] = set(Job.objects.values_list("pk", flat=True)) - before
            same_job(Job.objects.get(pk=new_id), job)

    def test_continued_and_online_rl_jobs_name_their_checkpoints_by_job(self, admin_client, tmp_path, broker_queue):  # noqa: F811
        prefs, prompts = make_dataset(tmp_path, "preference"), make_dataset(tmp_path, "prompt")
        sft_job = services.job_launch(base_model=self.base, method="sft", dataset=make_dataset(tmp_path, "sft"))
        reward_job = services.job_launch(base_model=self.base, method="reward", dataset=prefs)
        sft = Checkpoint.objects.create(job=sft_job, weights_dir="/a", base_model=self.base)
        scorer = Checkpoint.objects.create(job=reward_job, weights_dir="/r", base_model=self.base, kind="scorer")
        dpo = services.job_launch(base_model=self.base, method="dpo", dataset=prefs, preset_name="cpu-smoke",
                                  init_checkpoint=sft, overrides=["beta=0.3"])
        grpo = services.job_launch(base_model=self.base, method="grpo", dataset=prompts, preset_name="cpu-smoke",
                                   init_checkpoint=sft, reward_model=scorer, overrides=["temperature=0.7"])
        for job in (dpo, grpo):
            command = shown_command(admin_client, job)
            assert f"--init-job {sft_job.pk}" in command
            before = set(Job.objects.values_list("pk", flat=True))
            call_command("launch_training", *command_arguments(command), stdout=StringIO())
            [new_id] = set(Job.objects.values_list("pk", flat=True)) - before
            same_job(Job.objects.get(pk=new_id), job)
        assert f"--reward-job {reward_job.pk}" in shown_command(admin_client, grpo)

    def test_a_dataset_named_with_digits_only_is_given_by_its_id(self, admin_client, tmp_path, broker_queue):  # noqa: F811
        other = make_dataset(tmp_path, "sft", name="other")
        digits = make_dataset(tmp_path, "sft", name=str(other.pk + 1000))
        job = services.job_launch(base_model=self.base, method="sft", dataset=digits)
        args = command_arguments(shown_command(admin_client, job))
        assert args[args.index("--dataset") + 1] == str(digits.pk)
        call_command("launch_training", *args, stdout=StringIO())
        assert Job.objects.filter(dataset=digits).count() == 2


@pytest.mark.django_db
class TestLaunchAgain:
    def setup_method(self):
        self.base = make_model(public_name="base-model", endpoint=make_endpoint(model_dir="/models/base"))

    def test_the_launch_form_comes_filled_from_the_job_and_launches_the_same_job(
            self, admin_client, tmp_path, broker_queue, django_capture_on_commit_callbacks):  # noqa: F811
        dataset = make_dataset(tmp_path, "sft")
        job = services.job_launch(base_model=self.base, method="sft", dataset=dataset, preset_name="cpu-smoke",
                                  overrides=["finetuning_type=full", "learning_rate=2e-5", "max_steps=3"])
        page = admin_client.get(reverse("admin:training_job_change", args=[job.pk])).content.decode()
        assert f'href="{reverse("admin:training_job_add")}?from_job={job.pk}"' in page
        response = admin_client.get(reverse("admin:training_job_add") + f"?from_job={job.pk}")
        initial = response.context["adminform"].form.initial
        assert (initial["method"], initial["preset"], initial["finetuning_type"]) == ("sft", "cpu-smoke", "full")
        assert initial["overrides"] == "learning_rate=2e-05\nmax_steps=3"
        form = {key: ("" if value is None else value) for key, value in initial.items()}
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:training_job_add"), form)
        assert response.status_code == 302, response.content[:3000]
        same_job(Job.objects.exclude(pk=job.pk).get(), job)

    def test_an_unknown_job_gives_the_usual_empty_form(self, admin_client):  # noqa: F811
        response = admin_client.get(reverse("admin:training_job_add") + "?from_job=99999")
        assert response.status_code == 200 and response.context["adminform"].form.initial.get("method") is None


@pytest.mark.django_db
class TestSavedConfigurations:
    def setup_method(self):
        self.base = make_model(public_name="base-model", endpoint=make_endpoint(model_dir="/models/base"))

    def test_settings_saved_from_a_job_are_offered_on_the_launch_form_and_launch_the_same_config(
            self, admin_client, tmp_path, broker_queue, django_capture_on_commit_callbacks):  # noqa: F811
        dataset = make_dataset(tmp_path, "sft")
        job = services.job_launch(base_model=self.base, method="sft", dataset=dataset, preset_name="cpu-smoke",
                                  overrides=["learning_rate=1e-4", "lora_r=8"])
        response = admin_client.post(reverse("admin:training_job_change", args=[job.pk]),
                                     {"_save_configuration": "1", "configuration_name": "small lr r8"})
        assert response.status_code == 302
        saved = SavedConfiguration.objects.get()
        assert (saved.method, saved.preset, saved.overrides) == ("sft", "cpu-smoke", ["learning_rate=0.0001", "lora_r=8"])
        assert saved.created_by == admin_client.user
        page = admin_client.get(reverse("admin:training_job_add")).content.decode()
        assert f'<option value="saved:{saved.pk}">small lr r8 (sft, cpu-smoke + 2 settings)</option>' in page
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:training_job_add"), {
                "base_model": self.base.pk, "method": "sft", "dataset": dataset.pk, "preset": f"saved:{saved.pk}"})
        assert response.status_code == 302, response.content[:3000]
        new = Job.objects.exclude(pk=job.pk).get()
        same_job(new, job)
        assert new.preset == "cpu-smoke"
        # what is typed on the form applies after the saved settings
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(reverse("admin:training_job_add"), {
                "base_model": self.base.pk, "method": "sft", "dataset": dataset.pk, "preset": f"saved:{saved.pk}",
                "overrides": "lora_r=4"})
        assert Job.objects.order_by("-pk").first().config["lora_r"] == 4

    def test_a_saved_configuration_of_another_method_is_refused_with_the_form_kept(self, admin_client, tmp_path,  # noqa: F811
                                                                                    broker_queue):
        saved = SavedConfiguration.objects.create(name="dpo-beta", method="dpo", preset="cpu-smoke",
                                                  overrides=["beta=0.2"])
        dataset = make_dataset(tmp_path, "sft")
        response = admin_client.post(reverse("admin:training_job_add"), {
            "base_model": self.base.pk, "method": "sft", "dataset": dataset.pk, "preset": f"saved:{saved.pk}",
            "overrides": "max_steps=2"})
        page = html.unescape(response.content.decode())
        assert response.status_code == 200 and "'dpo-beta' is for DPO, not SFT" in page
        assert ">\nmax_steps=2</textarea>" in page and f'value="saved:{saved.pk}" selected' in page
        assert not Job.objects.exists()

    def test_a_saved_configuration_that_has_become_invalid_lists_its_problems_at_launch(self, admin_client, tmp_path,  # noqa: F811
                                                                                        broker_queue):
        saved = SavedConfiguration.objects.create(name="old", method="sft", preset="retired-preset",
                                                  overrides=["lora_r=4096"])
        response = admin_client.post(reverse("admin:training_job_add"), {
            "base_model": self.base.pk, "method": "sft", "dataset": make_dataset(tmp_path, "sft").pk,
            "preset": f"saved:{saved.pk}"})
        page = html.unescape(response.content.decode())
        assert response.status_code == 200 and "unknown sft preset 'retired-preset'" in page
        assert not Job.objects.exists()

    def test_an_invalid_setting_or_unknown_preset_is_refused_on_the_add_page_with_everything_kept(self, admin_client):  # noqa: F811
        url = reverse("admin:training_savedconfiguration_add")
        response = admin_client.post(url, {"name": "fast", "method": "sft", "preset": "cpu-smoke",
                                           "overrides": "learning_rate=-1\nnot_a_key=3\nmax_steps=4"})
        page = html.unescape(response.content.decode())
        assert response.status_code == 200 and "learning_rate: -1.0 is out of range" in page
        assert "not_a_key: unknown key for sft recipe" in page
        assert "learning_rate=-1\nnot_a_key=3\nmax_steps=4</textarea>" in page and 'value="fast"' in page
        response = admin_client.post(url, {"name": "fast", "method": "grpo", "preset": "", "overrides": ""})
        assert response.status_code == 302 and SavedConfiguration.objects.get().method == "grpo"
        response = admin_client.post(url, {"name": "fast", "method": "sft", "preset": "", "overrides": ""})
        assert "already exists" in response.content.decode() and SavedConfiguration.objects.count() == 1

    def test_saving_from_a_job_under_a_taken_name_says_so_and_keeps_the_name(self, admin_client, tmp_path,  # noqa: F811
                                                                             broker_queue):
        SavedConfiguration.objects.create(name="taken", method="sft")
        job = services.job_launch(base_model=self.base, method="sft", dataset=make_dataset(tmp_path, "sft"))
        response = admin_client.post(reverse("admin:training_job_change", args=[job.pk]),
                                     {"_save_configuration": "1", "configuration_name": "taken"})
        page = html.unescape(response.content.decode())
        assert response.status_code == 200 and "named 'taken' already exists" in page
        assert 'name="configuration_name" id="id_configuration_name" value="taken"' in page
        assert SavedConfiguration.objects.count() == 1


@pytest.mark.django_db
def test_the_service_refuses_an_unknown_preset_method_or_empty_name_and_stores_nothing():
    for kwargs, reason in (({"name": "x", "method": "sft", "preset": "nope"}, "unknown sft preset 'nope'"),
                           ({"name": "x", "method": "ppo"}, "Unknown method 'ppo'"),
                           ({"name": " ", "method": "sft"}, "Give the configuration a name")):
        with pytest.raises(TrainingError) as err:
            saved_configuration_create(**kwargs)
        assert reason in str(err.value)
    assert not SavedConfiguration.objects.exists()


@pytest.mark.django_db
def test_staff_without_the_add_permission_cannot_save_a_configuration(client, tmp_path, broker_queue):
    base = make_model(endpoint=make_endpoint(model_dir="/models/base"))
    job = services.job_launch(base_model=base, method="sft", dataset=make_dataset(tmp_path, "sft"))
    viewer = get_user_model().objects.create_user("viewer", "", "pw-for-tests", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    url = reverse("admin:training_job_change", args=[job.pk])
    assert 'id="job-command"' in client.get(url).content.decode()
    response = client.post(url, {"_save_configuration": "1", "configuration_name": "mine"})
    assert response.status_code == 403 and not SavedConfiguration.objects.exists()
