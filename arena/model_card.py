"""A contestant's public page: what the arena knows about one model, read from its own records.

Contract: read-only; everything shown is already public on the leaderboard or in voted battles.
* :func:`model_card` gathers, for a served model's public name: its facts and lineage (the
  ``parent`` chain in serving: base → SFT → DPO …), its current overall rating and its history
  over the stored snapshots, its record against each opponent from counted votes, and a few
  recent voted anonymous battles (prompt and both answers).
* Nothing names a rater: no rater id, no IP hash, no session ever leaves this module.
* Raises ``ServedModel.DoesNotExist`` for an unknown name (the view answers 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q

from arena.leaderboard.selectors import UnknownCategory, board_get
from arena.models import Battle, RatingSnapshot, Response, Vote
from serving.models import ServedModel

#: How many stored snapshots the history reads (newest last); one per refit, so a day of votes at most.
HISTORY_SNAPSHOTS = 120
EXAMPLE_BATTLES = 4
EXAMPLE_CHARS = 600


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


def _overall_row(snapshot: RatingSnapshot, name: str) -> dict[str, Any] | None:
    try:
        board = board_get(snapshot.data, "overall")["board"]
    except (UnknownCategory, KeyError, TypeError):
        return None
    for row in (board or {}).get("rows", []):
        if row["model"] == name:
            return row
    return None


def rating_history(name: str) -> list[dict[str, Any]]:
    """``[{"at", "rating", "ci_low", "ci_high", "battles"}]`` from the stored snapshots, oldest first."""
    snapshots = RatingSnapshot.objects.order_by("-id")[:HISTORY_SNAPSHOTS]
    points = []
    for snapshot in reversed(list(snapshots)):
        row = _overall_row(snapshot, name)
        if row is not None:
            points.append({"at": snapshot.created_at, "rating": row["rating"], "ci_low": row["ci_low"],
                           "ci_high": row["ci_high"], "battles": row["battles"]})
    return points


def opponent_records(model: ServedModel) -> list[OpponentRecord]:
    """The model's counted votes grouped by opponent, most battles first (one SQL GROUP BY)."""
    rows = (Vote.objects.counted().filter(Q(battle__model_a=model) | Q(battle__model_b=model))
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


def example_battles(model: ServedModel) -> list[dict[str, Any]]:
    """Recent voted anonymous battles of the model: first prompt, both first answers, the verdict."""
    battles = (Battle.objects.filter(Q(model_a=model) | Q(model_b=model), mode=Battle.Mode.ANONYMOUS,
                                     vote__isnull=False)
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


def model_card(public_name: str) -> dict[str, Any]:
    model = ServedModel.objects.select_related("parent").get(public_name=public_name)
    latest = RatingSnapshot.objects.order_by("-id").first()
    return {
        "model": model,
        "lineage": _lineage(model),
        "current": _overall_row(latest, model.public_name) if latest else None,
        "history": rating_history(model.public_name),
        "opponents": opponent_records(model),
        "examples": example_battles(model),
    }
