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

:func:`read_battle_arrays` aggregates while reading: it keeps only three small integers and a
time stamp per battle (dicts live one block of 65,536 records at a time, and a JSON Lines file is read 4 MB at a time), which is what
``manage.py compute_ratings`` needs. It parses each distinct line of a block once when lines
repeat (a file without time stamps repeats a few thousand lines) and turns the records into
columns with C-level loops (``map``, ``set``, ``np.fromiter``); a block with anything unusual
is redone record by record, so its errors are exactly those of :func:`parse_battles`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter, methodcaller
from typing import Any, BinaryIO

import numpy as np
import orjson

__all__ = [
    "WINNERS",
    "BattleArrays",
    "BattleFileError",
    "file_bytes",
    "iter_records",
    "parse_battles",
    "read_battle_arrays",
    "arrays_votes_hash",
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


@dataclass(frozen=True)
class BattleArrays:
    """The battles of a file as columns, in time order (``tstamp``, stable) when they carry one.

    ``models``: names, sorted; ``model_a``, ``model_b``: int64 indices into ``models``;
    ``outcome``: int64 codes, the index in :data:`WINNERS`; ``n``: number of battles.
    """

    models: list[str]
    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray

    @property
    def n(self) -> int:
        return len(self.outcome)


_CODE = {w: k for k, w in enumerate(WINNERS)}
_GET_A, _GET_B, _GET_WINNER = itemgetter("model_a"), itemgetter("model_b"), itemgetter("winner")
_GET_TSTAMP = methodcaller("get", "tstamp")
_STAMP_TYPES = frozenset({type(None), int, float})
#: Records per block of the bulk path (bounds the dicts alive at once to a few tens of MB).
_BLOCK = 1 << 16


class _Columns:
    """Battles gathered block by block as index / code / time-stamp arrays (models numbered in
    order of first appearance); a block goes through the bulk path when every record in it is
    plainly valid, else record by record with the full check (same errors as :func:`parse_battles`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.index: dict[str, int] = {}
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.first_unstamped: tuple[int | None, int | None] | None = None

    def bulk(self, records: list[Any], line: int | None, index: int | None, repeat: np.ndarray | None = None) -> bool:
        """Add a block of records (the first at ``line`` or list ``index``; consecutive) with C-level
        loops only; False (nothing added) when any record needs the full check. ``repeat``: the
        block is ``records[repeat]`` (each distinct line parsed once)."""
        try:
            names_a, names_b = list(map(_GET_A, records)), list(map(_GET_B, records))
            winners, stamps = list(map(_GET_WINNER, records)), list(map(_GET_TSTAMP, records))
            new = (set(names_a) | set(names_b)).difference(self.index)
            if not set(winners) <= _CODE.keys() or not set(map(type, stamps)) <= _STAMP_TYPES:
                return False
        except (KeyError, TypeError):  # not a dict, a missing field, an unhashable value
            return False
        if any(type(m) is not str or not m.strip() for m in new):
            return False
        for m in new:
            self.index[m] = len(self.index)
        n = len(records)
        ia = np.fromiter(map(self.index.__getitem__, names_a), np.int64, n)
        ib = np.fromiter(map(self.index.__getitem__, names_b), np.int64, n)
        if (ia == ib).any():
            return False
        code = np.fromiter(map(_CODE.__getitem__, winners), np.int64, n)
        t = np.array(stamps, dtype=np.float64)  # None → NaN
        if repeat is not None:
            ia, ib, code, t = ia[repeat], ib[repeat], code[repeat], t[repeat]
        unstamped = np.flatnonzero(np.isnan(t))
        if unstamped.size and self.first_unstamped is None:
            k = int(unstamped[0])
            self.first_unstamped = (None if line is None else line + k, None if index is None else index + k)
        self.parts.append((ia, ib, code, t))
        return True

    def one_by_one(self, records: Iterable[tuple[Any, int | None, int | None]]) -> None:
        """Add records with the full check of each (:class:`BattleFileError` for the first bad one)."""
        ia, ib, code, t = [], [], [], []
        for record, line, where in records:
            reason = _check(record)
            if reason:
                raise BattleFileError(reason, source=self.source, line=line, index=where)
            ia.append(self.index.setdefault(record["model_a"], len(self.index)))
            ib.append(self.index.setdefault(record["model_b"], len(self.index)))
            code.append(_CODE[record["winner"]])
            ts = record.get("tstamp")
            if ts is None and self.first_unstamped is None:
                self.first_unstamped = (line, where)
            t.append(math.nan if ts is None else ts)
        self.parts.append((np.array(ia, np.int64), np.array(ib, np.int64), np.array(code, np.int64),
                           np.array(t, np.float64)))

    def arrays(self) -> BattleArrays:
        """The battles, stably sorted by time stamp when they carry one, models renumbered by name."""
        ia, ib, code, t = (np.concatenate([p[k] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
                           for k in range(4))
        stamped = ~np.isnan(t.astype(np.float64))
        if stamped.any() and self.first_unstamped is not None:
            raise _time_order_error(self.source, *self.first_unstamped)
        if stamped.any():
            order = np.argsort(t, kind="stable")
            ia, ib, code = ia[order], ib[order], code[order]
        names = sorted(self.index)
        renumber = np.empty(len(names), dtype=np.int64)
        renumber[[self.index[m] for m in names]] = np.arange(len(names))
        return BattleArrays(names, renumber[ia], renumber[ib], code)


def _distinct(block: list[bytes]) -> tuple[list[bytes], np.ndarray | None]:
    """The distinct lines of a block and where each line of the block is among them, when lines
    repeat enough to pay for it (files without time stamps repeat a few thousand lines), else the
    block itself and None. Parsing a line once and copying its columns is ~5x cheaper than parsing."""
    sample = block[:1024]
    if 2 * len(set(sample)) > len(sample):  # mostly distinct (time stamps): not worth hashing them all
        return block, None
    first = dict.fromkeys(block)
    if 2 * len(first) > len(block):
        return block, None
    position = dict(zip(first, range(len(first)), strict=True))
    return list(first), np.fromiter(map(position.__getitem__, block), np.int64, len(block))


#: Bytes read at a time from a JSON Lines file (the whole file is never held: ~40 MB at once
#: instead of ~400 MB for 1.67M battles, and fewer page faults).
_CHUNK = 4 << 20


def _open_battle_file(path: str | os.PathLike[str]) -> BinaryIO:
    """The file as a binary stream, gunzipped on the fly when it starts with gzip's magic bytes."""
    fh = open(path, "rb")  # noqa: SIM115 (returned to the caller's ``with``)
    if fh.peek(2)[:2] != b"\x1f\x8b":
        return fh
    fh.close()
    return gzip.open(path, "rb")


def _line_chunks(head: bytes, fh: BinaryIO) -> Iterator[tuple[int, list[bytes]]]:
    """``(number of the first line, lines)`` for JSON Lines that start with ``head`` and go on in
    ``fh``, about :data:`_CHUNK` bytes at a time, split at newlines. The blank lines that end a chunk
    are dropped (blank lines are skipped anywhere, and the numbering counts them)."""
    first, rest = 1, b""
    data = head
    while data:
        buf = rest + data
        cut = buf.rfind(b"\n") + 1
        rest = buf[cut:]
        lines = buf[:cut].split(b"\n")
        lines.pop()  # the empty piece after the chunk's last newline
        count = len(lines)
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            yield first, lines
        first += count
        data = fh.read(_CHUNK)
    if rest.strip():  # a last line without a newline
        yield first, [rest]


def _json_lines_block(columns: _Columns, block: list[bytes], first_line: int) -> None:
    distinct, repeat = _distinct(block)
    try:
        records = list(map(orjson.loads, distinct))  # raises on a blank or invalid line: then one by one
    except orjson.JSONDecodeError:
        records = None
    if records is None or not columns.bulk(records, first_line, None, repeat):
        columns.one_by_one(_iter_lines(block, first_line, columns.source))


def read_battle_arrays(path: str | os.PathLike[str]) -> BattleArrays:
    """Read and validate a battle file like :func:`read_battles`, keeping only the columns the
    ratings need (same errors, same order, far less memory and time: no dict is kept).

    Bulk path: blocks of :data:`_BLOCK` records are parsed (orjson, one call per line but no Python
    code per line) and turned into columns by ``map`` / ``set`` / ``np.fromiter``, the checks done
    once per distinct model name, winner and time-stamp type; a block with anything unusual (a
    blank or invalid line, a bad record) is redone record by record with the full check, so the
    errors are those of :func:`parse_battles`. About 0.5 µs per battle on top of orjson's parse.
    JSON Lines are read :data:`_CHUNK` bytes at a time; a JSON list is parsed whole.
    """
    source = os.fspath(path)
    columns = _Columns(source)
    with _open_battle_file(path) as fh:
        head = fh.read(_CHUNK).removeprefix(_BOM)
        while head.isspace() and (more := fh.read(_CHUNK)):
            head += more
        if head.lstrip().startswith(b"["):
            raw = head + fh.read()
            try:
                items = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise _invalid(raw, exc, source=source, line=exc.lineno) from None
            for start in range(0, len(items), _BLOCK):
                block = items[start : start + _BLOCK]
                if not columns.bulk(block, None, start):
                    columns.one_by_one((record, None, start + k) for k, record in enumerate(block))
        else:
            for first, lines in _line_chunks(head, fh):
                for start in range(0, len(lines), _BLOCK):
                    _json_lines_block(columns, lines[start : start + _BLOCK], first + start)
    return columns.arrays()


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


def arrays_votes_hash(battles: BattleArrays) -> str:
    """:func:`votes_hash` of the battles read by :func:`read_battle_arrays`."""
    n = len(battles.models)
    cells, counts = np.unique((battles.model_a * n + battles.model_b) * 4 + battles.outcome, return_counts=True)
    return votes_hash(
        (battles.models[k // 4 // n], battles.models[k // 4 % n], WINNERS[k % 4], int(c))
        for k, c in zip(cells.tolist(), counts.tolist(), strict=True)
    )
