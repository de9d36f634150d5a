"""The folders the arena writes, created before first use.

``ensure_dirs`` is called once at the end of ``config/settings.py``, so every entry point
(``manage.py migrate`` on a fresh clone, Daphne, the Celery workers, pytest) finds them
before the database or a log is opened, wherever ``ARENA_DATA_DIR`` and friends point.
A folder that cannot be created raises ``ImproperlyConfigured`` naming the variable that
chose it, instead of a later "unable to open database file".
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def ensure_dirs(folders: list[tuple[str, Path]]) -> None:
    """Create each ``(variable, path)`` folder (and its parents) if missing."""
    for variable, path in folders:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ImproperlyConfigured(
                f"cannot create the folder {path} ({variable}): {reason}; "
                f"point {variable} at a writable folder"
            ) from None
