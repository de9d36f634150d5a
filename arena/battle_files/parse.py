"""The pure battle-file parser: FastChat's cleaned-battle schema in, validated dicts (or columns) out.

Standard library and orjson only (no Django, no database); storing and exporting votes is
:mod:`arena.battle_files.transfer`, the database side.

A file is either a JSON list of battle objects (``clean_battle_YYYYMMDD.json``) or JSON Lines
(one object per line; blank lines are skipped); gzip-compressed files are recognised by their
magic bytes. Each battle needs ``model_a``, ``model_b`` (different non-empty strings) and
``winner`` (one of :data:`WINNERS`); ``tstamp`` (seconds, a number) is optional; every other
key (``anony``, ``language``, ``conv_metadata``, ...) is kept untouched.

The whole file is validated before anything is returned: the first bad battle raises
:class:`BattleFileError` naming its line (JSON Lines, 1-based) or list index (JSON, 0-based)
and the reason.

This is the arena's one reader of JSON / JSON Lines battle files (:func:`file_bytes` for
gzip, :func:`iter_records` for the records; ``arena.battle_files.transfer`` builds on them). It parses with
orjson, not the standard ``json``: a C parser working on the raw bytes (no decoding to ``str``
first) that reads a battle line 2–3× faster, and it is one small wheel with no dependencies
(pyarrow's JSON reader is faster still on uniform files but is a 40 MB dependency, and infers
one schema per file, which the free-form ``conv_metadata`` / ``conversation_*`` fields of
real files break). Lines are split on ``\n`` only (JSON allows U+2028 inside strings). As JSON
requires, ``NaN`` and ``Infinity`` are invalid JSON.

:func:`arena.battle_files.arrays.read_battle_arrays` reads a file into the columns the ratings need,
with the same checks and errors.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

__all__ = [
    "WINNERS",
    "BattleFileError",
    "file_bytes",
    "iter_records",
    "parse_battles",
    "read_battles",
    "votes_hash",
]

#: Allowed ``winner`` values (the same as ``arena.ratings.WINNERS``).
WINNERS: tuple[str, str, str, str] = ("model_a", "model_b", "tie", "tie (bothbad)")


class BattleFileError(ValueError):
    """A malformed battle file.

    ``line``: 1-based line number (JSON Lines, or the position of a JSON syntax error);
    ``index``: 0-based list index of the bad battle in a JSON list; ``reason``: what is wrong.
    """

    def __init__(
        self, reason: str, *, source: str, line: int | None = None, index: int | None = None
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.index = index
        where = f"line {line}" if line is not None else f"item [{index}]" if index is not None else "file"
        super().__init__(f"{source}, {where}: {reason}")


def _check(record: Any) -> str | None:
    """The reason ``record`` is not a valid battle, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for key in ("model_a", "model_b", "winner"):
        if key not in record:
            return f"missing field {key!r}"
    for key in ("model_a", "model_b"):
        value = record[key]
        if not isinstance(value, str):
            return f"{key} must be a string, got {type(value).__name__} {value!r}"
        if not value.strip():
            return f"{key} is empty"
    if record["model_a"] == record["model_b"]:
        return f"model_a and model_b are the same model {record['model_a']!r}"
    if record["winner"] not in WINNERS:  # also rejects non-strings
        return f"unknown winner {record['winner']!r} (expected one of {', '.join(WINNERS)})"
    tstamp = record.get("tstamp")
    if tstamp is not None and (
        isinstance(tstamp, bool) or not isinstance(tstamp, int | float) or not math.isfinite(tstamp)
    ):
        return f"tstamp must be a finite number, got {tstamp!r}"
    return None


_BOM = b"\xef\xbb\xbf"


