"""Plain `make_*` helpers for rows the tests need.

Votes: :func:`make_vote` is the one way to put a vote in the database as test data. A test of
the vote itself (who may vote, flags, locking) goes through ``arena.services.battle_vote``.
"""

from __future__ import annotations

import datetime as dt
import itertools

from django.db import transaction
from django.utils import timezone

from arena.models import Battle, Contestant, Response, Turn, Vote
from serving.models import Endpoint, ServedModel
from training.models import Checkpoint, Dataset, GateRun, Job

_counter = itertools.count(1)


def make_endpoint(**overrides) -> Endpoint:
    n = next(_counter)
    values = {"name": f"endpoint-{n}", "base_url": f"http://127.0.0.1:9/v{n}", "healthy": True}
    values.update(overrides)
    return Endpoint.objects.create(**values)


CONTESTANT_FIELDS = ("sampling_weight", "boost_weight", "boost_votes_left")


def make_model(**overrides) -> ServedModel:
    """A served model; any of CONTESTANT_FIELDS given also makes its arena.Contestant row."""
    n = next(_counter)
    if "endpoint" not in overrides:
        overrides["endpoint"] = make_endpoint()
    contestant = {name: overrides.pop(name) for name in CONTESTANT_FIELDS if name in overrides}
    values = {"public_name": f"model-{n}", "engine_model_id": f"engine-model-{n}", "organization": f"Org {n}"}
    values.update(overrides)
    model = ServedModel.objects.create(**values)
    if contestant:
        Contestant.objects.create(served_model=model, **contestant)
    return model


def make_finished_battle(*, rater_id: str = "rater-1", answers=("Answer A", "Answer B"), states=("done", "done"),
                         model_a=None, model_b=None, prompt="Hello?") -> Battle:
    """A battle with one finished turn, as if both sides had streamed."""
    model_a = model_a or make_model()
    model_b = model_b or make_model()
    battle = Battle.objects.create(
        model_a=model_a, model_b=model_b, rater_id=rater_id, turn_total=1, prompt_tokens=len(prompt.split()),
        conversation_a=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answers[0]}],
        conversation_b=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answers[1]}],
    )
    turn = Turn.objects.create(battle=battle, index=0, prompt=prompt)
    for side, model, answer, state in zip("ab", (model_a, model_b), answers, states, strict=True):
        Response.objects.create(turn=turn, side=side, model=model, content=answer, state=state)
    return battle


_clock = itertools.count()
DEFAULT_STYLE = {"a": {"tokens": 50, "headers": 0, "lists": 1, "bold": 0},
                 "b": {"tokens": 80, "headers": 1, "lists": 0, "bold": 2}}


def make_vote(model_a=None, model_b=None, winner="model_a", *, mode="anony", identity_leak=False, side_error=False,
              language="", turns=1, prompt_tokens=10, style=None, created_at=None, rater_id="rater",
              **battle_fields) -> Vote:
    """A stored vote on a new finished battle, with the category facts given.

    ``battle_fields`` (``answers``, ``prompt``) go to :func:`make_finished_battle`. Vote times
    strictly increase, so vote order and time order agree as in a live arena. One transaction (one
    commit instead of six where a test runs in autocommit, transactional_db: most of the time there).
    """
    with transaction.atomic(savepoint=False):
        battle = make_finished_battle(model_a=model_a, model_b=model_b, rater_id=rater_id, **battle_fields)
        Battle.objects.filter(pk=battle.pk).update(
            status=Battle.Status.VOTED, mode=mode, language=language, turn_total=turns, prompt_tokens=prompt_tokens
        )
        when = created_at or timezone.now() + dt.timedelta(microseconds=next(_clock))
        return Vote.objects.create(battle=battle, winner=winner, rater_id=rater_id, identity_leak=identity_leak,
                                   side_error=side_error, style=DEFAULT_STYLE if style is None else style,
                                   created_at=when)


def make_checkpoint(*, base=None, dataset=None, method="sft", parent=None, weights_dir="/nonexistent/adapter",
                    served=True, gate=None, finetuning_type="lora", **contestant) -> Checkpoint:
    """A succeeded job's checkpoint (no training run): its served LoRA contestant when ``served``,
    with a Contestant row from ``contestant`` fields, and a parent gate run from ``gate``
    (``{"win_rate", "passed", …}`` GateRun fields, status done)."""

    n = next(_counter)
    base = base or make_model(public_name=f"base-{n}", kind="base")
    dataset = dataset or Dataset.objects.create(name=f"data-{n}", kind="sft", format="messages", source="upload",
                                                file=f"/nonexistent/data-{n}.jsonl", row_count=10)
    job = Job.objects.create(base_model=base, method=method, dataset=dataset, preset="cpu-smoke", config={"max_steps": 2},
                             status=Job.Status.SUCCEEDED, step=2, total_steps=2, finished_at=timezone.now(),
                             init_checkpoint=parent)
    model = None
    if served:
        model = make_model(public_name=job.contestant_name(), kind="lora", parent=parent.served_model if parent else base,
                           endpoint=base.endpoint, engine_model_id=job.contestant_name(), adapter_path=weights_dir,
                           **contestant)
    checkpoint = Checkpoint.objects.create(job=job, weights_dir=weights_dir, base_model=base, parent=parent,
                                           served_model=model, finetuning_type=finetuning_type)
    if gate is not None:
        GateRun.objects.create(checkpoint=checkpoint, opponent=base, opponent_role="parent", judge_kind="reward",
                               judge_name="reward j0", num_prompts=20, status=GateRun.Status.DONE,
                               **{"ci_low": gate.get("win_rate", 0.5) - 0.2, "ci_high": gate.get("win_rate", 0.5) + 0.2,
                                  **gate})
    return checkpoint
