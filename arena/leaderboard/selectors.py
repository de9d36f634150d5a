"""Leaderboard reads: the counted votes aggregated in SQL, and the stored snapshots.

Vote reads (:func:`counted_vote_groups`, :func:`language_vote_groups`, :func:`style_vote_arrays`)
count in SQL, so no vote row reaches Python except for style control, which needs one row per
vote and reads them straight into numpy. Snapshot reads (:func:`snapshot_latest`,
:func:`board_get`, :func:`categories_list`) serve pages and the API, so a page view never fits
anything. Nothing here writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    FloatField,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce

from arena.leaderboard.categories import (
    FIXED_CATEGORIES,
    LONG_PROMPT_TOKENS,
    MULTI_TURN_MIN,
    SNAPSHOT_VERSION,
)
from arena.leaderboard.settings import board_settings
from arena.models import BoardChange, Contestant, RatingSnapshot, Vote
from arena.ratings import STYLE_FEATURE_NAMES, WINNERS
from serving.models import ServedModel


class UnknownCategory(ValueError):
    """A category (or style-control choice) that the snapshot does not hold; the message says which exist."""


def counted_with_facts(last_vote_id: int) -> QuerySet:
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
    """Per-vote arrays for :func:`arena.leaderboard.boards.style_board_build`: ``(models, (a, b,
    outcome, style_a, style_b), skipped)``, ``skipped`` counting the votes without style counts
    (imported without them), which are left out.

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


def model_info() -> tuple[dict[int, str], dict[str, tuple[str, str]]]:
    """``(id → public name, public name → (organization, license))`` of every model, served or imported."""
    names: dict[int, str] = {}
    info: dict[str, tuple[str, str]] = {}
    for pk, name, org, lic in ServedModel.objects.values_list("pk", "public_name", "organization", "license"):
        names[pk] = name
        info[name] = (org, lic)
    return names, info


def settings_key() -> dict[str, Any]:
    """The settings a snapshot depends on (part of :func:`snapshot_fingerprint`)."""
    return {
        "version": SNAPSHOT_VERSION,
        "anchor": settings.ARENA_LEADERBOARD_ANCHOR,
        "min_votes": settings.ARENA_LEADERBOARD_MIN_VOTES,
        "category_min_votes": settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES,
        "rounds": settings.ARENA_LEADERBOARD_ROUNDS,
        "style_rounds": settings.ARENA_LEADERBOARD_STYLE_ROUNDS,
        **board_settings(),
        "retired": sorted(retired_names()),  # not a setting, but a retirement must refit the board
    }


def snapshot_fingerprint() -> str:
    """A digest of everything a snapshot depends on: the votes (how many, up to which id, which
    count), the models' names and descriptions, and the leaderboard settings. Two reads give
    the same digest exactly when a new snapshot would show the same thing."""
    votes = Vote.objects.aggregate(n=Count("pk"), last=Max("pk"))
    counted = Vote.objects.counted().aggregate(n=Count("pk"), ids=Sum("pk"))
    counted["ids"] = int(counted["ids"] or 0)
    models = list(ServedModel.objects.order_by("pk").values_list("pk", "public_name", "organization", "license"))
    blob = json.dumps([votes, counted, models, settings_key()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def counted_votes_exist() -> bool:
    """Whether any vote counts (before the first snapshot: are ratings pending?)."""
    return Vote.objects.counted().exists()


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
    """One category's entry of a snapshot's data (see :func:`arena.leaderboard.services.snapshot_create`).

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


def overall_row(snapshot: RatingSnapshot, name: str) -> dict[str, Any] | None:
    """The model's row on a snapshot's overall board (``rating``, ``ci_low``, ``ci_high``, ``rank``,
    ``provisional``, ``battles``, …), or None when the board does not hold it."""
    try:
        board = board_get(snapshot.data, "overall")["board"]
    except (UnknownCategory, KeyError, TypeError):
        return None
    for row in (board or {}).get("rows", []):
        if row["model"] == name:
            return row
    return None


def retired_names() -> set[str]:
    """Public names of the retired models (see :mod:`arena.pairing.retirement`)."""
    return set(Contestant.objects.filter(retired_at__isnull=False).values_list("served_model__public_name", flat=True))


def changelog(limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` board changes, public: ``{"at", "kind", "label", "model", "votes", "reason"}``
    (no actor: staff names stay in the admin)."""
    return [
        {"at": c.created_at.isoformat(), "kind": c.kind, "label": c.get_kind_display(), "model": c.model_name,
         "votes": c.votes, "reason": c.reason}
        for c in BoardChange.objects.all()[:limit]
    ]
