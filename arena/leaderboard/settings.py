"""The leaderboard settings a board is computed with, read from Django settings in one place.

:func:`board_options` gives the keyword arguments of :func:`arena.leaderboard.boards.board_build`
(interval method, reweighting, provisional rule); :func:`board_settings` the same as plain JSON
values, stored with each snapshot and part of its fingerprint; :func:`code_version` names the
code that computed a snapshot.
"""

from __future__ import annotations

import subprocess
import tomllib
from functools import cache
from typing import Any

from django.conf import settings

from arena.leaderboard.provisional import ProvisionalRule

__all__ = ["board_options", "board_settings", "code_version"]


@cache
def code_version() -> str:
    """``VERSION+COMMIT`` of the running code: the project version and the git commit when the
    code runs from a git checkout (``+unknown`` otherwise, e.g. in an image without ``.git``)."""
    try:
        base = tomllib.loads((settings.BASE_DIR / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        base = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{base}+{commit or 'unknown'}"


def board_settings() -> dict[str, Any]:
    return {
        "ci": settings.ARENA_LEADERBOARD_CI,
        "reweighted": settings.ARENA_LEADERBOARD_REWEIGHTED,
        "min_pair_count": settings.ARENA_LEADERBOARD_MIN_PAIR_COUNT,
        "prior_sd": settings.ARENA_LEADERBOARD_PRIOR_SD,
        "ties": settings.ARENA_LEADERBOARD_TIES,
        "provisional_votes": settings.ARENA_LEADERBOARD_PROVISIONAL_VOTES,
        "provisional_width": settings.ARENA_LEADERBOARD_PROVISIONAL_WIDTH,
    }


def board_options() -> dict[str, Any]:
    values = board_settings()
    return {
        "ci": values["ci"],
        "reweighted": values["reweighted"],
        "min_pair_count": values["min_pair_count"],
        "prior_sd": values["prior_sd"],
        "ties": values["ties"],
        "provisional": ProvisionalRule(values["provisional_votes"], values["provisional_width"]),
    }
