"""Provisional and retired models on a board (pure: standard library only).

A model's score is *provisional* while it has fewer than ``min_votes`` votes or its 95% interval
is wider than ``max_width`` points (``ci_high - ci_low``). Its row stays on the board with its
rating, interval and rank (every score stays disclosed, as the "Leaderboard Illusion" critique,
Singh et al. 2025, asks), but it is marked ``provisional`` and listed *after* the established
models of its group: a place in the order is not claimed before the votes support one. Nor is a
rank: its ``rank`` is None ("not ranked yet") and its computed rank moves to ``rank_if_settled``.
The public rank rule (1 + the number of models whose interval lies entirely above) rewards a
wide interval: a model with one vote has an upper bound above everybody and would be "rank 1"
by that vote alone. The established models keep their ranks, computed over every model.

A *retired* model (an admin decision, logged with who and why) keeps its votes in the fit, so
the other ratings do not move when it leaves, and its row stays on the board marked
``retired`` (:func:`mark_retired`); the page shows it in a separate "Retired" section.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ProvisionalRule", "is_provisional", "mark_provisional", "mark_retired"]


@dataclass(frozen=True)
class ProvisionalRule:
    """``min_votes``: votes a model needs (0: no minimum); ``max_width``: widest interval allowed."""

    min_votes: int = 300
    max_width: float = 100.0


def is_provisional(row: Mapping[str, Any], rule: ProvisionalRule) -> bool:
    """Whether a board row (``battles``, ``ci_low``, ``ci_high``) is provisional under ``rule``."""
    return row["battles"] < rule.min_votes or (row["ci_high"] - row["ci_low"]) > rule.max_width


def mark_provisional(rows: Iterable[Mapping[str, Any]], rule: ProvisionalRule) -> list[dict[str, Any]]:
    """Rows with ``provisional`` set (a provisional row's ``rank`` becomes None, the computed one
    ``rank_if_settled``); within each ``group`` (in first-seen order) the established rows first,
    then the provisional ones, each part keeping its order (by rating)."""
    marked = []
    for row in rows:
        flag = is_provisional(row, rule)
        marked.append({**row, "provisional": flag, **({"rank": None, "rank_if_settled": row.get("rank")} if flag else {})})
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in marked:
        groups.setdefault(row.get("group", 0), []).append(row)
    return [row for members in groups.values() for flag in (False, True) for row in members if row["provisional"] is flag]


def mark_retired(rows: Iterable[Mapping[str, Any]], retired: Collection[str]) -> list[dict[str, Any]]:
    """Rows with ``retired`` set (the model's name is in ``retired``), order unchanged."""
    return [{**row, "retired": row["model"] in retired} for row in rows]
