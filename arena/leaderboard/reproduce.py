"""What reproduces a snapshot's overall board from a file (stored in ``data["reproduce"]``).

``votes_sha256``: :func:`arena.battle_files.parse.votes_hash` of the counted votes (the same digest
``arena.battle_files.arrays.arrays_votes_hash`` gives for the file ``export_battles --snapshot ID``
writes); ``code_version``: :func:`arena.leaderboard.settings.code_version`;
``compute_ratings_args``: the arguments with which ``manage.py compute_ratings FILE`` prints
exactly that board's ratings, intervals, ranks and vote counts (``arena/tests/test_snapshot_reproduce.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from arena.battle_files.parse import votes_hash
from arena.leaderboard.settings import code_version

__all__ = ["reproduce_info"]


def reproduce_info(groups: Sequence[tuple], names: Mapping[int, str]) -> dict[str, Any]:
    """``groups``: the counted-vote groups ``(a_id, b_id, winner, votes, ...)``; ``names``: id → name."""
    anchor = settings.ARENA_LEADERBOARD_ANCHOR
    argv = ["--rounds", str(settings.ARENA_LEADERBOARD_ROUNDS), "--seed", "0", "--ci", settings.ARENA_LEADERBOARD_CI,
            "--reweighted" if settings.ARENA_LEADERBOARD_REWEIGHTED else "--no-reweighted",
            "--min-pair-count", str(settings.ARENA_LEADERBOARD_MIN_PAIR_COUNT),
            "--prior-sd", repr(float(settings.ARENA_LEADERBOARD_PRIOR_SD)), "--ties", settings.ARENA_LEADERBOARD_TIES,
            "--provisional-votes", str(settings.ARENA_LEADERBOARD_PROVISIONAL_VOTES),
            "--provisional-width", repr(float(settings.ARENA_LEADERBOARD_PROVISIONAL_WIDTH))]
    if anchor:
        argv += ["--anchor", f"{anchor[0]}={anchor[1]!r}"]
    return {
        "votes_sha256": votes_hash((names[a], names[b], winner, n) for a, b, winner, n, *_ in groups),
        "code_version": code_version(),
        "compute_ratings_args": argv,
    }
