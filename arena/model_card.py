"""A contestant's public page: what the arena knows about one model, read from its own records.

Contract: read-only; everything shown is already public on the leaderboard or in voted battles.
* :func:`model_card` gathers, for a served model's public name: its facts and lineage (the
  ``parent`` chain in serving: base → SFT → DPO …), its current overall rating and its history
  over the stored snapshots, its record against each opponent, and a few recent voted anonymous
  battles (prompt and both answers).
* Everything counted comes from the latest rating snapshot: the record and the examples use only
  votes that count and that the snapshot already holds (id up to its ``last_vote_id``), so the
  page moves only when the board does. A live count would tell an attacker, vote by vote, which
  of its votes were left out. Example battles are those of counted votes only: an excluded
  vote's battle may hold moderated text or a leaked name.
* The card is cached (Django's default cache) under the snapshot's id, for ``CACHE_SECONDS`` at
  most: one build per snapshot and model, whatever the traffic.
* Only public contestants have a page (:func:`is_public`): a model on the latest overall board
  (retired models and imported placeholders included), or an active model that battles. A
  model held back (sampling weight 0: the training gate has not admitted it), or inactive and
  not on the board, does not, and neither does an unknown name: all raise
  ``ServedModel.DoesNotExist`` alike (the view answers 404 and confirms nothing).
* Siblings: the runs of the same recipe (same parent, dataset and method), held-back ones
  included, come from the providers in ``SIBLING_PROVIDERS`` (the training app registers
  ``training.siblings.model_siblings``; the arena never imports training). A provider gets
  :func:`is_public` and names only siblings that pass it; siblings are read afresh on each
  request, never cached, so a sibling held back a moment ago is no longer named.
* Nothing names a rater: no rater id, no IP hash, no session ever leaves this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q

from arena.leaderboard.selectors import overall_row, snapshot_latest
from arena.models import Battle, Contestant, RatingSnapshot, Response, Vote
from serving.models import ServedModel

#: How many stored snapshots the history reads (newest last); one per refit, so a day of votes at most.
HISTORY_SNAPSHOTS = 120
EXAMPLE_BATTLES = 4
EXAMPLE_CHARS = 600
#: A cached card lives at most this long (a new snapshot replaces it sooner: its id is in the key).
CACHE_SECONDS = 600
#: ``provider(model, is_public_now) -> dict | None``: a contestant's siblings (see the module contract).
SIBLING_PROVIDERS: list[Callable[[ServedModel, Callable[[ServedModel], bool]], dict | None]] = []


@dataclass
class OpponentRecord:
    opponent: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    both_bad: int = 0

    @property
    def battles(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad

    @property
    def win_rate(self) -> float:
        """Share of battles won, a tie or "both bad" counting half (the leaderboard's convention)."""
        return (self.wins + 0.5 * (self.ties + self.both_bad)) / self.battles if self.battles else 0.0


def _lineage(model: ServedModel) -> list[ServedModel]:
    chain, seen = [model], {model.pk}
    while chain[0].parent_id and chain[0].parent_id not in seen:
        parent = ServedModel.objects.get(pk=chain[0].parent_id)
        seen.add(parent.pk)
        chain.insert(0, parent)
    return chain


def rating_history(name: str) -> list[dict[str, Any]]:
    """``[{"at", "rating", "ci_low", "ci_high", "battles"}]`` from the stored snapshots, oldest first."""
    snapshots = RatingSnapshot.objects.order_by("-id")[:HISTORY_SNAPSHOTS]
    points = []
    for snapshot in reversed(list(snapshots)):
        row = overall_row(snapshot, name)
        if row is not None:
            points.append({"at": snapshot.created_at, "rating": row["rating"], "ci_low": row["ci_low"],
                           "ci_high": row["ci_high"], "battles": row["battles"]})
    return points


def _snapshot_votes(model: ServedModel, last_vote_id: int):
    """The model's counted votes that the snapshot ending at ``last_vote_id`` holds."""
    return Vote.objects.counted().filter(Q(battle__model_a=model) | Q(battle__model_b=model), pk__lte=last_vote_id)


def opponent_records(model: ServedModel, last_vote_id: int) -> list[OpponentRecord]:
    """The model's counted votes up to ``last_vote_id`` grouped by opponent, most battles first (one GROUP BY)."""
    rows = (_snapshot_votes(model, last_vote_id)
            .values("battle__model_a__public_name", "battle__model_b__public_name", "winner")
            .annotate(n=Count("id")))
    records: dict[str, OpponentRecord] = {}
    for row in rows:
        a, b, n = row["battle__model_a__public_name"], row["battle__model_b__public_name"], row["n"]
        we_are_a = a == model.public_name
        record = records.setdefault(b if we_are_a else a, OpponentRecord(b if we_are_a else a))
        winner = row["winner"]
        if winner == Vote.Winner.TIE:
            record.ties += n
        elif winner == Vote.Winner.BOTH_BAD:
            record.both_bad += n
        elif (winner == Vote.Winner.MODEL_A) == we_are_a:
            record.wins += n
        else:
            record.losses += n
    return sorted(records.values(), key=lambda r: (-r.battles, r.opponent))


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS].rstrip() + " …"


