"""Reads of the arena."""

from __future__ import annotations

import json
import logging
import random
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from arena.models import Battle, Vote
from arena.services import battle_reveal

logger = logging.getLogger(__name__)

# Real arena prompts: arena-hard, MT-bench first turns and the OpenAssistant prompt lottery.
PROMPT_SOURCES = {
    "arena-hard": ("arena_hard_v0.1_question.jsonl", lambda row: row.get("prompt")),
    "mt-bench": ("mt_bench_question.jsonl", lambda row: (row.get("turns") or [None])[0]),
    "oasst": ("oasst_prompt_lottery_en_250.jsonl", lambda row: row if isinstance(row, str) else None),
}


@lru_cache(maxsize=16)
def _load_prompts(directory: str, sources: tuple[str, ...] = tuple(PROMPT_SOURCES), min_chars: int = 10,
                  max_chars: int = 300) -> tuple[str, ...]:
    root = Path(directory)
    prompts: list[str] = []
    for source in sources:
        name, pick = PROMPT_SOURCES[source]
        path = root / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                text = pick(json.loads(line))
            except (ValueError, AttributeError):
                continue
            if isinstance(text, str) and min_chars <= len(text.strip()) <= max_chars:
                prompts.append(text.strip())
    if not prompts:
        logger.warning("no usable %s prompt in %s (ARENA_PROMPTS_DIR)", "/".join(sources), root)
    return tuple(prompts)


def prompt_suggestions(count: int = 3, rng: random.Random | None = None) -> list[str]:
    # Long prompts make poor one-click suggestions for small models.
    prompts = _load_prompts(str(settings.ARENA_PROMPTS_DIR))
    if not prompts:
        return []
    return (rng or random).sample(list(prompts), min(count, len(prompts)))


def arena_prompts(source: str = "arena-hard", max_chars: int = 4000) -> list[str]:
    """The arena's real prompts of one source (``PROMPT_SOURCES``), in file order: what online RL
    trains on and what the evaluation gate asks (training reads arena prompts only through here)."""
    if source not in PROMPT_SOURCES:
        raise ValueError(f"unknown prompt source {source!r}; expected one of {', '.join(PROMPT_SOURCES)}")
    return list(_load_prompts(str(settings.ARENA_PROMPTS_DIR), (source,), 1, max_chars))


def battle_public_state(battle: Battle) -> dict:
    """What anyone holding the battle id may read: anonymous until the vote."""
    state = {
        "battle_id": str(battle.public_id),
        "status": battle.status,
        "turns": battle.turn_total,
        "conversation_a": battle.conversation_a,
        "conversation_b": battle.conversation_b,
    }
    if battle.is_locked():
        state.update(battle_reveal(battle))
        state["winner"] = battle.vote.winner
    return state


def _final_answer(battle: Battle, side: str) -> tuple[list[dict], str] | None:
    """(the side's conversation up to its last user turn, its stripped last answer), or None when
    the side has no usable answer (errored, empty)."""
    conversation = battle.conversation(side)
    if len(conversation) < 2 or conversation[-1]["role"] != "assistant":
        return None
    answer = conversation[-1]["content"].strip()
    return (conversation[:-1], answer) if answer else None


def preference_pairs() -> list[dict]:
    """Decisive counted votes as TRL preference rows (the one selector training reads arena data through).

    prompt = the winner's conversation up to its last user turn; chosen = the
    winner's last answer, rejected = the loser's. Ties, both-bad, identity leaks,
    errored sides and named battles are excluded. In multi-turn battles the two
    sides' earlier answers differ; the winner's history is used as the prompt.
    """
    rows = []
    votes = (
        Vote.objects.counted()
        .filter(winner__in=[Vote.Winner.MODEL_A, Vote.Winner.MODEL_B])
        .select_related("battle")
        .order_by("created_at")
    )
    for vote in votes.iterator():
        winner, loser = ("a", "b") if vote.winner == Vote.Winner.MODEL_A else ("b", "a")
        won, lost = _final_answer(vote.battle, winner), _final_answer(vote.battle, loser)
        if won is None or lost is None or won[1] == lost[1]:
            continue
        rows.append({
            "prompt": won[0],
            "chosen": [{"role": "assistant", "content": won[1]}],
            "rejected": [{"role": "assistant", "content": lost[1]}],
        })
    return rows


def unpaired_feedback() -> list[dict]:
    """Every counted vote as KTO rows (prompt, completion, label), each side with its own prompt.

    A decisive vote gives one desirable and one undesirable answer, "both are bad" two
    undesirable ones, a plain tie two desirable ones (the voter had "both are bad" to press
    and did not). Identity leaks, errored or empty sides and named battles are excluded as
    for ``preference_pairs``.
    """
    labels = {
        Vote.Winner.MODEL_A: {"a": True, "b": False},
        Vote.Winner.MODEL_B: {"a": False, "b": True},
        Vote.Winner.TIE: {"a": True, "b": True},
        Vote.Winner.BOTH_BAD: {"a": False, "b": False},
    }
    rows = []
    for vote in Vote.objects.counted().select_related("battle").order_by("created_at").iterator():
        for side, label in labels[vote.winner].items():
            answer = _final_answer(vote.battle, side)
            if answer is not None:
                rows.append({"prompt": answer[0], "completion": [{"role": "assistant", "content": answer[1]}],
                             "label": label})
    return rows
