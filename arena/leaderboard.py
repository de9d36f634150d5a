"""The leaderboard: rating snapshots computed from the votes (service) and read by pages (selectors).

:func:`snapshot_create` is the one write. It aggregates the counted votes in SQL (one
``GROUP BY`` over model pair, winner and the category facts, so no vote row ever reaches
Python), fits every category with :func:`arena.ratings.compute_board`, adds style control for
the overall board, advances the online Elo ratings with the votes cast since the previous
snapshot, and stores everything as one :class:`RatingSnapshot`. Pages and the API only read
snapshots (:func:`snapshot_latest`, :func:`board_get`), so a page view never fits anything.

Categories (``key``: meaning):

* ``overall``: every counted vote (anonymous battle, no identity leak, no failed side);
* ``multi_turn``: battles of at least :data:`MULTI_TURN_MIN` turns;
* ``long_prompt``: battles whose longest prompt has at least :data:`LONG_PROMPT_TOKENS` tokens;
* ``no_ties``: decisive votes only (ties and "both bad" left out);
* ``lang-<code>``: battles whose first prompt is in that language (langdetect code), listed once
  the language has ``ARENA_LEADERBOARD_CATEGORY_MIN_VOTES`` votes;
* style control (``overall`` with ``style=1``): the overall board with FastChat's style
  features (answer length, headers, lists, bold) controlled for.

Thresholds: the overall board shows numbers from ``ARENA_LEADERBOARD_MIN_VOTES`` counted votes
(default 1: a new arena sees its first board at once, and the intervals say how little it
means), every other category from ``ARENA_LEADERBOARD_CATEGORY_MIN_VOTES`` (default 30, below
which a sub-board mostly shows noise). Below its threshold a category says how many votes it
has and needs instead of printing numbers.

A comparison graph in several pieces (models that never met, even through others) cannot be
put on one scale: boards keep one group per connected component, ranks are within a group, and
pages show the groups apart and say why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    FloatField,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce
from django.urls import reverse
from django.utils import timezone

from arena import plots, quality
from arena.models import Battle, RatingSnapshot, Vote
from arena.ratings import (
    ABOUT_INTERVALS,
    STYLE_FEATURE_NAMES,
    WINNERS,
    Board,
    PairCounts,
    compute_board,
    elo_update,
    fit_style_control,
    predicted_win_rate,
    rank_upper_bound,
)
from serving.models import ServedModel

logger = logging.getLogger(__name__)

__all__ = [
    "ABOUT_INTERVALS",
    "CLI_ROW_KEYS",
    "LANGUAGE_NAMES",
    "LONG_PROMPT_TOKENS",
    "MULTI_TURN_MIN",
    "UnknownCategory",
    "board_build",
    "board_get",
    "board_payload",
    "board_rows",
    "categories_list",
    "category_groups",
    "counted_vote_groups",
    "counted_votes_exist",
    "language_vote_groups",
    "no_snapshot_payload",
    "page_context",
    "snapshot_create",
    "snapshot_fingerprint",
    "snapshot_is_current",
    "snapshot_latest",
    "style_board_build",
    "style_vote_arrays",
]

#: A battle with at least this many turns is "multi-turn".
MULTI_TURN_MIN = 2
#: A battle whose longest user prompt has at least this many (approximate) tokens is "long".
LONG_PROMPT_TOKENS = 500
#: Heatmaps show the best models of the largest group: more cells than this are unreadable.
HEATMAP_MODELS = 15
#: Snapshots kept; older ones are deleted (a busy arena makes one every few seconds).
KEEP_SNAPSHOTS = 100
#: Bumped when the layout of ``RatingSnapshot.data`` or ``elo_state`` changes.
SNAPSHOT_VERSION = 1
#: The keys of a row printed by ``manage.py compute_ratings``.
CLI_ROW_KEYS = ("model", "rating", "ci_low", "ci_high", "rank", "battles", "elo")

#: langdetect's language codes and their English names (tab labels; battle-file ``language``).
LANGUAGE_NAMES: dict[str, str] = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan",
    "cs": "Czech", "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "gu": "Gujarati", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kn": "Kannada", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian", "ml": "Malayalam", "mr": "Marathi",
    "ne": "Nepali", "nl": "Dutch", "no": "Norwegian", "pa": "Punjabi", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian",
    "so": "Somali", "sq": "Albanian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "te": "Telugu",
    "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu",
    "vi": "Vietnamese", "zh-cn": "Chinese", "zh-tw": "Chinese (traditional)",
}

ABOUT_EXCLUDED = (
    "Only anonymous battles count: a vote is left out when either answer named a model or its "
    "maker (an identity leak: the voter may have known who was who), when a side failed to "
    "answer (the voter judged an error, not a model), or when the battle was in named mode "
    "(the voter chose the models). Vote quality rules leave out a vote when a side was stopped "
    "or empty, when moderation flagged a prompt or an answer, when it was cast faster than a "
    "reader could compare the answers, when its prompt was already voted on more often than a "
    "cap (scripted repeats), or when its rater's votes are outliers against the board or staff "
    "excluded the rater. Such votes are stored but never enter the ratings. A vote "
    "can be left out for more than one reason, so the reasons can add up to more than the total."
)
ABOUT_ELO = (
    "The Elo column is the online Elo rating (K = 4, every model starting at 1000), updated vote "
    "by vote in time order. It depends on the order of the votes and is shown for comparison "
    "only; the arena score is the Bradley–Terry fit, which does not."
)
ABOUT_STYLE = (
    "Style control fits the ratings together with four style differences between the two "
    "answers (length in tokens, markdown headers, list items, bold spans), as Chatbot Arena "
    "does, so a model is not rewarded merely for long or heavily formatted answers. Its "
    "intervals come from fewer bootstrap rounds than the main board's, because each round "
    "refits the whole model."
)


class UnknownCategory(ValueError):
    """A category (or style-control choice) that the snapshot does not hold; the message says which exist."""


@dataclass(frozen=True)
class CategorySpec:
    key: str
    label: str
    description: str


FIXED_CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("overall", "Overall", "Every counted vote."),
    CategorySpec("multi_turn", "Multi-turn", f"Battles of {MULTI_TURN_MIN} or more turns."),
    CategorySpec(
        "long_prompt", "Long prompts", f"Battles whose longest prompt has at least {LONG_PROMPT_TOKENS} tokens."
    ),
    CategorySpec("no_ties", "No ties", "Decisive votes only: ties and “both are bad” votes are left out."),
)
STYLE_SPEC = CategorySpec(
    "overall", "Overall, style control", "Every counted vote, with the answers' length and formatting controlled for."
)


def _language_spec(code: str) -> CategorySpec:
    name = LANGUAGE_NAMES.get(code, code)
    return CategorySpec(f"lang-{code}", name, f"Battles whose first prompt is in {name} (detected).")


# ---------------------------------------------------------------------------------------------
# Turning counts into boards (no database: shared with manage.py compute_ratings)
# ---------------------------------------------------------------------------------------------


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
) -> list[dict[str, Any]]:
    """The rows of a board: one per model, sorted by group (component, largest first) then rating.

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
            })
    return rows


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


