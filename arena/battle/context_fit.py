"""Whether a turn's conversation fits each side's context: answered before anything reaches an engine.

A side fits when its conversation's prompt tokens plus its answer's ``max_tokens`` (the model's,
capped at ``ARENA_MAX_OUTPUT_TOKENS``) are at most its context length (``ServedModel.context_length``,
which serving's health round stores from vLLM's ``max_model_len``). The prompt tokens are first
bounded without any engine call (``serving.context.chat_token_bound``: most prompts fit by the
bound alone), then counted exactly by the endpoint's ``/tokenize`` (one call per endpoint and
conversation), else the bound stands (a provider without ``/tokenize``: conservative). A model
whose context length is unknown fits; should its engine then refuse the prompt, the consumer
records the error as the rater's (``Response.rater_caused``), never the model's.

First turn (:func:`turn_fit`): a pair with a side that does not fit is drawn again, by the arena's
pairing, among the battle-ready models that fit. Nothing has been shown yet, so the rater cannot
tell; fewer than two that fit refuses the prompt. Later turns: a side that does not fit refuses it.
The refusal (``prompt_too_long``) is the same whichever side is short, and carries no model, token
count or limit, so it says only that one of the two models of this battle cannot read this much;
which one, and what either one's tokenizer made of the text, stay unknown. A refused prompt changes
nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.conf import settings

from arena.errors import ArenaError
from arena.models import Battle
from arena.pairing.contestants import contestants_battle_ready
from arena.pairing.mode import pair_for
from arena.pairing.weighted import PairingError
from serving.context import chat_token_bound, chat_token_count
from serving.models import ServedModel

FIRST_TURN_REFUSAL = "This prompt is too long for the models of this arena; shorten it."
LATER_TURN_REFUSAL = "This conversation has grown too long for this battle; vote now, or start a new battle."


@dataclass(frozen=True)
class TurnFit:
    """The pair that answers turn ``turn_index`` (the battle's own, or a new one on the first turn)."""

    turn_index: int
    model_a_id: int
    model_b_id: int


def answer_tokens(model: ServedModel) -> int:
    """The most tokens the model's answer may take in its context."""
    return model.generation_params(max_tokens=settings.ARENA_MAX_OUTPUT_TOKENS)["max_tokens"]


def models_that_fit(models: list[ServedModel], messages: list[dict]) -> set[int]:
    """The ids of the models whose context holds ``messages`` plus their answer."""
    bound = chat_token_bound(messages)
    counted: dict[int, int | None] = {}
    fit = set()
    for model in models:
        if not model.context_length or bound + answer_tokens(model) <= model.context_length:
            fit.add(model.pk)
            continue
        if model.endpoint_id not in counted:
            # One count per endpoint: a vLLM server's models (its base, its adapters) share one tokenizer.
            counted[model.endpoint_id] = chat_token_count(_counter_of(model, models), messages)
        tokens = counted[model.endpoint_id]
        if (bound if tokens is None else tokens) + answer_tokens(model) <= model.context_length:
            fit.add(model.pk)
    return fit


def _counter_of(model: ServedModel, models: list[ServedModel]) -> ServedModel:
    """The model to count with on ``model``'s endpoint: a base model there if there is one."""
    return next((m for m in models if m.endpoint_id == model.endpoint_id and m.kind != ServedModel.Kind.LORA), model)


def turn_fit(battle: Battle, text: str, rng: random.Random | None = None) -> TurnFit:
    """The pair that answers ``text`` as the battle's next turn; raises ``ArenaError("prompt_too_long")``."""
    user = {"role": "user", "content": text}
    turn_index = battle.turn_total
    if turn_index > 0:
        sides = {side: [*battle.conversation(side), user] for side in ("a", "b")}
        if not all(battle.model(side).pk in models_that_fit([battle.model(side)], sides[side]) for side in "ab"):
            raise ArenaError("prompt_too_long", LATER_TURN_REFUSAL)
        return TurnFit(turn_index, battle.model_a_id, battle.model_b_id)
    pair = [battle.model_a, battle.model_b]
    fit = models_that_fit(pair, [user])
    if {m.pk for m in pair} <= fit:
        return TurnFit(0, battle.model_a_id, battle.model_b_id)
    ready = contestants_battle_ready()
    fit |= models_that_fit([m for m, _ in ready if m.pk not in {p.pk for p in pair}], [user])
    candidates = [(m, weight) for m, weight in ready if m.pk in fit]
    try:
        a_id, b_id = pair_for([m.pk for m, _ in candidates], [weight for _, weight in candidates], rng)
    except PairingError:
        raise ArenaError("prompt_too_long", FIRST_TURN_REFUSAL) from None
    return TurnFit(0, a_id, b_id)