def _invalid(raw: bytes, exc: orjson.JSONDecodeError, *, source: str, line: int) -> BattleFileError:
    """The error for bytes orjson rejected: bad UTF-8 is named as such, anything else is invalid JSON."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return BattleFileError("not valid UTF-8", source=source, line=line + raw[: bad.start].count(b"\n"))
    return BattleFileError(f"invalid JSON: {exc.msg}", source=source, line=line)


def file_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file, gunzipped when it starts with gzip's magic bytes (``OSError`` if unreadable)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def iter_records(data: bytes | str, *, source: str = "<string>") -> Iterator[tuple[Any, int | None, int | None]]:
    """``(record, line, index)`` for every record of a JSON list (``index``, 0-based) or JSON Lines
    text (``line``, 1-based; blank lines skipped), in file order; records are not checked.

    A leading byte-order mark is skipped. Raises :class:`BattleFileError` for invalid JSON or
    UTF-8 (a JSON list is parsed whole, so that happens before the first record).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    raw = raw.removeprefix(_BOM)
    if raw[re.match(rb"\s*", raw).end() :].startswith(b"["):
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _invalid(raw, exc, source=source, line=exc.lineno) from None
        for index, record in enumerate(items):
            yield record, None, index
        return
    yield from _iter_lines(raw.split(b"\n"), 1, source)


def _iter_lines(lines: list[bytes], first_line: int, source: str) -> Iterator[tuple[Any, int, None]]:
    """``(record, line, None)`` for JSON Lines already split, the first being line ``first_line``."""
    loads = orjson.loads
    for number, line in enumerate(lines, start=first_line):
        try:
            record = loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.strip():
                continue
            raise _invalid(line, exc, source=source, line=number) from None
        yield record, number, None


def _time_order_error(source: str, line: int | None, index: int | None) -> BattleFileError:
    return BattleFileError(
        "missing tstamp while other battles have one (their time order would be ambiguous)",
        source=source, line=line, index=index,
    )


def parse_battles(text: str | bytes, *, source: str = "<string>") -> list[dict[str, Any]]:
    """Parse and validate battles from the text (or UTF-8 bytes) of a JSON or JSON Lines file.

    Returns the battle objects, sorted by ``tstamp`` (stable, so equal stamps keep file order)
    when battles carry one, else in file order. If some battles have a ``tstamp`` and others do
    not, the time order is ambiguous and the first battle without one is an error.
    """
    battles: list[dict[str, Any]] = []
    first_unstamped: tuple[int | None, int | None] | None = None
    stamped = 0
    for record, line, index in iter_records(text, source=source):
        reason = _check(record)
        if reason:
            raise BattleFileError(reason, source=source, line=line, index=index)
        if record.get("tstamp") is None:
            first_unstamped = first_unstamped or (line, index)
        else:
            stamped += 1
        battles.append(record)
    if stamped and first_unstamped is not None:
        raise _time_order_error(source, *first_unstamped)
    if stamped:
        battles.sort(key=lambda rec: rec["tstamp"])  # list.sort is stable
    return battles


def read_battles(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and validate a battle file (JSON list or JSON Lines, optionally gzip-compressed).

    See :func:`parse_battles`. Raises :class:`BattleFileError` for malformed content (and
    ``OSError`` for an unreadable file); text must be UTF-8.
    """
    return parse_battles(file_bytes(path), source=os.fspath(path))


def votes_hash(rows: Iterable[tuple[str, str, str, float]]) -> str:
    """SHA-256 of a vote set: of its sorted ``(model_a, model_b, winner, count)`` table.

    ``rows`` may repeat a triple (counts add up) and be in any order, so the same votes give the
    same digest whether they come from the database's GROUP BY or from a battle file (one row per
    battle, count 1). Which model was shown as A is part of a vote; its time and rater are not.
    """
    table: dict[tuple[str, str, str], float] = {}
    for model_a, model_b, winner, count in rows:
        table[(model_a, model_b, winner)] = table.get((model_a, model_b, winner), 0) + count
    canonical = sorted([*key, int(n)] for key, n in table.items() if n)
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
