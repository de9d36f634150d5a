"""Streaming, bounded reading of dataset files: bytes, a path or a binary file object -> decoded JSON rows.

Standard library only (the engine-side runner imports it too through ``training.formats``).

Contract of ``iter_raw_rows(source, max_bytes=None)``:

* gzip is detected by its magic bytes, whatever the file name, and decompressed as a stream;
* ``max_bytes`` bounds the *decompressed* bytes read: past it, reading stops at once with a
  ``FileProblem`` (a small gzip of zeros never grows past the bound in memory);
* JSON Lines are parsed line by line as they are read, so memory holds one line at a time
  (plus the rows the caller keeps); a document whose first non-blank character is ``[`` is
  one JSON array, read whole (up to ``max_bytes``) and parsed element by element;
* the text must be UTF-8 (a BOM is tolerated; UTF-16 is refused with a clear reason);
* it yields ``(line, value)`` where value is the decoded JSON or a ``RowInvalid`` saying why
  the line is not JSON; a problem with the file as a whole raises ``FileProblem(line, reason)``
  (line 0: the whole file; ``TooLarge`` past ``max_bytes``). Lines are 1-based and split on ``\\n`` only.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_WS = re.compile(r"[ \t\n\r]*")


class RowInvalid(ValueError):
    """One row cannot be normalised; the message is the reason shown to the user."""


class FileProblem(Exception):
    """The file as a whole cannot be read (``line`` 0) or breaks off at ``line``."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line
        self.reason = reason


class TooLarge(FileProblem):
    """The file is larger than the bound it is read under."""


class _Bounded(io.RawIOBase):
    """A read-only stream that refuses to deliver more than ``max_bytes`` bytes."""

    def __init__(self, stream: BinaryIO, max_bytes: int | None, what: str):
        self.stream, self.max_bytes, self.what, self.total = stream, max_bytes, what, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.stream.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            raise FileProblem(0, f"the file starts like gzip but cannot be decompressed ({exc})") from None
        self.total += len(data)
        if self.max_bytes is not None and self.total > self.max_bytes:
            raise TooLarge(0, f"the file is larger than {self.max_bytes} bytes{self.what}")
        buffer[: len(data)] = data
        return len(data)


def _open(source: Any) -> tuple[BinaryIO, bool]:
    """A binary stream positioned at the start, and whether we opened it (and must close it)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, str | os.PathLike):
        return open(source, "rb"), True  # noqa: SIM115 - closed by iter_raw_rows
    if hasattr(source, "read"):
        if hasattr(source, "seek") and (not hasattr(source, "seekable") or source.seekable()):
            source.seek(0)
            return source, False
        return io.BytesIO(source.read()), True
    raise TypeError(f"expected bytes, a path or a binary file object, got {type(source).__name__}")


def _decompressed(stream: BinaryIO, max_bytes: int | None) -> io.BufferedReader:
    head = stream.read(2)
    if isinstance(head, str):
        raise TypeError("file objects must be opened in binary mode")
    stream.seek(0)
    if head == GZIP_MAGIC:
        inner: BinaryIO = gzip.GzipFile(fileobj=stream)
        what = " when decompressed"
    else:
        inner, what = stream, ""
    return io.BufferedReader(_Bounded(inner, max_bytes, what), buffer_size=_CHUNK)


def _decode(raw: bytes, lineno: int) -> str:
    """``raw`` starts at line ``lineno``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = lineno + raw.count(b"\n", 0, exc.start)
        raise FileProblem(
            line, f"the file is not valid UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line})"
        ) from None


def _json_line(lineno: int, line: str) -> tuple[int, Any]:
    try:
        return lineno, json.loads(line)
    except json.JSONDecodeError as exc:
        return lineno, RowInvalid(f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return lineno, RowInvalid("invalid JSON: nested too deeply")


def _iter_json_array(text: str, start: int, first_line: int) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos, line = 0, first_line

    def line_at(i: int) -> int:
        nonlocal pos, line
        line += text.count("\n", pos, i)
        pos = i
        return line

    i = _WS.match(text, start + 1).end()
    if text.startswith("]", i):
        i = _WS.match(text, i + 1).end()
        if i != len(text):
            raise FileProblem(line_at(i), "unexpected text after the JSON array")
        return
    while True:
        row_line = line_at(i)
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise FileProblem(first_line - 1 + exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise FileProblem(row_line, "invalid JSON: nested too deeply") from None
        yield row_line, obj
        i = _WS.match(text, end).end()
        if text.startswith(",", i):
            i = _WS.match(text, i + 1).end()
            continue
        if text.startswith("]", i):
            i = _WS.match(text, i + 1).end()
            if i != len(text):
                raise FileProblem(line_at(i), "unexpected text after the JSON array")
            return
        raise FileProblem(line_at(i), "invalid JSON: expected ',' or ']' after an array element")


def _iter_stream(reader: io.BufferedReader) -> Iterator[tuple[int, Any]]:
    if reader.peek(2)[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise FileProblem(0, "the file is UTF-16 text; save it as UTF-8")
    started = False
    for lineno, raw in enumerate(reader, start=1):
        line = _decode(raw, lineno)
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        stripped = line.strip()
        if not stripped:
            continue
        if not started and stripped.startswith("["):
            # One JSON array: read the rest (bounded) and parse it element by element.
            rest = _decode(reader.read(), lineno + 1)
            text = line + rest
            yield from _iter_json_array(text, _WS.match(text).end(), lineno)
            return
        started = True
        yield _json_line(lineno, stripped)


def iter_raw_rows(source: Any, *, max_bytes: int | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, decoded JSON value or RowInvalid)``; raises ``FileProblem`` (see the module docstring)."""
    stream, owned = _open(source)
    try:
        yield from _iter_stream(_decompressed(stream, max_bytes))
    finally:
        if owned:
            stream.close()


def read_text(source: Any, *, max_bytes: int | None = None) -> str:
    """The whole (decompressed, bounded) source as UTF-8 text; raises ``FileProblem`` as ``iter_raw_rows``."""
    stream, owned = _open(source)
    try:
        return _decode(_decompressed(stream, max_bytes).read(), 1)
    finally:
        if owned:
            stream.close()
