"""The gate checked against people: per judge, how often its verdict matches the human board."""

from __future__ import annotations

import pytest
from django.urls import reverse

from arena.leaderboard import services as leaderboard_services
from serving.models import ServedModel
from tests.factories import make_model, make_vote
from training.gate_agreement import gate_agreement
from training.models import Checkpoint, Dataset, GateRun, Job


def make_checkpoint(new: ServedModel, parent: ServedModel, tmp_path) -> Checkpoint:
    """A finished fine-tune of ``parent`` served as ``new`` (one dataset per checkpoint)."""
    ServedModel.objects.filter(pk=new.pk).update(parent=parent, kind=ServedModel.Kind.LORA)
    path = tmp_path / f"{new.public_name}.jsonl"
    path.write_text("{}\n")
    dataset = Dataset.objects.create(name=new.public_name, kind="sft", format="messages", source="upload",
                                     file=str(path))
    job = Job.objects.create(base_model=parent, method="sft", dataset=dataset, config={}, status="succeeded")
    return Checkpoint.objects.create(job=job, weights_dir="/a", base_model=parent, served_model=new)


def gate(checkpoint, opponent, win_rate, kind="reward", name="rm-1"):
    return GateRun.objects.create(checkpoint=checkpoint, opponent=opponent, judge_kind=kind, judge_name=name,
                                  status=GateRun.Status.DONE, win_rate=win_rate, num_prompts=20)


@pytest.mark.django_db
def test_the_agreement_per_judge_counts_gated_models_with_human_votes(tmp_path, admin_client, settings):
    settings.ARENA_LEADERBOARD_PROVISIONAL_VOTES = 0
    base, good, bad, unseen = (make_model(public_name=n) for n in ("base", "good-ft", "bad-ft", "unseen-ft"))
    ck_good, ck_bad = make_checkpoint(good, base, tmp_path), make_checkpoint(bad, base, tmp_path)
    gate(ck_good, base, 0.70)                          # reward model: new is better; people agree
    gate(ck_bad, base, 0.65)                           # reward model: new is better; people disagree
    gate(ck_good, base, 0.60, "llm", "judge-a")        # LLM judge: agrees
    gate(ck_bad, base, 0.50, "llm", "judge-a")         # exactly ½: no verdict
    gate(make_checkpoint(unseen, base, tmp_path), base, 0.9)  # no human votes: not counted
    GateRun.objects.create(checkpoint=ck_good, opponent=base, status=GateRun.Status.FAILED, judge_kind="reward")
    assert gate_agreement() == []  # no board yet
    for k in range(10):
        make_vote(good, base, "model_a" if k < 8 else "model_b")
        make_vote(bad, base, "model_b" if k < 8 else "model_a")
    leaderboard_services.snapshot_create()
    reward, llm = gate_agreement()
    assert (reward.judge_kind, reward.n, reward.agree, reward.rate) == ("reward", 2, 1, 0.5)
    low, high = reward.interval
    assert low < 0.5 < high and high - low > 0.5  # two pairs say little, and the interval shows it
    assert (llm.judge_name, llm.n, llm.agree) == ("judge-a", 1, 1)
    page = admin_client.get(reverse("admin:training_checkpoint_change", args=[ck_good.pk])).content.decode()
    assert "Does the gate agree with people?" in page and "reward rm-1" in page and "50%" in page
