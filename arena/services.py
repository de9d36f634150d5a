"""Writes of the arena: creating battles, turns, finishing sides, voting.

Every function validates its input and raises ``ArenaError`` with a code and a
message safe to show to the rater; on error nothing is changed.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Avg
from django.urls import reverse
from django.utils import timezone

from arena import metrics
from arena.abuse import limits
from arena.battle.context_fit import TurnFit, turn_fit
from arena.battle.costs import response_account
from arena.errors import ArenaError
from arena.leaderboard.refresh import ratings_refresh_soon
from arena.leaderboard.selectors import overall_row, snapshot_latest
from arena.models import Battle, RatingSnapshot, Response, Turn, Vote
from arena.pairing.contestants import contestants_battle_ready, contestants_count_vote
from arena.pairing.mode import pair_for
from arena.pairing.weighted import PairingError
from arena.quality import rules as quality
from arena.quality.identity import find_identity_words
from arena.style import approx_tokens, style_counts
from serving.models import ServedModel
from serving.streaming import ModelTarget


def account_rater_id(user) -> str:
    """The rater id of a signed-in account (ARENA_REQUIRE_LOGIN): stable, and not the username."""
    return f"user-{user.pk}"


def battle_create(*, rater_id: str, ip_hash: str = "", rng: random.Random | None = None) -> Battle:
    """Start a battle between two distinct battle-ready models chosen by sampling weight.

    The limit check and the insert share one transaction holding the rater's and IP hash's
    limit lock (``arena.abuse.limits``), so parallel sockets cannot overshoot the limit."""
    with transaction.atomic():
        limits.check_battle(rater_id, ip_hash)
        ready = contestants_battle_ready()
        try:
            a_id, b_id = pair_for([m.pk for m, _ in ready], [weight for _, weight in ready], rng)
        except PairingError:
            raise ArenaError("no_models", "Fewer than two models are available right now; try again shortly.") from None
        by_id = {m.pk: m for m, _ in ready}
        battle = Battle.objects.create(model_a=by_id[a_id], model_b=by_id[b_id], rater_id=rater_id, ip_hash=ip_hash)
    metrics.BATTLES.inc()
    return battle


def _locked_battle(battle_id, rater_id: str) -> Battle:
    try:
        public_id = uuid.UUID(str(battle_id))
        # of=("self",): lock the battle row only. Without it PostgreSQL also locks the joined model and
        # endpoint rows, in a different order for every battle, and concurrent votes deadlock.
        battle = (
            Battle.objects.select_for_update(of=("self",))
            .select_related("model_a__endpoint", "model_b__endpoint")
            .get(public_id=public_id)
        )
    except (ValueError, Battle.DoesNotExist):
        raise ArenaError("unknown_battle", "There is no such battle.") from None
    if battle.rater_id != rater_id:
        # Same answer as for a missing battle: don't confirm that someone else's battle exists.
        raise ArenaError("unknown_battle", "There is no such battle.")
    return battle


@dataclass(frozen=True)
class TurnPlan:
    """What the consumer needs to stream one turn, with no ORM objects inside."""

    battle_id: str
    turn_index: int
    response_ids: dict[str, int]
    messages: dict[str, list[dict]]
    targets: dict[str, ModelTarget]


#: Below these, langdetect's answer is noise ("hi" -> Swahili, "Write a haiku about autumn" -> Estonian),
#: and the leaderboard's language tabs depend on the label: short prompts stay unlabelled.
LANGUAGE_MIN_WORDS = 4
LANGUAGE_MIN_LETTERS = 15
LANGUAGE_MIN_CJK_CHARS = 8
LANGUAGE_MIN_PROBABILITY = 0.90


def _detect_language(text: str) -> str:
    """The prompt's langdetect code, or "" when the text is too short or the guess is not confident."""
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    letters = sum(ch.isalpha() for ch in text)
    words = len(re.findall(r"\w+", text))
    cjk = sum("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)
    if cjk < LANGUAGE_MIN_CJK_CHARS and (words < LANGUAGE_MIN_WORDS or letters < LANGUAGE_MIN_LETTERS):
        return ""
    DetectorFactory.seed = 0  # langdetect is random unless seeded
    try:
        best = detect_langs(text)[0]
    except (LangDetectException, IndexError):
        return ""
    return best.lang if best.prob >= LANGUAGE_MIN_PROBABILITY else ""


def battle_turn_begin(*, battle_id, rater_id: str, text) -> TurnPlan:
    """Append the user's prompt to both sides and open a pending response on each.

    First, outside the transaction (it may ask the engines to count tokens), whether the conversation
    fits both sides' contexts (``arena.battle.context_fit``): on the first turn a pair that does not fit is
    drawn again among the models that fit, later the prompt is refused. A refused prompt changes nothing.
    """
    if not isinstance(text, str) or not text.strip():
        raise ArenaError("empty_prompt", "Type a prompt first.")
    if len(text) > settings.ARENA_MAX_PROMPT_CHARS:
        raise ArenaError(
            "prompt_too_long", f"The prompt is {len(text)} characters; the limit is {settings.ARENA_MAX_PROMPT_CHARS}."
        )
    return _turn_open(battle_id=battle_id, rater_id=rater_id, text=text, fit=_turn_fit(battle_id, rater_id, text))


def _turn_fit(battle_id, rater_id: str, text: str) -> TurnFit | None:
    """The pair for the next turn, or None where the battle cannot take one (``_turn_open`` says why)."""
    try:
        battle = Battle.objects.select_related("model_a__endpoint", "model_b__endpoint").get(
            public_id=uuid.UUID(str(battle_id)))
    except (ValueError, Battle.DoesNotExist):
        return None
    if battle.rater_id != rater_id or battle.is_locked() or battle.turn_total >= settings.ARENA_MAX_TURNS:
        return None
    return turn_fit(battle, text)


@transaction.atomic
def _turn_open(*, battle_id, rater_id: str, text: str, fit: TurnFit | None) -> TurnPlan:
    battle = _locked_battle(battle_id, rater_id)
    if battle.is_locked():
        raise ArenaError("battle_closed", "This battle has been voted on; start a new round.")
    if Response.objects.filter(turn__battle=battle, state=Response.State.PENDING).exists():
        raise ArenaError("busy", "Wait for both answers before sending another prompt.")
    limits.check_generation(battle.rater_id, battle.ip_hash)
    turn_index = battle.turn_total
    if turn_index >= settings.ARENA_MAX_TURNS:
        raise ArenaError("too_many_turns", f"This battle has reached its {settings.ARENA_MAX_TURNS} turns; vote now.")
    if fit is None or fit.turn_index != turn_index:  # another prompt got in first: the fit was judged on another
        raise ArenaError("busy", "Wait for both answers before sending another prompt.")
    if (fit.model_a_id, fit.model_b_id) != (battle.model_a_id, battle.model_b_id):
        # First turn only (turn_fit): nothing was shown yet, so the new pair is invisible to the rater.
        battle.model_a, battle.model_b = (ServedModel.objects.select_related("endpoint").get(pk=pk)
                                          for pk in (fit.model_a_id, fit.model_b_id))
        battle.save(update_fields=["model_a", "model_b", "updated_at"])

    turn = Turn.objects.create(battle=battle, index=turn_index, prompt=text)
    user_message = {"role": "user", "content": text}
    battle.conversation_a = [*battle.conversation_a, user_message]
    battle.conversation_b = [*battle.conversation_b, user_message]
    if turn_index == 0:
        battle.language = _detect_language(text)
    battle.turn_total = turn_index + 1
    battle.prompt_tokens = max(battle.prompt_tokens, approx_tokens(text))
    battle.save(update_fields=["conversation_a", "conversation_b", "language", "turn_total", "prompt_tokens", "updated_at"])
    targets = {
        side: ModelTarget.of(battle.model(side), max_tokens=settings.ARENA_MAX_OUTPUT_TOKENS) for side in ("a", "b")
    }
    response_ids = {
        side: Response.objects.create(
            turn=turn, side=side, model=battle.model(side), generation=targets[side].params,
            adapter_sha256=battle.model(side).adapter_sha256,
        ).pk
        for side in ("a", "b")
    }
    return TurnPlan(
        battle_id=str(battle.public_id),
        turn_index=turn_index,
        response_ids=response_ids,
        messages={"a": list(battle.conversation_a), "b": list(battle.conversation_b)},
        targets=targets,
    )


@transaction.atomic
def battle_side_finish(
    *, response_id: int, state: str, content: str, finish_reason: str = "", error: str = "",
    ttft_ms: float | None = None, tokens_per_s: float | None = None, completion_tokens: int | None = None,
    prompt_tokens: int | None = None, rater_caused: bool = False,
) -> Response:
    """Record one side's answer (with its usage and cost, ``arena.battle.costs``) and append it to that side's conversation.
    ``rater_caused``: the rater's input caused the error (kept out of error holds, ``arena.serving_stats``)."""
    response = Response.objects.select_related("turn", "model").get(pk=response_id)
    battle = Battle.objects.select_for_update().get(pk=response.turn.battle_id)
    if response.state != Response.State.PENDING:
        return response
    response.state = state
    response.content = content
    response.finish_reason = finish_reason
    response.error = error[:4000]
    response.rater_caused = rater_caused and state == Response.State.ERROR
    response.ttft_ms, response.tokens_per_s, response.completion_tokens = ttft_ms, tokens_per_s, completion_tokens
    if settings.ARENA_ACCOUNTING:
        response_account(response, battle.conversation(response.side), prompt_tokens=prompt_tokens)
    response.finished_at = timezone.now()
    response.save()
    # The assistant turn is kept even when empty, so the next user turn alternates roles correctly.
    message = {"role": "assistant", "content": content}
    if response.side == "a":
        battle.conversation_a = [*battle.conversation_a, message]
    else:
        battle.conversation_b = [*battle.conversation_b, message]
    battle.save(update_fields=[f"conversation_{response.side}", "updated_at"])
    metrics.generation_finished(model_id=battle.model_a_id if response.side == "a" else battle.model_b_id,
                                errored=state == Response.State.ERROR, ttft_ms=ttft_ms)
    return response


VOTE_CHOICES = {choice.value for choice in Vote.Winner}


def _standing(snapshot: RatingSnapshot | None, name: str) -> dict | None:
    """A model's place on the latest overall board as the reveal shows it, or None before it has one.

    ``rank`` is null while the model is ``provisional`` (too few votes or too wide an interval).
    """
    row = overall_row(snapshot, name) if snapshot is not None else None
    if row is None:
        return None
    # Board rows always hold finite points and a vote count (boards.board_rows); older snapshots
    # may lack "rank" and "provisional".
    return {"rating": round(row["rating"]), "ci_low": round(row["ci_low"]), "ci_high": round(row["ci_high"]),
            "rank": row.get("rank"), "provisional": bool(row.get("provisional")), "votes": row["battles"],
            "page": reverse("model_page", args=[name])}


def battle_reveal(battle: Battle) -> dict:
    """The names shown after the vote, with each side's standing on the latest overall board (the
    same figures as the board, marked provisional as there). Never call before the battle is voted."""
    assert battle.is_locked(), "models are revealed only after the vote"
    snapshot = snapshot_latest()

    def describe(side: str) -> dict:
        model = battle.model(side)
        # Speeds go here, not in the pre-vote frames: they would tell a small model from a large one.
        speed = Response.objects.filter(turn__battle=battle, side=side, state=Response.State.DONE).aggregate(
            ttft_ms=Avg("ttft_ms"), tokens_per_s=Avg("tokens_per_s"))
        return {"name": model.public_name, "organization": model.organization, "license": model.license, **speed,
                "standing": _standing(snapshot, model.public_name)}

    return {"model_a": describe("a"), "model_b": describe("b")}


def battle_vote(*, battle_id, rater_id: str, winner, ip_hash: str = "") -> Vote:
    """Record the one vote of a battle, flag identity leaks, lock the battle."""
    if not isinstance(winner, str) or winner not in VOTE_CHOICES:
        raise ArenaError("bad_vote", f"winner must be one of {sorted(VOTE_CHOICES)}")
    # Before the transaction: moderation may call an HTTP endpoint.
    moderated = quality.battle_moderated(battle_id)
    try:
        with transaction.atomic():
            battle = _locked_battle(battle_id, rater_id)
            if battle.is_locked():
                raise ArenaError("already_voted", "This battle already has a vote.")
            responses = list(Response.objects.filter(turn__battle=battle))
            if not responses:
                raise ArenaError("nothing_to_vote", "Send a prompt and read both answers before voting.")
            if any(r.state == Response.State.PENDING for r in responses):
                raise ArenaError("not_finished", "Wait until both answers have finished.")
            limits.check_vote(rater_id, ip_hash)
            answers = [r.content for r in responses]
            leaks = find_identity_words(answers, quality.identity_words())
            checks = quality.vote_checks(battle=battle, responses=responses, rater_id=rater_id, ip_hash=ip_hash,
                                         moderated=moderated, now=timezone.now())
            vote = Vote.objects.create(
                battle=battle, winner=winner, rater_id=rater_id, ip_hash=ip_hash,
                identity_leak=bool(leaks), identity_words=leaks, style=_style_of(responses),
                side_error=any(r.state == Response.State.ERROR for r in responses), **checks,
            )
            battle.status = Battle.Status.VOTED
            battle.save(update_fields=["status", "updated_at"])
            contestants_count_vote(vote)
            transaction.on_commit(_after_vote)
            transaction.on_commit(lambda: metrics.vote_recorded(vote))
    except IntegrityError:
        # Two concurrent votes: the database's unique constraint let exactly one through.
        raise ArenaError("already_voted", "This battle already has a vote.") from None
    vote.battle = battle
    return vote


def _style_of(responses: list[Response]) -> dict:
    """Style counts per side over all its answers; real token counts where the engine reported them."""
    style = {}
    for side in ("a", "b"):
        mine = [r for r in responses if r.side == side]
        text = "\n\n".join(r.content for r in mine)
        real = all(r.completion_tokens and not r.usage_estimated for r in mine)
        tokens = sum(r.completion_tokens for r in mine) if real else None
        counts = style_counts(text, tokens=tokens)
        style[side] = {"tokens": counts.tokens, "headers": counts.headers, "lists": counts.lists, "bold": counts.bold}
    return style


def _after_vote() -> None:
    ratings_refresh_soon()
