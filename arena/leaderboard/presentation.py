"""How a rating snapshot is shown: the API's JSON and the leaderboard page's context (plots included).

Reads only stored snapshots (through :mod:`arena.leaderboard.selectors`) and never fits or
writes anything, so a change to the page cannot change a rating. Page prose lives in
:mod:`arena.leaderboard.text`, the SVG charts in :mod:`arena.leaderboard.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from arena.leaderboard import plots
from arena.leaderboard.categories import LONG_PROMPT_TOKENS, MULTI_TURN_MIN
from arena.leaderboard.selectors import board_get, categories_list, changelog, counted_votes_exist
from arena.leaderboard.settings import board_settings
from arena.leaderboard.text import ABOUT_ELO, ABOUT_EXCLUDED, ABOUT_STYLE, about_intervals
from arena.models import RatingSnapshot
from arena.quality.exclusions import reasons as exclusion_reasons
from arena.ratings import ABOUT_INTERVALS
from arena.ratings.fragility import ABOUT_FRAGILITY


def _snapshot_meta(snapshot: RatingSnapshot) -> dict[str, Any]:
    return {
        "id": snapshot.pk,
        "created_at": snapshot.created_at.isoformat(),
        "last_vote_id": snapshot.last_vote_id,
        "compute_ms": round(snapshot.compute_ms, 1),
        "settings": snapshot.data.get("settings"),
        "reproduce": snapshot.data.get("reproduce"),
    }


def _below_threshold_message(entry: Mapping[str, Any]) -> str:
    return (
        f"Not enough votes yet: {entry['votes']} counted vote{'s' if entry['votes'] != 1 else ''} in "
        f"this category; its board appears at {entry['min_votes']}."
    )


def board_payload(snapshot: RatingSnapshot, category: str = "overall", style: bool = False) -> dict[str, Any]:
    """The API's JSON for one category of a snapshot (raises
    :class:`~arena.leaderboard.selectors.UnknownCategory`).

    ``{"snapshot": {"id", "created_at", "last_vote_id", "compute_ms"}, "category": {"key", "label",
    "description", "style_control", "votes", "min_votes", "enough_votes"}, "categories": [{"key",
    "label", "votes", "enough_votes"}], "totals": {"models", "votes", "all_votes", "counted_votes",
    "excluded_votes"}, "excluded": {reason: votes} (``arena.quality.exclusions``), "anchor",
    "connectivity": {"is_connected", "components"}, "rows": [...], "top", "message", "changelog"}``; rows
    as :func:`arena.leaderboard.boards.board_build` gives them (``provisional`` and ``retired``
    flags; established rows first within each group); ``message`` says why there are no rows
    (below the category's threshold), else None; ``changelog``: the public log of retirements
    and re-included votes (:func:`~arena.leaderboard.selectors.changelog`), newest first;
    ``top``: whether first place is settled and the sentence saying so
    (:func:`arena.leaderboard.boards.top_status`; None before boards had it).
    """
    data = snapshot.data
    entry = board_get(data, category, style)
    board = entry["board"]
    rows = board["rows"] if board else []
    return {
        "snapshot": _snapshot_meta(snapshot),
        "category": {k: v for k, v in entry.items() if k not in ("board", "settings")},
        "categories": [
            {"key": c["key"], "label": c["label"], "votes": c["votes"], "enough_votes": c["enough_votes"]}
            for c in categories_list(data)
        ],
        "totals": {
            "models": len(rows),
            "votes": entry["votes"],
            "all_votes": data["totals"]["votes"],
            "counted_votes": data["totals"]["counted"],
            "excluded_votes": data["totals"]["excluded"],
        },
        "excluded": data["excluded"],
        "anchor": board["anchor"] if board else None,
        "connectivity": {
            "is_connected": board["is_connected"] if board else True,
            "components": board["components"] if board else [],
        },
        "rows": rows,
        "top": board.get("top") if board else None,
        "message": None if board else _below_threshold_message(entry),
        "changelog": changelog(),
    }



def no_snapshot_payload() -> dict[str, Any]:
    """The API's JSON before the first snapshot: ``pending`` is true when votes wait to be rated."""
    pending = counted_votes_exist()
    return {
        "snapshot": None,
        "rows": [],
        "pending": pending,
        "message": "No ratings yet: " + ("the first ones are being computed." if pending else "no vote has been counted."),
    }


#: Rows drawn in the interval and win-rate charts (the table always has every model).
CHART_MODELS = 30


def _signed(value: float) -> str:
    return f"{value:.0f}" if value >= 9.5 else f"{value:.1f}"


def _display_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "score": f"{row['rating']:.0f}",
        "ci_plus": _signed(max(0.0, row["ci_high"] - row["rating"])),
        "ci_minus": _signed(max(0.0, row["rating"] - row["ci_low"])),
        "elo_text": "—" if row["elo"] is None else f"{row['elo']:.0f}",
    }


