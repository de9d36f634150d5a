"""Turning counts into boards: rows, groups, heatmaps (no database).

The one code path from aggregated counts to a board, shared by the snapshot service and
``manage.py compute_ratings``; the maths itself is :mod:`arena.ratings`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from arena.leaderboard.provisional import ProvisionalRule, mark_provisional, mark_retired
from arena.ratings import (
    DEFAULT_MIN_PAIR_COUNT,
    DEFAULT_PRIOR_SD,
    Board,
    PairCounts,
    compute_board,
    fit_style_control,
    predicted_win_rate,
    prior_reg,
    rank_upper_bound,
)

#: Heatmaps show the best models of the largest group: more cells than this are unreadable.
HEATMAP_MODELS = 15
#: The keys of a row printed by ``manage.py compute_ratings``.
CLI_ROW_KEYS = ("model", "rating", "ci_low", "ci_high", "rank", "battles", "elo")


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def board_rows(
    models: Sequence[str],
    rating: Sequence[float],
    ci_low: Sequence[float],
    ci_high: Sequence[float],
    rank: Sequence[int],
    battles: Sequence[int],
    components: Sequence[Sequence[str]],
    *,
    elo: Mapping[str, float] | None = None,
    info: Mapping[str, tuple[str, str]] | None = None,
    flips: Mapping[str, tuple[str, int | None]] | None = None,
) -> list[dict[str, Any]]:
    """The rows of a board: one per model, sorted by group (component, largest first) then rating.

    ``flips``: name → (the next model below it by rating, the votes whose removal would swap
    them or None), as rows' ``flips_with`` and ``flips_votes`` (both None without an entry).

    Each row: ``model, rating, ci_low, ci_high, rank, battles, elo`` (None when ``elo`` lacks
    the model), ``group`` (0-based component index), ``avg_win_rate`` (the predicted chance of
    beating a uniformly drawn other model of the same group, ties aside; None alone in a group),
    ``organization`` and ``license`` (from ``info``: name → (organization, license)).
    """
    index = {m: k for k, m in enumerate(models)}
    rating_arr = np.asarray(rating, dtype=np.float64)
    rows: list[dict[str, Any]] = []
    for group, members in enumerate(components):
        ks = sorted((index[m] for m in members), key=lambda k: (-rating_arr[k], models[k]))
        win = predicted_win_rate(rating_arr[ks]) if ks else np.zeros((0, 0))
        for pos, k in enumerate(ks):
            name = models[k]
            others = len(ks) - 1
            avg = (float(win[pos].sum()) - 0.5) / others if others else None  # minus P(i beats i) = 0.5
            org, lic = (info or {}).get(name, ("", ""))
            below, votes = (flips or {}).get(name, (None, None))
            rows.append({
                "model": name,
                "rating": _finite(rating_arr[k]),
                "ci_low": _finite(float(ci_low[k])),
                "ci_high": _finite(float(ci_high[k])),
                "rank": int(rank[k]),
                "battles": int(battles[k]),
                "elo": float(elo[name]) if elo is not None and name in elo else None,
                "group": group,
                "avg_win_rate": avg,
                "organization": org,
                "license": lic,
                "flips_with": below,
                "flips_votes": votes,
            })
    return rows


#: The top of a board is settled when one established model alone holds rank 1 and removing
#: fewer than this share of the votes (and at least TOP_SETTLED_MIN_VOTES) cannot swap it with
#: the next model.
TOP_SETTLED_SHARE = 0.01
TOP_SETTLED_MIN_VOTES = 10


def top_status(rows: Sequence[Mapping[str, Any]], n_battles: int) -> dict[str, Any]:
    """Whether the first place of the largest group is settled, and a sentence that says so plainly.

    ``{"settled", "leader", "runner_up", "flip_votes", "sharing_rank_1", "text"}``: the leader is
    the best-rated model of group 0, ``flip_votes`` the votes whose removal would swap it with
    the next one (see :mod:`arena.ratings.fragility`), ``sharing_rank_1`` how many established
    models hold rank 1."""
    group = sorted((r for r in rows if r.get("group", 0) == 0), key=lambda r: -r["rating"])
    if len(group) < 2:
        return {"settled": True, "leader": group[0]["model"] if group else None, "runner_up": None,
                "flip_votes": None, "sharing_rank_1": len(group), "text": ""}
    leader, runner = group[0], group[1]
    votes = leader.get("flips_votes")
    sharing = sum(1 for r in group if r.get("rank") == 1)
    need = max(TOP_SETTLED_MIN_VOTES, TOP_SETTLED_SHARE * n_battles)
    settled = not leader.get("provisional") and sharing == 1 and votes is not None and votes >= need
    if settled:
        text = (f"The top is settled: {leader['model']} alone holds rank 1, and removing fewer than {votes} "
                f"of the {n_battles} votes would not put {runner['model']} ahead.")
    elif leader.get("provisional"):
        text = (f"The top is not settled: the best-rated model, {leader['model']}, is still provisional "
                f"(too few votes or too wide an interval).")
    elif votes is not None and votes < need:
        text = (f"The top is not settled: removing about {votes} of the {n_battles} votes "
                f"({100 * votes / max(n_battles, 1):.2g}%) would put {runner['model']} ahead of {leader['model']}.")
    else:
        text = (f"The top is not settled: {sharing} models share rank 1 (their intervals overlap), "
                f"so the order among them is not known yet.")
    return {"settled": settled, "leader": leader["model"], "runner_up": runner["model"], "flip_votes": votes,
            "sharing_rank_1": sharing, "text": text}


def _heatmaps(board: Board, order: Sequence[str]) -> dict[str, Any]:
    """Observed win-fraction and battle-count matrices for the first :data:`HEATMAP_MODELS` of ``order``."""
    position = {m: k for k, m in enumerate(board.models)}
    top = list(order)[:HEATMAP_MODELS]
    ks = [position[m] for m in top]
    sub = np.ix_(ks, ks)
    return {
        "models": top,
        "win_fraction": np.round(board.win_fraction[sub], 4).tolist(),
        "battle_count": board.battle_count[sub].tolist(),
    }


def anchor_dict(anchor: tuple[str, float] | None) -> dict[str, Any] | None:
    return {"model": anchor[0], "rating": float(anchor[1])} if anchor else None


def board_build(
    counts: PairCounts,
    *,
    anchor: tuple[str, float] | None = None,
    rounds: int = 100,
    seed: int = 0,
    elo: Mapping[str, float] | None = None,
    info: Mapping[str, tuple[str, str]] | None = None,
    ci: str = "bootstrap",
    reweighted: bool = False,
    min_pair_count: int = DEFAULT_MIN_PAIR_COUNT,
    prior_sd: float = DEFAULT_PRIOR_SD,
    ties: str = "half",
    provisional: ProvisionalRule | None = None,
    retired: Collection[str] = (),
) -> dict[str, Any]:
    """A board from aggregated counts: the code path of the page, the API and ``compute_ratings``.

    Returns ``{"rows", "top", "components", "is_connected", "anchor", "n_battles", "rounds", "ci",
    "reweighted", "min_pair_count", "heatmaps"}``; rows as :func:`board_rows`, each with
    ``provisional`` (see :mod:`arena.leaderboard.provisional`; provisional rows come after the others of
    their group) and ``retired`` (the model is in ``retired``); ``anchor`` is the one applied (None when not asked or the model is not on this
    board); ``ci``, ``reweighted``, ``min_pair_count``: as :func:`arena.ratings.compute_board`;
    ``top``: whether first place is settled (:func:`top_status`); rows carry ``flips_with`` and
    ``flips_votes`` (the votes whose removal would swap a model with the next one by rating);
    ``heatmaps`` covers the best models of the largest group (``{"models", "win_fraction",
    "battle_count"}``, decisive battles only, as FastChat).
    """
    board = compute_board(
        counts, anchor=anchor, rounds=rounds, seed=seed, ci=ci, reweighted=reweighted, min_pair_count=min_pair_count,
        reg=prior_reg(prior_sd), ties=ties,
    )
    flips = {board.models[k]: (board.models[k + 1], board.flips[k]) for k in range(len(board.models) - 1)
             if board.flips and board.flips[k] is not None}
    rows = mark_retired(mark_provisional(board_rows(
        board.models, board.rating, board.ci_low, board.ci_high, board.rank, board.battles,
        board.components, elo=elo, info=info, flips=flips,
    ), provisional or ProvisionalRule(min_votes=0, max_width=math.inf)), retired)
    largest = [row["model"] for row in rows if row["group"] == 0]
    return {
        "rows": rows,
        "top": top_status(rows, board.n_battles),
        "components": board.components,
        "is_connected": board.is_connected,
        "anchor": anchor_dict(board.anchor),
        "n_battles": board.n_battles,
        "rounds": rounds,
        "ci": ci,
        "reweighted": reweighted,
        "min_pair_count": min_pair_count,
        "prior_sd": prior_sd,
        "ties": ties,
        "tie_param": board.tie_param,
        "heatmaps": _heatmaps(board, largest),
    }


def style_board_build(
    models: Sequence[str],
    model_a: np.ndarray,
    model_b: np.ndarray,
    outcome: np.ndarray,
    style_a: np.ndarray,
    style_b: np.ndarray,
    *,
    anchor: tuple[str, float] | None = None,
    rounds: int = 10,
    seed: int = 0,
    info: Mapping[str, tuple[str, str]] | None = None,
    provisional: ProvisionalRule | None = None,
    retired: Collection[str] = (),
) -> dict[str, Any]:
    """The style-controlled board of per-battle arrays (as :func:`arena.ratings.fit_style_control`).

    Same shape as :func:`board_build` (bootstrap intervals; ``provisional`` and ``retired`` rows
    marked the same way), plus ``coefficients`` (feature → log-odds change per standard
    deviation, positive when voters prefer more of it). Rows have no Elo (Elo cannot control
    for style); ranks and groups as the plain board of the same battles.
    """
    fit = fit_style_control(
        models, model_a, model_b, outcome, style_a, style_b, anchor=anchor, rounds=rounds, seed=seed
    )
    # The plain board of the same battles gives the groups, battle counts and observed matrices.
    counts = PairCounts.from_arrays(models, model_a, model_b, outcome)
    plain = compute_board(counts, rounds=0)
    labels = np.zeros(len(models), dtype=np.int64)
    index = {m: k for k, m in enumerate(models)}
    for group, members in enumerate(plain.components):
        labels[[index[m] for m in members]] = group
    rank = rank_upper_bound(fit.ci_low, fit.ci_high, labels)
    rows = mark_retired(mark_provisional(board_rows(
        models, fit.rating, fit.ci_low, fit.ci_high, rank, counts.battles_per_model().round().astype(np.int64),
        plain.components, info=info,
    ), provisional or ProvisionalRule(min_votes=0, max_width=math.inf)), retired)
    largest = [row["model"] for row in rows if row["group"] == 0]
    return {
        "rows": rows,
        "components": [[row["model"] for row in rows if row["group"] == g] for g in range(len(plain.components))],
        "is_connected": plain.is_connected,
        "anchor": anchor_dict(fit.anchor),
        "n_battles": int(len(model_a)),
        "rounds": rounds,
        "heatmaps": _heatmaps(plain, largest),
        "coefficients": {
            name: float(value) for name, value in zip(fit.feature_names, fit.coefficients, strict=True)
        },
    }