def _anchor_dict(anchor: tuple[str, float] | None) -> dict[str, Any] | None:
    return {"model": anchor[0], "rating": float(anchor[1])} if anchor else None


def board_build(
    counts: PairCounts,
    *,
    anchor: tuple[str, float] | None = None,
    rounds: int = 100,
    seed: int = 0,
    elo: Mapping[str, float] | None = None,
    info: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A board from aggregated counts: the code path of the page, the API and ``compute_ratings``.

    Returns ``{"rows", "components", "is_connected", "anchor", "n_battles", "rounds",
    "heatmaps"}``; rows as :func:`board_rows`; ``anchor`` is the one applied (None when not
    asked or the model is not on this board); ``heatmaps`` covers the best models of the largest
    group (``{"models", "win_fraction", "battle_count"}``, decisive battles only, as FastChat).
    """
    board = compute_board(counts, anchor=anchor, rounds=rounds, seed=seed)
    rows = board_rows(
        board.models, board.rating, board.ci_low, board.ci_high, board.rank, board.battles,
        board.components, elo=elo, info=info,
    )
    largest = [row["model"] for row in rows if row["group"] == 0]
    return {
        "rows": rows,
        "components": board.components,
        "is_connected": board.is_connected,
        "anchor": _anchor_dict(board.anchor),
        "n_battles": board.n_battles,
        "rounds": rounds,
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
) -> dict[str, Any]:
    """The style-controlled board of per-battle arrays (as :func:`arena.ratings.fit_style_control`).

    Same shape as :func:`board_build`, plus ``coefficients`` (feature → log-odds change per
    standard deviation, positive when voters prefer more of it). Rows have no Elo (Elo cannot
    control for style); ranks and groups as the plain board of the same battles.
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
    rows = board_rows(
        models, fit.rating, fit.ci_low, fit.ci_high, rank, counts.battles_per_model().round().astype(np.int64),
        plain.components, info=info,
    )
    largest = [row["model"] for row in rows if row["group"] == 0]
    return {
        "rows": rows,
        "components": [[row["model"] for row in rows if row["group"] == g] for g in range(len(plain.components))],
        "is_connected": plain.is_connected,
        "anchor": _anchor_dict(fit.anchor),
        "n_battles": int(len(model_a)),
        "rounds": rounds,
        "heatmaps": _heatmaps(plain, largest),
        "coefficients": {
            name: float(value) for name, value in zip(fit.feature_names, fit.coefficients, strict=True)
        },
    }


# ---------------------------------------------------------------------------------------------
# Reading the votes (SQL aggregation)
# ---------------------------------------------------------------------------------------------


def _counted_with_facts(last_vote_id: int) -> QuerySet:
    """Counted votes up to ``last_vote_id`` with the category facts as SQL expressions."""
    return (
        Vote.objects.counted()
        .filter(pk__lte=last_vote_id)
        .annotate(
            multi=ExpressionWrapper(Q(battle__turn_total__gte=MULTI_TURN_MIN), output_field=BooleanField()),
            long=ExpressionWrapper(Q(battle__prompt_tokens__gte=LONG_PROMPT_TOKENS), output_field=BooleanField()),
        )
    )


def counted_vote_groups(last_vote_id: int) -> list[tuple[int, int, str, int, int, int]]:
    """Counted votes up to ``last_vote_id``, counted in SQL per (model_a id, model_b id, winner):
    rows ``(a_id, b_id, winner, votes, multi-turn votes, long-prompt votes)``, at most four per
    ordered pair whatever the number of votes. One scan gives the overall, no-ties, multi-turn
    and long-prompt boards. Model ids, not names: grouping on the battle's own columns needs no
    join to the models, and ids map to names with one small query."""
    return list(
        Vote.objects.counted()
        .filter(pk__lte=last_vote_id)
        .values_list("battle__model_a_id", "battle__model_b_id", "winner")
        .annotate(
            n=Count("pk"),
            multi=Count("pk", filter=Q(battle__turn_total__gte=MULTI_TURN_MIN)),
            long=Count("pk", filter=Q(battle__prompt_tokens__gte=LONG_PROMPT_TOKENS)),
        )
        .order_by()
    )


def language_vote_groups(last_vote_id: int) -> list[tuple[int, int, str, str, int]]:
    """Counted votes with a detected language, counted in SQL per (model_a id, model_b id,
    winner, language): rows ``(a_id, b_id, winner, language, votes)``."""
    return list(
        Vote.objects.counted()
        .filter(pk__lte=last_vote_id)
        .exclude(battle__language="")
        .values_list("battle__model_a_id", "battle__model_b_id", "winner", "battle__language")
        .annotate(n=Count("pk"))
        .order_by()
    )


def _categories_of(winner: str, language: str, multi: bool, long: bool) -> list[str]:
    """The categories a counted vote belongs to (besides the style board); the same rules as
    the SQL of :func:`counted_vote_groups` and :func:`language_vote_groups`."""
    keys = ["overall"]
    if multi:
        keys.append("multi_turn")
    if long:
        keys.append("long_prompt")
    if winner in ("model_a", "model_b"):
        keys.append("no_ties")
    if language:
        keys.append(f"lang-{language}")
    return keys


def category_groups(
    groups: Iterable[tuple[int, int, str, int, int, int]],
    language_groups: Iterable[tuple[int, int, str, str, int]],
    names: Mapping[int, str],
) -> dict[str, list[tuple[str, str, str, int]]]:
    """``(model_a, model_b, winner, count)`` rows per category key, from the two groupings."""
    out: dict[str, list[tuple[str, str, str, int]]] = {spec.key: [] for spec in FIXED_CATEGORIES}
    for a_id, b_id, winner, n, multi, long in groups:
        a, b = names[a_id], names[b_id]
        out["overall"].append((a, b, winner, n))
        if winner in ("model_a", "model_b"):
            out["no_ties"].append((a, b, winner, n))
        if multi:
            out["multi_turn"].append((a, b, winner, multi))
        if long:
            out["long_prompt"].append((a, b, winner, long))
    for a_id, b_id, winner, language, n in language_groups:
        out.setdefault(f"lang-{language}", []).append((names[a_id], names[b_id], winner, n))
    return out


def style_vote_arrays(
    last_vote_id: int, names: Mapping[int, str]
) -> tuple[list[str], tuple[np.ndarray, ...], int]:
    """Per-vote arrays for :func:`style_board_build`: ``(models, (a, b, outcome, style_a,
    style_b), skipped)``, ``skipped`` counting the votes without style counts (imported without
    them), which are left out.

    Per vote, not grouped: answer lengths make nearly every vote's style distinct, and grouping
    on eight JSON expressions costs PostgreSQL ~10x the plain read. The counts are read as
    numbers in SQL (a missing one as -1) so the rows load straight into one numpy array.
    """
    def count(side: str, feature: str) -> Coalesce:
        return Coalesce(Cast(KeyTextTransform(feature, KeyTransform(side, "style")), FloatField()), Value(-1.0))

    outcome = Case(*(When(winner=w, then=Value(c)) for c, w in enumerate(WINNERS)), output_field=IntegerField())
    query = (
        Vote.objects.counted()
        .filter(pk__lte=last_vote_id)
        .annotate(code=outcome, **{f"{s}_{f}": count(s, f) for s in "ab" for f in STYLE_FEATURE_NAMES})
        .values_list("battle__model_a_id", "battle__model_b_id", "code",
                     *(f"{s}_{f}" for s in "ab" for f in STYLE_FEATURE_NAMES))
        .order_by()
    )
    # The ORM's SQL, read with a plain cursor: Django's per-value converters would take twice as
    # long as the query itself on a million rows, and these columns need none. Its SELECT lists
    # the model columns, then the annotations in the order given: the order of values_list here.
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    table = np.array(rows, dtype=np.float64).reshape(-1, 3 + 2 * len(STYLE_FEATURE_NAMES))
    ok = np.all(table[:, 3:] >= 0, axis=1)
    skipped = int((~ok).sum())
    table = table[ok]
    ids = table[:, :2].astype(np.int64)
    present = np.unique(ids)
    models = sorted(names[int(pk)] for pk in present)
    position = {m: k for k, m in enumerate(models)}
    index_of = np.array([position[names[int(pk)]] for pk in present], dtype=np.int64)
    a, b = (index_of[np.searchsorted(present, ids[:, k])] for k in (0, 1))
    nf = len(STYLE_FEATURE_NAMES)
    return models, (a, b, table[:, 2].astype(np.int64), table[:, 3 : 3 + nf], table[:, 3 + nf :]), skipped


def _model_info() -> tuple[dict[int, str], dict[str, tuple[str, str]]]:
    names: dict[int, str] = {}
    info: dict[str, tuple[str, str]] = {}
    for pk, name, org, lic in ServedModel.objects.values_list("pk", "public_name", "organization", "license"):
        names[pk] = name
        info[name] = (org, lic)
    return names, info


def _settings_key() -> dict[str, Any]:
    return {
        "version": SNAPSHOT_VERSION,
        "anchor": settings.ARENA_LEADERBOARD_ANCHOR,
        "min_votes": settings.ARENA_LEADERBOARD_MIN_VOTES,
        "category_min_votes": settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES,
        "rounds": settings.ARENA_LEADERBOARD_ROUNDS,
        "style_rounds": settings.ARENA_LEADERBOARD_STYLE_ROUNDS,
    }


def snapshot_fingerprint() -> str:
    """A digest of everything a snapshot depends on: the votes (how many, up to which id, which
    count), the models' names and descriptions, and the leaderboard settings. Two reads give
    the same digest exactly when a new snapshot would show the same thing."""
    votes = Vote.objects.aggregate(n=Count("pk"), last=Max("pk"))
    counted = Vote.objects.counted().aggregate(n=Count("pk"), ids=Sum("pk"))
    counted["ids"] = int(counted["ids"] or 0)
    models = list(ServedModel.objects.order_by("pk").values_list("pk", "public_name", "organization", "license"))
    blob = json.dumps([votes, counted, models, _settings_key()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Online Elo, carried from snapshot to snapshot
# ---------------------------------------------------------------------------------------------


def _elo_state_advance(previous: Mapping[str, Any] | None, last_vote_id: int, names: Mapping[int, str]) -> dict:
    """The Elo state after the counted votes up to ``last_vote_id``.

    Replays only the votes after ``previous["last_vote_id"]`` when that is exact, and every
    counted vote otherwise: when there is no previous state, when the votes it covered changed
    since (a vote deleted, re-flagged, or committed late with a smaller id: the count and the sum
    of their ids tell), when a newer vote is older than the last one replayed (imported
    history), or when a model was renamed. State: ``{"version", "last_vote_id", "counted",
    "id_sum", "last_time", "ratings": {category: {model: rating}}}``; votes in time order.
    """
    valid = bool(previous) and previous.get("version") == SNAPSHOT_VERSION
    if valid:
        done = Vote.objects.counted().filter(pk__lte=previous["last_vote_id"]).aggregate(n=Count("pk"), s=Sum("pk"))
        # PostgreSQL sums a bigint as numeric: int() so that 5 == Decimal(5) is not left to chance.
        valid = (done["n"], int(done["s"] or 0)) == (previous["counted"], previous["id_sum"])
    if valid and previous["last_time"]:
        oldest_new = (
            Vote.objects.counted().filter(pk__gt=previous["last_vote_id"], pk__lte=last_vote_id)
            .aggregate(t=Min("created_at"))["t"]
        )
        valid = oldest_new is None or oldest_new >= datetime.fromisoformat(previous["last_time"])
    if valid:
        known = set(names.values())
        valid = all(set(r) <= known for r in previous["ratings"].values())
    start = previous["last_vote_id"] if valid else 0
    ratings: dict[str, dict[str, float]] = {k: dict(v) for k, v in previous["ratings"].items()} if valid else {}
    last_time = previous["last_time"] if valid else None

    new = (
        _counted_with_facts(last_vote_id).filter(pk__gt=start)
        .order_by("created_at", "pk")
        .values_list("created_at", "battle__model_a_id", "battle__model_b_id", "winner", "battle__language",
                     "multi", "long")
    )
    per_category: dict[str, list[tuple[str, str, str]]] = {}
    for created_at, a_id, b_id, winner, language, multi, long in new.iterator(chunk_size=20_000):
        battle = (names[a_id], names[b_id], winner)
        for key in _categories_of(winner, language, multi, long):
            per_category.setdefault(key, []).append(battle)
        last_time = created_at.isoformat()
    for key, battles in per_category.items():
        ratings[key] = elo_update(ratings.get(key, {}), battles)
    covered = Vote.objects.counted().filter(pk__lte=last_vote_id).aggregate(n=Count("pk"), s=Sum("pk"))
    return {
        "version": SNAPSHOT_VERSION,
        "last_vote_id": last_vote_id,
        "counted": covered["n"],
        "id_sum": int(covered["s"] or 0),
        "last_time": last_time,
        "ratings": ratings,
        "full_recompute": not valid,
    }


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------


def _category_entry(spec: CategorySpec, votes: int, min_votes: int, *, style: bool = False) -> dict[str, Any]:
    return {
        "key": spec.key,
        "label": spec.label,
        "description": spec.description,
        "style_control": style,
        "votes": votes,
        "min_votes": min_votes,
        "enough_votes": votes >= min_votes,
        "board": None,
    }


#: A style-control fit faster than this is redone with every snapshot; a slower one (a big
#: arena: ~10 s per million votes) at most every ``ARENA_LEADERBOARD_STYLE_EVERY_S``.
STYLE_CHEAP_MS = 1000.0


def _settings_digest() -> str:
    return hashlib.sha256(json.dumps(_settings_key(), sort_keys=True).encode()).hexdigest()[:16]


def _style_entry(
    previous: Mapping[str, Any] | None, last_vote_id: int, names: Mapping[int, str],
    info: Mapping[str, tuple[str, str]],
) -> dict[str, Any]:
    """The style-control entry: refitted, or the previous snapshot's when that fit was slow and
    is recent (same settings). ``last_vote_id``/``computed_at``/``compute_ms`` say which votes
    and when; pages show them, since a carried-over board can lag the others."""
    prev = previous.get("style_control") if previous and previous.get("version") == SNAPSHOT_VERSION else None
    if (
        prev and prev.get("board") and prev.get("settings") == _settings_digest()
        and prev.get("compute_ms", 0.0) >= STYLE_CHEAP_MS
        and (timezone.now() - datetime.fromisoformat(prev["computed_at"])).total_seconds()
        < settings.ARENA_LEADERBOARD_STYLE_EVERY_S
    ):
        return dict(prev)
    started = time.perf_counter()
    models, arrays, without_style = style_vote_arrays(last_vote_id, names)
    entry = _category_entry(STYLE_SPEC, len(arrays[0]), settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES, style=True)
    if entry["enough_votes"]:
        entry["board"] = style_board_build(
            models, *arrays, anchor=settings.ARENA_LEADERBOARD_ANCHOR,
            rounds=settings.ARENA_LEADERBOARD_STYLE_ROUNDS, seed=0, info=info,
        )
    entry.update(
        without_style=without_style, last_vote_id=last_vote_id, computed_at=timezone.now().isoformat(),
        compute_ms=(time.perf_counter() - started) * 1000.0, settings=_settings_digest(),
    )
    return entry


def snapshot_create() -> RatingSnapshot:
    """Compute every category's board from the counted votes and store them as one snapshot.

    Reads only votes up to the largest vote id at the start, so a snapshot is consistent while
    votes keep arriving (newer ones go into the next). Elo is carried over from the latest
    snapshot (see :func:`_elo_state_advance`). Keeps the newest :data:`KEEP_SNAPSHOTS`
    snapshots. Never fails on an empty arena: every category then reports zero votes.

    ``data`` layout (``SNAPSHOT_VERSION`` 1): ``{"version", "created_at", "last_vote_id",
    "totals": {"votes", "counted", "excluded"}, "excluded": {"identity_leak", "named_mode",
    "side_error"}, "anchor", "categories": [entry...], "style_control": entry}``; an entry is
    ``{"key", "label", "description", "style_control", "votes", "min_votes", "enough_votes",
    "board"}`` with ``board`` as :func:`board_build` (None below the threshold).
    """
    started = time.perf_counter()
    fingerprint = snapshot_fingerprint()
    last_vote_id = Vote.objects.aggregate(last=Max("pk"))["last"] or 0
    names, info = _model_info()
    anchor = settings.ARENA_LEADERBOARD_ANCHOR
    rounds = settings.ARENA_LEADERBOARD_ROUNDS

    groups = counted_vote_groups(last_vote_id)
    per_category = category_groups(groups, language_vote_groups(last_vote_id), names)
    previous = RatingSnapshot.objects.order_by("-pk").only("elo_state", "data").first()
    elo_state = _elo_state_advance(previous.elo_state if previous else None, last_vote_id, names)

    categories: list[dict[str, Any]] = []
    languages = sorted((k for k in per_category if k.startswith("lang-")),
                       key=lambda k: -sum(r[3] for r in per_category[k]))
    specs = [*FIXED_CATEGORIES, *(_language_spec(k.removeprefix("lang-")) for k in languages)]
    for spec in specs:
        rows = per_category.get(spec.key, [])
        votes = int(sum(r[3] for r in rows))
        minimum = (settings.ARENA_LEADERBOARD_MIN_VOTES if spec.key == "overall"
                   else settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES)
        entry = _category_entry(spec, votes, minimum)
        if entry["enough_votes"]:
            entry["board"] = board_build(
                PairCounts.from_grouped(rows), anchor=anchor, rounds=rounds, seed=0,
                elo=elo_state["ratings"].get(spec.key, {}), info=info,
            )
        categories.append(entry)

    style_entry = _style_entry(previous.data if previous else None, last_vote_id, names, info)
    excluded = Vote.objects.filter(pk__lte=last_vote_id).aggregate(
        votes=Count("pk"),
        identity_leak=Count("pk", filter=Q(identity_leak=True)),
        named_mode=Count("pk", filter=~Q(battle__mode=Battle.Mode.ANONYMOUS)),
        side_error=Count("pk", filter=Q(side_error=True)),
    )
    excluded.update(quality.excluded_counts(last_vote_id))  # side_incomplete, too_fast, … (arena/quality.py)
    counted = int(sum(g[3] for g in groups))
    now = timezone.now()
    data = {
        "version": SNAPSHOT_VERSION,
        "created_at": now.isoformat(),
        "last_vote_id": last_vote_id,
        "totals": {"votes": excluded.pop("votes"), "counted": counted},
        "excluded": excluded,
        "anchor": _anchor_dict(anchor),
        "categories": categories,
        "style_control": style_entry,
    }
    data["totals"]["excluded"] = data["totals"]["votes"] - counted
    with transaction.atomic():
        snapshot = RatingSnapshot.objects.create(
            created_at=now, last_vote_id=last_vote_id, data=data, elo_state=elo_state,
            # A carried-over style board is not current: the next periodic refresh completes it.
            fingerprint=fingerprint if style_entry["last_vote_id"] == last_vote_id else "",
            compute_ms=(time.perf_counter() - started) * 1000.0,
        )
        stale = RatingSnapshot.objects.order_by("-pk").values_list("pk", flat=True)[KEEP_SNAPSHOTS:]
        RatingSnapshot.objects.filter(pk__in=list(stale)).delete()
    logger.info(
        "rating snapshot %s: %s counted votes, %s categories, %s Elo, style control %s, %.0f ms", snapshot.pk,
        counted, len(categories), "full" if elo_state["full_recompute"] else "incremental",
        "refitted" if style_entry["last_vote_id"] == last_vote_id else "carried over", snapshot.compute_ms,
    )
    return snapshot


# ---------------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------------

# The latest snapshot as parsed JSON, per process: pages poll, and a busy board is a few hundred
# kB of JSON that need not be re-read and re-parsed while the latest has not changed. Keyed by
# id and time together: an id alone can come back after a rolled-back insert (SQLite).
_latest_cache: tuple[tuple[int, datetime], RatingSnapshot] | None = None


def snapshot_latest() -> RatingSnapshot | None:
    """The newest snapshot (without its Elo state), or None before the first one."""
    global _latest_cache
    key = RatingSnapshot.objects.order_by("-pk").values_list("pk", "created_at").first()
    if key is None:
        return None
    cached = _latest_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    snapshot = RatingSnapshot.objects.defer("elo_state").filter(pk=key[0]).first()
    if snapshot is not None:
        _latest_cache = (key, snapshot)
    return snapshot


def snapshot_is_current() -> bool:
    """True when the latest snapshot was computed from exactly the current votes, models and settings."""
    latest = RatingSnapshot.objects.order_by("-pk").values_list("fingerprint", flat=True).first()
    return latest is not None and latest == snapshot_fingerprint()


def categories_list(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The categories worth a tab: the fixed ones always, languages once they have enough votes."""
    return [c for c in data["categories"] if not c["key"].startswith("lang-") or c["enough_votes"]]


def board_get(data: Mapping[str, Any], category: str, style: bool = False) -> dict[str, Any]:
    """One category's entry of a snapshot's data (see :func:`snapshot_create`).

    Raises :class:`UnknownCategory` for a key the snapshot does not hold, or for style control
    on anything but ``overall``.
    """
    if style:
        if category != "overall":
            raise UnknownCategory(f"Style control is computed for the overall board only, not for {category!r}.")
        return data["style_control"]
    for entry in data["categories"]:
        if entry["key"] == category:
            return entry
    known = ", ".join(c["key"] for c in categories_list(data))
    raise UnknownCategory(f"Unknown category {category!r}; this leaderboard has: {known}.")


def _snapshot_meta(snapshot: RatingSnapshot) -> dict[str, Any]:
    return {
        "id": snapshot.pk,
        "created_at": snapshot.created_at.isoformat(),
        "last_vote_id": snapshot.last_vote_id,
        "compute_ms": round(snapshot.compute_ms, 1),
    }


def _below_threshold_message(entry: Mapping[str, Any]) -> str:
    return (
        f"Not enough votes yet: {entry['votes']} counted vote{'s' if entry['votes'] != 1 else ''} in "
        f"this category; its board appears at {entry['min_votes']}."
    )


def board_payload(snapshot: RatingSnapshot, category: str = "overall", style: bool = False) -> dict[str, Any]:
    """The API's JSON for one category of a snapshot (raises :class:`UnknownCategory`).

    ``{"snapshot": {"id", "created_at", "last_vote_id", "compute_ms"}, "category": {"key", "label",
    "description", "style_control", "votes", "min_votes", "enough_votes"}, "categories": [{"key",
    "label", "votes", "enough_votes"}], "totals": {"models", "votes", "all_votes", "counted_votes",
    "excluded_votes"}, "excluded": {"identity_leak", "named_mode", "side_error"}, "anchor",
    "connectivity": {"is_connected", "components"}, "rows": [...], "message"}``; rows as
    :func:`board_rows`, sorted by rating within each group; ``message`` says why there are no
    rows (below the category's threshold), else None.
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
        "message": None if board else _below_threshold_message(entry),
    }


def counted_votes_exist() -> bool:
    return Vote.objects.counted().exists()


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


def page_context(snapshot: RatingSnapshot | None, category: str = "overall", style: bool = False) -> dict[str, Any]:
    """Everything the leaderboard template shows, plots included as SVG markup (escaped by
    :mod:`arena.plots`). Raises :class:`UnknownCategory` like :func:`board_get`."""

    def url(name: str, key: str, style_on: bool) -> str:
        query = {"category": key, **({"style": "1"} if style_on else {})}
        return f"{reverse(name)}?{urlencode(query)}"

    context: dict[str, Any] = {
        "category": category,
        "style": style,
        "about_intervals": ABOUT_INTERVALS,
        "about_excluded": ABOUT_EXCLUDED,
        "about_elo": ABOUT_ELO,
        "about_style": ABOUT_STYLE,
        "long_prompt_tokens": LONG_PROMPT_TOKENS,
        "multi_turn_min": MULTI_TURN_MIN,
        "api_url": url("leaderboard-api", category, style),
        "csv_url": url("leaderboard-csv", category, style),
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
             "url": url("leaderboard", c["key"], False), "active": c["key"] == category and not style}
            for c in categories_list(data)
        ],
        style_on_url=url("leaderboard", "overall", True),
        style_off_url=url("leaderboard", "overall", False),
        style_entry=data["style_control"],
        updated=datetime.fromisoformat(data["created_at"]),
        style_computed_at=datetime.fromisoformat(entry["computed_at"]) if style and entry.get("computed_at") else None,
    )
    if not board:
        return context
    rows = [_display_row(r) for r in board["rows"]]
    groups = [[r for r in rows if r["group"] == g] for g in range(len(board["components"]))]
    context["groups"] = groups
    context["models_total"] = len(rows)
    context["anchor"] = board["anchor"]
    context["coefficients"] = board.get("coefficients")
    main = groups[0]
    charted = main[:CHART_MODELS]
    heat = board["heatmaps"]
    context["charted"] = len(charted)
    context["heatmap_models"] = len(heat["models"])
    context["plots"] = {
        "ci": plots.ci_chart(charted),
        "win_fraction": plots.heatmap(heat["models"], heat["win_fraction"], kind="win_fraction",
                                      counts=heat["battle_count"]),
        "battle_count": plots.heatmap(heat["models"], heat["battle_count"], kind="battle_count"),
        "win_rate": plots.win_rate_bars(charted),
    }
    return context
