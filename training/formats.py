"""Training dataset formats: raw rows -> normalised records, with validation.

Standard library only: the web app (no torch) validates uploads with this module and
the engine-side runner re-reads the normalised JSONL with it.

Input formats (``FORMATS`` maps each to its *kind*):

``messages`` (sft)
    ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``, the
    UltraChat-200k / Zephyr SFT format. Extra keys (``id``, ``prompt``, ...) are ignored.
    An optional system message comes first, then user/assistant turns alternate starting
    with a user turn. A conversation that ends on a user turn (UltraChat ``test_gen`` rows
    do) has that one trailing user turn dropped by default (``trailing_user="drop"``; the
    count is reported in ``ParseResult.notes``) because it has no reply to learn from;
    ``trailing_user="error"`` rejects such rows instead.
``prompt-completion`` (sft)
    ``{"prompt": str | messages, "completion": str | messages}``. A string prompt is one
    user turn, a string completion one assistant turn. The prompt must end on a user turn
    and the completion start with an assistant turn.
``alpaca`` (sft)
    ``{"instruction": str, "input": str?, "output": str, "history": [[user, assistant], ...]?,
    "system": str?}`` (LIMA as shipped by LLaMA-Factory). The user turn is the instruction,
    followed by a blank line and the input when the input is not empty.
``hh-rlhf`` (preference)
    ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}`` (Anthropic HH-RLHF).
    Turns are split on ``"\\n\\nHuman:"`` / ``"\\n\\nAssistant:"``; text is stripped.
    Empty turns before the final one are dropped (one real row has an empty Assistant turn
    mid-conversation), then consecutive turns by the same speaker (the collection UI let the
    assistant send two messages in a row; 25 of the 4,666 rows in the shipped test files
    have this) are merged with a blank line. The two strings must hold the same turns before their final
    Assistant turn; that shared part is the prompt and the two final turns are the replies.
    An empty final reply is kept (it is a real data point: in harmless-base an empty
    answer is sometimes the preferred one) and counted in the notes.
``preference`` (preference)
    ``{"prompt": str | messages, "chosen": str | messages, "rejected": str | messages}``
    (TRL's explicit-prompt format). ``chosen``/``rejected`` may repeat the prompt messages
    first (UltraFeedback-binarized style); that copy is removed. Without ``prompt`` both
    replies must be message lists and their shared leading messages are the prompt
    (TRL's implicit-prompt format). After that each reply is exactly one assistant message.

``kto`` (unpaired)
    ``{"prompt": str | messages, "completion": str | messages, "label": bool}`` (TRL's unpaired
    preference format, what ``KTOTrainer`` takes): one answer, desirable (true) or not.
``prompts`` (prompt)
    ``{"prompt": str | messages}``: prompts for online RL, which generates the answers.
``text`` (text)
    ``{"text": str}``: raw text for continued pretraining.
``raw-text`` (text)
    A plain UTF-8 text file (not JSON): one document per block between lines holding only
    ``---``, or the whole file as one document.

Normalised records (what ``ParseResult.rows`` holds and the runner trains on):

* sft: ``{"messages": [...]}`` -- optional system, alternating user/assistant, ends with
  an assistant turn.
* preference: ``{"prompt": [... ends with a user turn], "chosen": [{"role": "assistant",
  "content": ...}], "rejected": [{"role": "assistant", "content": ...}]}`` (TRL's
  conversational preference format). Reply content may be empty, nothing else may.
* unpaired: ``{"prompt": [...], "completion": [{"role": "assistant", ...}], "label": bool}``.
* prompt: ``{"prompt": [... ends with a user turn]}``.
* text: ``{"text": str}``.

Normalised records are valid input for the ``messages`` and ``preference`` formats, so
re-parsing stored files is a no-op check.

Reading (``training.reading``, streamed and bounded by ``max_bytes``): bytes, a path, or a binary
file object. gzip is detected by its magic bytes
(whatever the file name). The text must be UTF-8 (a BOM is tolerated). A document whose
first non-blank character is ``[`` is read as one JSON array of rows; anything else is
JSON Lines (blank lines skipped). ``RowError.line`` is the 1-based line of the row in the
(decompressed) text -- for a JSON array, the line where the element starts -- and 0 for
problems with the file as a whole.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.reading import FileProblem, RowInvalid, TooLarge, iter_raw_rows, read_text
from training.rows import (  # noqa: F401 - the format names and kinds are this module's API too
    FORMATS,
    NORMALISED_FORMAT,
    PREFERENCE,
    PROMPT,
    ROLES,
    SFT,
    TEXT,
    TRAILING_USER_POLICIES,
    UNPAIRED,
    RowNormaliser,
    UnknownFormatError,
    kind_of,
)

MAX_REPORTED_ERRORS = 50
UNLIMITED_ERRORS = 1 << 62  # max_errors for a lenient import, which lists every skipped row


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based line in the decompressed text; 0 = the file as a whole
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


@dataclass
class ParseResult:
    fmt: str
    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # at most ``max_errors`` of them
    error_count: int = 0  # all errors, including those not listed
    notes: list[str] = field(default_factory=list)  # non-fatal normalisations, for display
    too_large: bool = False  # reading stopped at ``max_bytes``: the errors say so, the rows are partial

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def errors_truncated(self) -> bool:
        return self.error_count > len(self.errors)

    def error_lines(self) -> list[str]:
        """Human-readable error list, ending with "... and N more" when capped."""
        out = [str(e) for e in self.errors]
        if self.errors_truncated:
            out.append(f"... and {self.error_count - len(self.errors)} more errors")
        return out


def parse_dataset(
    source: Any,
    fmt: str,
    *,
    max_errors: int = MAX_REPORTED_ERRORS,
    trailing_user: str = "drop",
    max_bytes: int | None = None,
) -> ParseResult:
    """Read and normalise a whole dataset file.

    ``source``: bytes, a path (``str`` is a path) or a binary file object. Returns every
    normalised row that passed and every error (the first ``max_errors`` listed, all
    counted in ``error_count``). The caller must store nothing unless ``result.ok``.
    """
    normalise = RowNormaliser(fmt, trailing_user)
    result = ParseResult(fmt=fmt, kind=normalise.kind)

    def add_error(line: int, reason: str) -> None:
        result.error_count += 1
        if len(result.errors) < max_errors:
            result.errors.append(RowError(line, reason))

    seen = 0
    try:
        rows = _raw_text_rows(source, max_bytes) if fmt == "raw-text" else iter_raw_rows(source, max_bytes=max_bytes)
        for line, value in rows:
            seen += 1
            if isinstance(value, RowInvalid):
                add_error(line, str(value))
                continue
            try:
                result.rows.append(normalise(value))
            except RowInvalid as exc:
                add_error(line, str(exc))
    except FileProblem as exc:
        add_error(exc.line, exc.reason)
        result.too_large = isinstance(exc, TooLarge)
    else:
        if seen == 0:
            add_error(0, "the file has no rows")
    result.notes = normalise.notes()
    return result


def _raw_text_rows(source: Any, max_bytes: int | None) -> Iterator[tuple[int, Any]]:
    """A plain UTF-8 text file as documents: one per block separated by a line holding only ``---``
    (a whole file without such lines is one document)."""
    text = read_text(source, max_bytes=max_bytes)
    line = 1
    for block in re.split(r"(?m)^---[ \t]*$", text):
        if block.strip():
            yield line + len(block) - len(block.lstrip("\n")), {"text": block.strip("\n")}
        line += block.count("\n")


def dumps_jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write normalised rows as UTF-8 JSON Lines, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(dumps_jsonl(rows))
    os.replace(tmp, path)
    return path


def load_normalised(path: str | os.PathLike, kind: str) -> list[dict[str, Any]]:
    """Re-read a normalised JSONL file; raises ``ValueError`` listing errors if invalid."""
    if kind not in NORMALISED_FORMAT:
        raise ValueError(f"kind must be one of {', '.join(NORMALISED_FORMAT)}, got {kind!r}")
    result = parse_dataset(path, NORMALISED_FORMAT[kind], trailing_user="error")
    if not result.ok:
        raise ValueError(f"{path}: invalid {kind} dataset:\n" + "\n".join(result.error_lines()))
    return result.rows
