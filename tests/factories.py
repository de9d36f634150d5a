"""Plain `make_*` helpers for rows the tests need."""

from __future__ import annotations

import itertools

from arena.models import Battle, Contestant, Response, Turn
from serving.models import Endpoint, ServedModel

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
