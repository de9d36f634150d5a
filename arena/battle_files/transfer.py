"""Battle files and the database: votes exported to, and battles imported from, FastChat's
cleaned-battle schema (JSON Lines). The Django side; parsing and validating a file is the pure
:mod:`arena.battle_files.parse`.

Export (:func:`battles_export`) writes one object per vote, oldest first::

    {"model_a", "model_b", "winner", "tstamp", "judge", "turn", "anony", "language",
     "conversation_a", "conversation_b", "style", "conv_metadata", "identity_leak", "side_error"}

``judge`` is a salted hash of the rater id (HMAC-SHA256 with ``ARENA_IP_SALT``, 32 hex digits):
votes of one rater can be grouped, the rater cannot be found; neither the IP address nor the
session id ever leaves. ``language`` is the English name of the detected language ("English",
as FastChat writes it; "unknown" when none was detected). ``style`` holds the style counts
style control uses, and ``conv_metadata`` the same counts under FastChat's names
(``sum_assistant_a_tokens``, ``header_count_a``, ``list_count_a``, ``bold_count_a``, and ``_b``;
the arena keeps totals, so each count dict holds one ``"total"`` entry, which FastChat's style
control sums like any other), so that FastChat's tools read the file whole; a vote without
style counts has neither. ``identity_leak``/``side_error`` are the reasons a vote is not counted
(flagged votes are exported only on request).

Import (:func:`battles_file_read` then :func:`battles_import`) reads such a file, or a file
exported by FastChat, so existing arena logs can seed a new deployment. The whole file is
validated first; the first bad battle raises :class:`BattleFileError` naming its line (or list
index) and nothing is stored. Models that this arena does not serve get inactive placeholder
rows on the "imported" endpoint: they appear on the leaderboard and never battle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from arena.battle.costs import battles_usage
from arena.battle_files.parse import BattleFileError, file_bytes, iter_records, parse_battles
from arena.languages import LANGUAGE_NAMES
from arena.leaderboard.refresh import ratings_refresh_soon
from arena.models import Battle, Contestant, Vote
from arena.style import STYLE_FEATURES, approx_tokens
from serving.models import Endpoint, ServedModel

__all__ = [
    "IMPORTED_ENDPOINT",
    "BattleFileError",
    "ImportReport",
    "battle_record",
    "battles_export",
    "battles_file_read",
    "battles_import",
    "judge_hash",
]

#: The placeholder endpoint of imported models: never healthy, so they never battle.
IMPORTED_ENDPOINT = {"name": "imported", "kind": Endpoint.Kind.OPENAI_COMPATIBLE,
                     "base_url": "http://imported.invalid/v1", "healthy": False}
# An imported battle keeps its file's judge as its rater id, marked so that an export gives the
# judge back unchanged instead of hashing a hash (round trips are then exact).
IMPORTED_RATER = "imported:"
_RATER_MAX = 64
_NAME_MAX = 200
_CODE_OF_LANGUAGE = {name.lower(): code for code, name in LANGUAGE_NAMES.items()}


def judge_hash(rater_id: str) -> str:
    """The public stand-in of a rater id: HMAC-SHA256 keyed with ``ARENA_IP_SALT``, 32 hex digits."""
    if rater_id.startswith(IMPORTED_RATER):
        return rater_id.removeprefix(IMPORTED_RATER)
    return hmac.new(settings.ARENA_IP_SALT.encode(), rater_id.encode(), hashlib.sha256).hexdigest()[:32]


def battle_record(vote: Vote) -> dict[str, Any]:
    """One vote as a battle object (the schema in the module docstring); ``vote.battle`` with both models."""
    battle = vote.battle
    return {
        "model_a": battle.model_a.public_name,
        "model_b": battle.model_b.public_name,
        "winner": vote.winner,
        "tstamp": vote.created_at.timestamp(),
        "judge": judge_hash(vote.rater_id),
        "turn": battle.turn_total,
        "anony": battle.mode == Battle.Mode.ANONYMOUS,
        "language": LANGUAGE_NAMES.get(battle.language, battle.language) or "unknown",
        "conversation_a": battle.conversation_a,
        "conversation_b": battle.conversation_b,
        "style": vote.style,
        **({"conv_metadata": _style_to_fastchat(vote.style)} if _style_reason(vote.style) is None and vote.style else {}),
        "identity_leak": vote.identity_leak,
        "side_error": vote.side_error,
    }


def battles_export(out: TextIO, *, include_flagged: bool = False, counted_up_to: int | None = None,
                   include_usage: bool = False) -> int:
    """Write every vote (oldest first) as JSON Lines to ``out``; returns how many.

    By default votes flagged for an identity leak, a failed side or a quality exclusion are left out, as FastChat's
    cleaned files leave them out; ``include_flagged`` writes them too, with their flags.
    Named-mode votes are always written (``"anony": false``), as in FastChat's files.
    ``counted_up_to`` (a snapshot's ``last_vote_id``): exactly the votes that snapshot's boards
    counted instead, so that ``compute_ratings`` on the file reproduces its overall board.
    ``include_usage`` adds ``"usage": {side: {prompt_tokens, completion_tokens, estimated, cost_usd}}``
    (``arena.battle.costs.battles_usage``; admin exports only, never a public file).
    """
    votes = Vote.objects.select_related("battle__model_a", "battle__model_b").order_by("created_at", "pk")
    if counted_up_to is not None:
        votes = votes.filter(pk__in=Vote.objects.counted().filter(pk__lte=counted_up_to).values("pk"))
    elif not include_flagged:
        votes = votes.filter(identity_leak=False, side_error=False, exclusion="")
    usage = battles_usage(votes.values("battle_id")) if include_usage else None
    written = 0
    for vote in votes.iterator(chunk_size=2000):
        record = battle_record(vote)
        if usage is not None:
            record["usage"] = usage.get(vote.battle_id, {})
        # One write per line: Django's command stdout appends a newline to writes lacking one.
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        written += 1
    return written


# ---------------------------------------------------------------------------------------------
# Import: read and validate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedBattle:
    """One validated battle, ready to store."""

    model_a: str
    model_b: str
    winner: str
    created_at: datetime | None
    rater_id: str
    anonymous: bool
    language: str
    turn_total: int
    prompt_tokens: int
    conversation_a: list
    conversation_b: list
    style: dict
    identity_leak: bool
    side_error: bool


def _messages_reason(key: str, value: Any) -> str | None:
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        return f"{key} must be a list of {{\"role\", \"content\"}} messages with text content"
    return None


def _style_reason(style: Any) -> str | None:
    if not isinstance(style, dict) or (style and set(style) != {"a", "b"}):
        return 'style must be {"a": {...}, "b": {...}} or {}'
    for side in style.values():
        if not isinstance(side, dict) or set(side) != set(STYLE_FEATURES) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in side.values()
        ):
            return f"style counts must be non-negative integers for {', '.join(STYLE_FEATURES)}"
    return None


def _style_to_fastchat(style: dict) -> dict[str, Any]:
    """Style counts (``{"a": {...}, "b": {...}}``) as FastChat's ``conv_metadata`` (see the module docstring)."""
    meta: dict[str, Any] = {}
    for side in ("a", "b"):
        counts = style[side]
        meta[f"sum_assistant_{side}_tokens"] = counts["tokens"]
        meta[f"header_count_{side}"] = {"total": counts["headers"]}
        meta[f"list_count_{side}"] = {"total": counts["lists"]}
        meta[f"bold_count_{side}"] = {"total": counts["bold"]}
    return meta


def _style_from_fastchat(meta: Any) -> dict:
    """Style counts from FastChat's ``conv_metadata`` ({} when absent or not in its usual form)."""
    if not isinstance(meta, dict):
        return {}
    style = {}
    try:
        for side in ("a", "b"):
            counts = {
                "tokens": meta[f"sum_assistant_{side}_tokens"],
                "headers": sum(meta[f"header_count_{side}"].values()),
                "lists": sum(meta[f"list_count_{side}"].values()),
                "bold": sum(meta[f"bold_count_{side}"].values()),
            }
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
                return {}
            style[side] = counts
    except (KeyError, AttributeError, TypeError):
        return {}
    return style


def _language_code(value: Any) -> str | None:
    """A langdetect code from a code or an English name; "" for none; None if unusable."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lower() in ("", "unknown", "und"):
        return ""
    if text in LANGUAGE_NAMES:
        return text
    code = _CODE_OF_LANGUAGE.get(text.lower(), text.lower())
    return code if len(code) <= 16 else None


def _convert(record: dict[str, Any]) -> ImportedBattle | str:
    """A validated battle, or the reason the record is not one (on top of read_battles' checks)."""
    for key in ("model_a", "model_b"):
        if len(record[key]) > _NAME_MAX:
            return f"{key} is longer than {_NAME_MAX} characters"
    for key in ("anony", "identity_leak", "side_error"):
        if key in record and not isinstance(record[key], bool):
            return f"{key} must be true or false, got {record[key]!r}"
    turn = record.get("turn")
    if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int) or turn < 0):
        return f"turn must be a non-negative integer, got {turn!r}"
    conversations = {}
    for key in ("conversation_a", "conversation_b"):
        conversations[key] = record.get(key, [])
        reason = _messages_reason(key, conversations[key])
        if reason:
            return reason
    language = _language_code(record.get("language"))
    if language is None:
        return f"language must be a language name or code, got {record.get('language')!r}"
    judge = record.get("judge", "")
    if not isinstance(judge, str):
        return f"judge must be a string, got {judge!r}"
    if "style" in record:
        reason = _style_reason(record["style"])
        if reason:
            return reason
        style = record["style"]
    else:
        style = _style_from_fastchat(record.get("conv_metadata"))
    rater = IMPORTED_RATER + judge
    if len(rater) > _RATER_MAX:  # a foreign judge id too long to keep: keep a stable digest of it
        rater = IMPORTED_RATER + hashlib.sha256(judge.encode()).hexdigest()[:32]
    prompts = [m["content"] for m in conversations["conversation_a"] if m["role"] == "user"]
    tstamp = record.get("tstamp")
    try:
        created_at = datetime.fromtimestamp(tstamp, tz=UTC) if tstamp is not None else None
    except (OverflowError, OSError, ValueError):
        return f"tstamp {tstamp!r} is not a valid time"
    return ImportedBattle(
        model_a=record["model_a"], model_b=record["model_b"], winner=record["winner"], created_at=created_at,
        rater_id=rater, anonymous=record.get("anony", True), language=language,
        turn_total=turn if turn is not None else len(prompts),
        prompt_tokens=max((approx_tokens(p) for p in prompts), default=0),
        conversation_a=conversations["conversation_a"], conversation_b=conversations["conversation_b"],
        style=style, identity_leak=record.get("identity_leak", False), side_error=record.get("side_error", False),
    )


