"""Reads of the arena."""

from __future__ import annotations

import json
import logging
import random
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from arena.models import Battle

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _load_prompts(directory: str) -> tuple[str, ...]:
    """Real arena prompts: arena-hard, MT-bench first turns and the OpenAssistant prompt lottery."""
    root = Path(directory)
    prompts: list[str] = []
    sources = {
        "arena_hard_v0.1_question.jsonl": lambda row: row.get("prompt"),
        "mt_bench_question.jsonl": lambda row: (row.get("turns") or [None])[0],
        "oasst_prompt_lottery_en_250.jsonl": lambda row: row if isinstance(row, str) else None,
    }
    for name, pick in sources.items():
        path = root / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                text = pick(json.loads(line))
            except (ValueError, AttributeError):
                continue
            # Long prompts make poor one-click suggestions for small models.
            if isinstance(text, str) and 10 <= len(text) <= 300:
                prompts.append(text.strip())
    if not prompts:
        logger.warning("no prompt suggestions: no usable prompt in %s (ARENA_PROMPTS_DIR)", root)
    return tuple(prompts)


def prompt_suggestions(count: int = 3, rng: random.Random | None = None) -> list[str]:
    prompts = _load_prompts(str(settings.ARENA_PROMPTS_DIR))
    if not prompts:
        return []
    return (rng or random).sample(list(prompts), min(count, len(prompts)))


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
        from arena.services import battle_reveal

        state.update(battle_reveal(battle))
        state["winner"] = battle.vote.winner
    return state


def preference_pairs() -> list[dict]:
    """Decisive counted votes as TRL preference rows (the one selector training reads arena data through).

    prompt = the winner's conversation up to its last user turn; chosen = the
    winner's last answer, rejected = the loser's. Ties, both-bad, identity leaks,
    errored sides and named battles are excluded. In multi-turn battles the two
    sides' earlier answers differ; the winner's history is used as the prompt.
    """
    from arena.models import Vote

    rows = []
    votes = (
        Vote.objects.counted()
        .filter(winner__in=[Vote.Winner.MODEL_A, Vote.Winner.MODEL_B])
        .select_related("battle")
        .order_by("created_at")
    )
    for vote in votes.iterator():
        battle = vote.battle
        winner, loser = ("a", "b") if vote.winner == Vote.Winner.MODEL_A else ("b", "a")
        won, lost = battle.conversation(winner), battle.conversation(loser)
        if len(won) < 2 or won[-1]["role"] != "assistant" or lost[-1]["role"] != "assistant":
            continue
        chosen, rejected = won[-1]["content"].strip(), lost[-1]["content"].strip()
        if not chosen or not rejected or chosen == rejected:
            continue
        rows.append({
            "prompt": won[:-1],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        })
    return rows