def _url(name: str, key: str, style_on: bool) -> str:
    """The URL of a leaderboard view for one category, with or without style control."""
    query = {"category": key, **({"style": "1"} if style_on else {})}
    return f"{reverse(name)}?{urlencode(query)}"


def _page_plots(board: Mapping[str, Any], main: list[dict[str, Any]]) -> dict[str, Any]:
    """The charts of a board (``main``: the largest group's display rows) and how many models they show."""
    charted = main[:CHART_MODELS]
    heat = board["heatmaps"]
    return {
        "charted": len(charted),
        "heatmap_models": len(heat["models"]),
        "plots": {
            "ci": plots.ci_chart(charted),
            "win_fraction": plots.heatmap(heat["models"], heat["win_fraction"], kind="win_fraction",
                                          counts=heat["battle_count"]),
            "battle_count": plots.heatmap(heat["models"], heat["battle_count"], kind="battle_count"),
            "win_rate": plots.win_rate_bars(charted),
        },
    }


def page_context(snapshot: RatingSnapshot | None, category: str = "overall", style: bool = False) -> dict[str, Any]:
    """Everything the leaderboard template shows, plots included as SVG markup (escaped by
    :mod:`arena.leaderboard.plots`). Raises :class:`~arena.leaderboard.selectors.UnknownCategory` like
    :func:`~arena.leaderboard.selectors.board_get`."""
    context: dict[str, Any] = {
        "category": category,
        "style": style,
        "about_intervals": ABOUT_INTERVALS,
        "about_excluded": ABOUT_EXCLUDED,
        "about_elo": ABOUT_ELO,
        "about_style": ABOUT_STYLE,
        "long_prompt_tokens": LONG_PROMPT_TOKENS,
        "multi_turn_min": MULTI_TURN_MIN,
        "api_url": _url("leaderboard-api", category, style),
        "csv_url": _url("leaderboard-csv", category, style),
        "snapshot": snapshot,
    }
    if snapshot is None:
        return {**context, **no_snapshot_payload()}
    data = snapshot.data
    entry = board_get(data, category, style)
    board = entry["board"]
    context.update(
        entry=entry,
        data=data,
        message=None if board else _below_threshold_message(entry),
        tabs=[
            {"key": c["key"], "label": c["label"], "votes": c["votes"], "enough": c["enough_votes"],
             "url": _url("leaderboard", c["key"], False), "active": c["key"] == category and not style}
            for c in categories_list(data)
        ],
        style_on_url=_url("leaderboard", "overall", True),
        style_off_url=_url("leaderboard", "overall", False),
        style_entry=data["style_control"],
        updated=datetime.fromisoformat(data["created_at"]),
        # One row per reason of the one list (arena.quality.exclusions); a reason newer than the snapshot shows 0.
        excluded_rows=[{"key": key, "id": f"excluded-{key.replace('_', '-')}", "label": label,
                        "count": data["excluded"].get(key, 0)} for key, label in exclusion_reasons()],
        style_computed_at=datetime.fromisoformat(entry["computed_at"]) if style and entry.get("computed_at") else None,
    )
    if not board:
        return context
    context["about_intervals"] = about_intervals(board)
    context["provisional_rule"] = data.get("settings") or board_settings()
    rows = [_display_row(r) for r in board["rows"]]
    context["retired_rows"] = [r for r in rows if r.get("retired")]
    context["changelog"] = changelog()
    rows = [r for r in rows if not r.get("retired")]
    groups = [[r for r in rows if r["group"] == g] for g in range(len(board["components"]))]
    context["groups"] = groups
    context["models_total"] = len(rows)
    context["anchor"] = board["anchor"]
    context["top"] = board.get("top")
    context["about_fragility"] = ABOUT_FRAGILITY
    context["coefficients"] = board.get("coefficients")
    context.update(_page_plots(board, groups[0]))
    return context
