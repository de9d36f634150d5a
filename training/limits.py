"""Bounds of dataset imports, checked before anything is read or run.

* ``check_size(source)``: the file as sent (an upload, a server file, bytes) is at most
  ``ARENA_IMPORT_MAX_UPLOAD_BYTES`` (env ``ARENA_IMPORT_MAX_UPLOAD_BYTES``). The
  decompressed bound (``ARENA_IMPORT_MAX_BYTES``) is enforced while streaming, by
  ``training.reading``.
* ``server_path(raw, roots)``: a server-side path is accepted only when, with symlinks and
  ``..`` resolved, it lies under one of ``roots`` (``ARENA_IMPORT_ROOTS``, env
  ``ARENA_IMPORT_ROOTS``; relative paths are taken under the first root). A path outside the
  roots gets the same answer whether or not it exists, so the form cannot probe the disk.
* ``hub_id(raw)`` / ``hub_split(raw)``: the Hugging Face naming rules, checked before any
  subprocess sees the value (so ``-h`` or ``--out=...`` can never become an option).

Each check raises ``ImportRefused`` with a message safe to show; the services turn it into
``TrainingError``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from django.conf import settings

MiB = 1 << 20

# https://huggingface.co/docs/hub/repositories: letters, digits, '-', '_', '.'; no '--' or '..';
# not starting or ending with '-' or '.'; at most 96 characters per part; optional "owner/".
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^(?:{_HUB_PART}/)?{_HUB_PART}$")
_HUB_SPLIT = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}(?:\[[0-9:%+-]{1,20}\])?$")


class ImportRefused(ValueError):
    """An import the bounds refuse; the message is safe to show to the user."""


def _mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB"


def size_of(source: Any) -> int | None:
    """Bytes of ``source`` as sent: bytes, a path, or a file object (Django uploads have ``size``)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return len(source)
    if isinstance(source, str | os.PathLike):
        return Path(source).stat().st_size
    size = getattr(source, "size", None)
    if isinstance(size, int):
        return size
    if hasattr(source, "seek") and hasattr(source, "tell"):
        position = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(position)
        return end
    return None


def check_size(source: Any) -> None:
    limit = settings.ARENA_IMPORT_MAX_UPLOAD_BYTES
    size = size_of(source)
    if size is not None and size > limit:
        raise ImportRefused(
            f"The file is {_mib(size)}; imports are limited to {_mib(limit)} (ARENA_IMPORT_MAX_UPLOAD_BYTES)."
        )


def server_path(raw: str, roots: list[Path] | None = None) -> Path:
    """The resolved file ``raw`` names, if it lies under one of ``roots`` (default: the setting)."""
    roots = [Path(os.path.realpath(root)) for root in (settings.ARENA_IMPORT_ROOTS if roots is None else roots)]
    if not roots:
        raise ImportRefused("Imports of server files are turned off (ARENA_IMPORT_ROOTS is empty).")
    text = (raw or "").strip()
    allowed = ", ".join(str(root) for root in roots)
    if not text or "\x00" in text:
        raise ImportRefused(f"Give the path of a file under {allowed}.")
    candidate = Path(text) if Path(text).is_absolute() else roots[0] / text
    resolved = Path(os.path.realpath(candidate))
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise ImportRefused(f"Only files under {allowed} can be imported from the server (ARENA_IMPORT_ROOTS).")
    if not resolved.is_file():
        raise ImportRefused(f"{text} is not a file under {allowed}.")
    return resolved


def hub_id(raw: str) -> str:
    text = (raw or "").strip()
    if not _HUB_ID.match(text) or "--" in text or ".." in text:
        raise ImportRefused(
            f"{text[:100]!r} is not a Hugging Face dataset id (owner/name: letters, digits, '-', '_', '.')."
        )
    return text


def hub_split(raw: str) -> str:
    text = (raw or "").strip()
    if not _HUB_SPLIT.match(text):
        raise ImportRefused(f"{text[:100]!r} is not a dataset split name (e.g. train, test_sft, train[:10%]).")
    return text
