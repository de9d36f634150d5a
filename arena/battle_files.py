"""The pure battle-file parser: FastChat's cleaned-battle schema in, validated dicts out.

Standard library only (no Django, no database); storing and exporting votes is
:mod:`arena.battle_io`, the database side.

A file is either a JSON list of battle objects (``clean_battle_YYYYMMDD.json``) or JSON Lines
(one object per line; blank lines are skipped); gzip-compressed files are recognised by their
magic bytes. Each battle needs ``model_a``, ``model_b`` (different non-empty strings) and
``winner`` (one of :data:`WINNERS`); ``tstamp`` (seconds, a number) is optional; every other
key (``anony``, ``language``, ``conv_metadata``, ...) is kept untouched.

The whole file is validated before anything is returned: the first bad battle raises
:class:`BattleFileError` naming its line (JSON Lines, 1-based) or list index (JSON, 0-based)
and the reason.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from typing import Any

__all__ = ["WINNERS", "BattleFileError", "parse_battles", "read_battles"]

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


def parse_battles(text: str, *, source: str = "<string>") -> list[dict[str, Any]]:
    """Parse and validate battles from the text of a JSON or JSON Lines file.

    Returns the battle objects, sorted by ``tstamp`` (stable, so equal stamps keep file order)
    when battles carry one, else in file order. If some battles have a ``tstamp`` and others do
    not, the time order is ambiguous and the first battle without one is an error.
    """
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip()
    located: list[tuple[dict[str, Any], int | None, int | None]] = []  # (record, line, index)
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BattleFileError(f"invalid JSON: {exc.msg}", source=source, line=exc.lineno) from None
        for index, record in enumerate(data):
            reason = _check(record)
            if reason:
                raise BattleFileError(reason, source=source, index=index)
            located.append((record, None, index))
    else:
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise BattleFileError(f"invalid JSON: {exc.msg}", source=source, line=number) from None
            reason = _check(record)
            if reason:
                raise BattleFileError(reason, source=source, line=number)
            located.append((record, number, None))

    stamped = [rec.get("tstamp") is not None for rec, _, _ in located]
    if any(stamped) and not all(stamped):
        _, line, index = located[stamped.index(False)]
        raise BattleFileError(
            "missing tstamp while other battles have one (their time order would be ambiguous)",
            source=source,
            line=line,
            index=index,
        )
    battles = [rec for rec, _, _ in located]
    if battles and all(stamped):
        battles.sort(key=lambda rec: rec["tstamp"])  # list.sort is stable
    return battles


def read_battles(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and validate a battle file (JSON list or JSON Lines, optionally gzip-compressed).

    See :func:`parse_battles`. Raises :class:`BattleFileError` for malformed content (and
    ``OSError`` for an unreadable file); text must be UTF-8.
    """
    source = os.fspath(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BattleFileError("not valid UTF-8", source=source, line=line) from None
    return parse_battles(text, source=source)