def example_battles(model: ServedModel, last_vote_id: int) -> list[dict[str, Any]]:
    """Recent anonymous battles of the model with a counted vote up to ``last_vote_id``: first
    prompt, both first answers, the verdict."""
    counted = _snapshot_votes(model, last_vote_id).values("battle_id")
    battles = (Battle.objects.filter(pk__in=counted, mode=Battle.Mode.ANONYMOUS)
               .select_related("model_a", "model_b", "vote").order_by("-vote__created_at")[:EXAMPLE_BATTLES])
    examples = []
    for battle in battles:
        first = battle.turns.order_by("index").first()
        if first is None:
            continue
        answers = {r.side: r for r in Response.objects.filter(turn=first)}
        examples.append({
            "prompt": _clip(first.prompt),
            "sides": [{"name": battle.model(side).public_name, "is_self": battle.model(side) == model,
                       "answer": _clip(answers[side].content) if side in answers else "",
                       "won": battle.vote.winner == f"model_{side}"} for side in "ab"],
            "verdict": battle.vote.get_winner_display(),
            "turns": battle.turn_total,
        })
    return examples


def is_public(model: ServedModel, snapshot: RatingSnapshot | None) -> bool:
    """Whether the model has a public page (see the module contract)."""
    try:
        contestant = model.contestant
    except Contestant.DoesNotExist:
        contestant = None
    retired = contestant is not None and contestant.retired_at is not None
    if contestant is not None and not retired and contestant.sampling_weight == 0:
        return False  # held back until the training gate admits it
    on_board = snapshot is not None and overall_row(snapshot, model.public_name) is not None
    return on_board or (model.active and not retired)


def _siblings(model: ServedModel, snapshot: RatingSnapshot | None) -> dict | None:
    for provider in SIBLING_PROVIDERS:
        found = provider(model, lambda other: is_public(other, snapshot))
        if found is not None:
            return found
    return None


def model_card(public_name: str) -> dict[str, Any]:
    """The page's data for a public contestant (cached per snapshot); see the module contract."""
    model = ServedModel.objects.select_related("parent", "contestant").get(public_name=public_name)
    latest = snapshot_latest()
    if not is_public(model, latest):
        raise ServedModel.DoesNotExist(public_name)
    # Keyed by the snapshot's id and time together: an id alone can come back after a rolled-back insert (SQLite).
    key = f"arena:model-card:{latest.pk}:{latest.created_at.timestamp()}:{model.pk}" if latest else None
    card = cache.get(key) if key else None
    if card is None:
        last_vote_id = latest.last_vote_id if latest else 0
        card = {
            "model": model,
            "lineage": _lineage(model),
            "current": overall_row(latest, model.public_name) if latest else None,
            "history": rating_history(model.public_name),
            "opponents": opponent_records(model, last_vote_id),
            "examples": example_battles(model, last_vote_id),
            "snapshot_at": latest.created_at if latest else None,
        }
        if key:
            cache.set(key, card, CACHE_SECONDS)
    # Never from the cache: a sibling held back since the card was built must lose its name at once.
    return {**card, "siblings": _siblings(model, latest)}
