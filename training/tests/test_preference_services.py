"""Beyond SFT and DPO, on the web side: arena votes as KTO rows, arena prompts as a prompt
dataset, launching reward/GRPO/KTO/pretrain jobs with their checks, a reward model recorded
as a scorer (never a contestant) with its accuracy in the admin, and lineage through it."""

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import make_endpoint, make_model, make_vote
from tests.helpers import shared_data_file
from training import services
from training.formats import load_normalised
from training.models import Checkpoint, Dataset, Job
from training.scorers import accuracy_interval, accuracy_text


def rows_of(dataset: Dataset) -> list[dict]:
    return [json.loads(line) for line in Path(dataset.file).read_text().splitlines()]


def make_dataset(tmp_path, name: str, kind: str, fmt: str) -> Dataset:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("{}\n")
    return Dataset.objects.create(name=name, kind=kind, format=fmt, source="upload", file=str(path))


@pytest.mark.django_db
class TestArenaData:
    def test_every_counted_vote_becomes_kto_rows(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        a, b = make_model(), make_model()
        make_vote(a, b, "model_b", answers=("Weak", "Strong"), prompt="Q1")
        make_vote(a, b, "tie (bothbad)", answers=("Bad one", "Bad two"), prompt="Q2")
        make_vote(a, b, "tie", answers=("Fine one", "Fine two"), prompt="Q3")
        make_vote(a, b, "model_a", identity_leak=True)
        dataset = services.dataset_from_arena_votes(name="kto-votes", unpaired=True)
        assert dataset.kind == "unpaired" and dataset.format == "kto"
        got = [(r["prompt"][-1]["content"], r["completion"][0]["content"], r["label"]) for r in rows_of(dataset)]
        assert got == [("Q1", "Weak", False), ("Q1", "Strong", True), ("Q2", "Bad one", False),
                       ("Q2", "Bad two", False), ("Q3", "Fine one", True), ("Q3", "Fine two", True)]
        # what is stored re-reads as a valid KTO dataset (the recipe's own check)
        assert len(load_normalised(dataset.file, "unpaired")) == 6

    def test_arena_hard_prompts_become_a_prompt_dataset(self, settings, tmp_path):
        source = shared_data_file("arena_prompts/arena_hard_v0.1_question.jsonl")
        settings.ARENA_PROMPTS_DIR = source.parent
        settings.ARENA_DATA_DIR = tmp_path
        dataset = services.dataset_from_arena_prompts(name="prompts")
        rows = rows_of(dataset)
        questions = [json.loads(line)["prompt"].strip() for line in source.read_text().splitlines()]
        # the 500 arena-hard questions but a handful longer than 4,000 characters, less the gate's 100
        expected = [q for q in questions if 1 <= len(q) <= 4000][:-100]
        assert 350 < len(expected) < 400
        assert dataset.kind == "prompt" and [r["prompt"][0]["content"] for r in rows] == expected
        assert {r["prompt"][0]["role"] for r in rows} == {"user"}


@pytest.mark.django_db
class TestLaunchChecks:
    @pytest.fixture(autouse=True)
    def _base(self, tmp_path):
        self.base = make_model(public_name="base", endpoint=make_endpoint(model_dir="/m"))
        self.pairs = make_dataset(tmp_path, "pairs", "preference", "preference")
        self.prompts = make_dataset(tmp_path, "prompts", "prompt", "prompts")

    def checkpoint(self, method: str, kind: str) -> Checkpoint:
        job = Job.objects.create(base_model=self.base, method=method, dataset=self.pairs, config={},
                                 status="succeeded")
        return Checkpoint.objects.create(job=job, weights_dir="/a", base_model=self.base, kind=kind,
                                         final_metrics={"heldout_accuracy": 0.62, "heldout_rows": 40})

    def test_grpo_needs_a_scorer_of_the_same_base(self, broker_queue):
        with pytest.raises(services.TrainingError, match="GRPO trains against a reward model"):
            services.job_launch(base_model=self.base, method="grpo", dataset=self.prompts, preset_name="cpu-smoke")
        contestant = self.checkpoint("sft", "contestant")
        with pytest.raises(services.TrainingError, match="GRPO trains against a reward model"):
            services.job_launch(base_model=self.base, method="grpo", dataset=self.prompts, reward_model=contestant)
        scorer = self.checkpoint("reward", "scorer")
        job = services.job_launch(base_model=self.base, method="grpo", dataset=self.prompts, preset_name="cpu-smoke",
                                  reward_model=scorer, init_checkpoint=contestant)
        assert job.reward_model == scorer and job.config["num_generations"] == 4

    def test_only_grpo_takes_a_reward_model_and_a_scorer_is_never_continued(self):
        scorer = self.checkpoint("reward", "scorer")
        with pytest.raises(services.TrainingError, match="Only GRPO takes a reward model"):
            services.job_launch(base_model=self.base, method="dpo", dataset=self.pairs, reward_model=scorer)
        with pytest.raises(services.TrainingError, match="cannot be continued as a policy"):
            services.job_launch(base_model=self.base, method="dpo", dataset=self.pairs, init_checkpoint=scorer)

    def test_each_method_needs_its_dataset_kind(self):
        with pytest.raises(services.TrainingError, match="KTO needs an unpaired dataset"):
            services.job_launch(base_model=self.base, method="kto", dataset=self.pairs)
        with pytest.raises(services.TrainingError, match="PRETRAIN needs a text dataset"):
            services.job_launch(base_model=self.base, method="pretrain", dataset=self.pairs)
        with pytest.raises(services.TrainingError, match="per_device_train_batch_size: KTO needs at least 2"):
            services.job_launch(base_model=self.base, method="kto",
                                dataset=make_dataset(Path(self.pairs.file).parent, "u", "unpaired", "kto"),
                                overrides=["batch_size=1"])

    def test_a_reward_model_is_registered_as_a_scorer_not_a_contestant(self, client):
        job = Job.objects.create(base_model=self.base, method="reward", dataset=self.pairs, config={},
                                 status="running")
        checkpoint = services.job_register_checkpoint(
            job, {"adapter_dir": "/r", "metrics": {"heldout_accuracy": 0.6, "heldout_rows": 20}})
        assert checkpoint.kind == "scorer" and checkpoint.served_model is None
        assert checkpoint.heldout_accuracy() == 0.6
        client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
        page = client.get(reverse("admin:training_checkpoint_change", args=[checkpoint.pk])).content.decode()
        assert "Reward model (a scorer, not a contestant)" in page and "60.0% of 20 held-out pairs" in page
        listing = client.get(reverse("admin:training_checkpoint_changelist")).content.decode()
        assert "Scorer (reward model)" in listing

    def test_lineage_names_the_reward_model_a_policy_learned_against(self):
        sft = self.checkpoint("sft", "contestant")
        scorer = self.checkpoint("reward", "scorer")
        job = Job.objects.create(base_model=self.base, method="grpo", dataset=self.prompts, config={},
                                 init_checkpoint=sft, reward_model=scorer)
        grpo = Checkpoint.objects.create(job=job, weights_dir="/g", base_model=self.base, parent=sft)
        assert grpo.lineage() == ["base", f"sft j{sft.job_id}", f"grpo j{job.pk} (reward j{scorer.job_id})"]

    def test_the_admin_launches_grpo_with_a_reward_model_and_refuses_it_without(self, client, broker_queue,
                                                                               django_capture_on_commit_callbacks):
        client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
        scorer = self.checkpoint("reward", "scorer")
        form = {"base_model": self.base.pk, "method": "grpo", "dataset": self.prompts.pk, "preset": "cpu-smoke"}
        response = client.post(reverse("admin:training_job_add"), form)
        assert response.status_code == 200 and "GRPO trains against a reward model" in response.content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("admin:training_job_add"), {**form, "reward_model": scorer.pk})
        assert response.status_code == 302, response.content[:3000]
        job = Job.objects.get(method="grpo")
        assert job.reward_model == scorer and [m["args"] for m in broker_queue("training")] == [[job.pk]]


def test_a_reward_models_accuracy_interval_is_wilsons_and_says_whether_it_beats_chance():
    from scipy.stats import binomtest


    for wins, n in ((179, 300), (3, 6), (0, 10), (40, 40)):
        expected = binomtest(wins, n).proportion_ci(confidence_level=0.95, method="wilson")
        low, high = accuracy_interval(wins / n, n)
        assert low == pytest.approx(expected.low, abs=1e-3) and high == pytest.approx(expected.high, abs=1e-3)
    assert accuracy_text(179 / 300, 300).endswith("above chance; chance is 50%)")
    assert "not distinguishable from chance" in accuracy_text(0.55, 160)
    assert "below chance" in accuracy_text(0.3, 200)