def battles_file_read(path: str | os.PathLike[str]) -> list[ImportedBattle]:
    """Read and validate a whole battle file (JSON Lines or JSON list, gzip accepted).

    Returns the battles in time order (``tstamp``; file order without). Raises
    :class:`BattleFileError` (``.line`` / ``.index``, ``.reason``) for the first bad battle and
    ``OSError`` for an unreadable file.
    """
    source = os.fspath(path)
    raw = file_bytes(path)
    parse_battles(raw, source=source)  # the schema's own checks first, with their messages
    battles: list[ImportedBattle] = []
    for record, line, index in iter_records(raw, source=source):
        result = _convert(record)
        if isinstance(result, str):
            raise BattleFileError(result, source=source, line=line, index=index)
        battles.append(result)
    if battles and all(b.created_at is not None for b in battles):
        battles.sort(key=lambda b: b.created_at)  # type: ignore[arg-type, return-value]
    return battles


# ---------------------------------------------------------------------------------------------
# Import: store
# ---------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    battles: int = 0
    models_created: list[str] = field(default_factory=list)


@transaction.atomic
def battles_import(battles: list[ImportedBattle], *, batch_size: int = 2000) -> ImportReport:
    """Store validated battles with their votes, all or nothing; returns what was created.

    Each battle is stored voted, in the mode its ``anony`` says, dated by its ``tstamp`` (now
    when it has none). Unknown model names become inactive placeholder models on the
    :data:`IMPORTED_ENDPOINT`. The leaderboard is refreshed after the commit.
    """
    report = ImportReport()
    names = {b.model_a for b in battles} | {b.model_b for b in battles}
    models = {m.public_name: m for m in ServedModel.objects.filter(public_name__in=names)}
    missing = sorted(names - set(models))
    if missing:
        spec = dict(IMPORTED_ENDPOINT)
        endpoint, _ = Endpoint.objects.get_or_create(name=spec.pop("name"), defaults=spec)
        for name in missing:
            models[name] = ServedModel.objects.create(
                public_name=name, endpoint=endpoint, engine_model_id=name, active=False,
                description="Imported from a battle file; not served here.",
            )
            Contestant.objects.create(served_model=models[name], sampling_weight=0.0)
        report.models_created = missing
    now = timezone.now()
    for start in range(0, len(battles), batch_size):
        chunk = battles[start : start + batch_size]
        rows = Battle.objects.bulk_create([
            Battle(
                model_a=models[b.model_a], model_b=models[b.model_b], status=Battle.Status.VOTED,
                mode=Battle.Mode.ANONYMOUS if b.anonymous else Battle.Mode.NAMED,
                conversation_a=b.conversation_a, conversation_b=b.conversation_b, language=b.language,
                turn_total=min(b.turn_total, 32767), prompt_tokens=b.prompt_tokens, rater_id=b.rater_id,
                created_at=b.created_at or now,
            )
            for b in chunk
        ])
        Vote.objects.bulk_create([
            Vote(battle=row, winner=b.winner, rater_id=b.rater_id, identity_leak=b.identity_leak,
                 side_error=b.side_error, style=b.style, created_at=b.created_at or now)
            for row, b in zip(rows, chunk, strict=True)
        ])
        report.battles += len(chunk)

    transaction.on_commit(ratings_refresh_soon)
    return report
