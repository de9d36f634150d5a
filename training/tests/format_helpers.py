"""Helpers of the dataset-format tests: rows written as JSON Lines and read back."""

from __future__ import annotations

import json
from pathlib import Path

from training.formats import (
    RowError,
    RowInvalid,
    parse_dataset,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "data"  # shipped with the repository


def jl(*rows) -> bytes:
    """JSON Lines bytes; str items are written verbatim (for broken lines)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def normalise(row, fmt: str) -> dict:
    """One row through ``parse_dataset``; raises RowInvalid with the reason the parser gives."""
    result = parse_dataset(jl(row), fmt)
    if not result.ok:
        raise RowInvalid(result.errors[0].reason)
    return result.rows[0]


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def only_error(result) -> RowError:
    assert result.error_count == 1, result.errors
    return result.errors[0]


GOOD = {"messages": [u("hi"), a("hello")]}


def hh(*turns):
    """An hh-rlhf transcript: ``\n\nHuman: ...\n\nAssistant: ...``."""
    return "".join(f"\n\n{speaker}: {text}" for speaker, text in turns)
