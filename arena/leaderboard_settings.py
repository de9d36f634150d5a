"""The leaderboard settings a board is computed with, read from Django settings in one place.

:func:`board_options` gives the keyword arguments of :func:`arena.leaderboard.board_build`
(interval method, reweighting, provisional rule); :func:`board_settings` the same as plain JSON
values, stored with each snapshot and part of its fingerprint.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from arena.provisional import ProvisionalRule

__all__ = ["board_options", "board_settings"]


def board_settings() -> dict[str, Any]:
    return {
        "ci": settings.ARENA_LEADERBOARD_CI,
        "reweighted": settings.ARENA_LEADERBOARD_REWEIGHTED,
        "min_pair_count": settings.ARENA_LEADERBOARD_MIN_PAIR_COUNT,
        "provisional_votes": settings.ARENA_LEADERBOARD_PROVISIONAL_VOTES,
        "provisional_width": settings.ARENA_LEADERBOARD_PROVISIONAL_WIDTH,
    }


def board_options() -> dict[str, Any]:
    values = board_settings()
    return {
        "ci": values["ci"],
        "reweighted": values["reweighted"],
        "min_pair_count": values["min_pair_count"],
        "provisional": ProvisionalRule(values["provisional_votes"], values["provisional_width"]),
    }
