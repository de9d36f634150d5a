"""The content hash of an adapter directory: what a checkpoint, a served model and each response record."""

from __future__ import annotations

import hashlib
from pathlib import Path

from serving.errors import EngineError

_CHUNK = 1 << 20


def adapter_dir_sha256(path: str) -> str:
    """SHA-256 over the directory's files (relative path and bytes, in path order). Raises EngineError."""
    root = Path(path)
    if not root.is_dir():
        raise EngineError(f"adapter directory {path} does not exist")
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
