"""manage.py compute_ratings FILE: the leaderboard of a battle file, as JSON on stdout.

Reads FastChat's cleaned-battle schema (a JSON list or JSON Lines, gzip accepted) with
:func:`arena.battle_files.arrays.read_battle_arrays` (validated, aggregated while reading) and runs
the same code as the leaderboard page (:func:`arena.leaderboard.boards.board_build`). Prints a
list sorted by rating (by group, then rating, when the battles form separate groups), each row
``{"model", "rating", "ci_low", "ci_high", "rank", "battles", "elo", "flips_with", "flips_votes"}``
(``flips_votes``: about how many votes' removal would swap the row with ``flips_with``, the next
model below it; :mod:`arena.ratings.fragility`; both null for the last row of a group). ``--ci`` picks
bootstrap (default) or sandwich intervals, ``--reweighted`` weights battles by inverse pair
frequency (``--min-pair-count`` floor), ``--prior-sd`` sets the Gaussian prior (SD in Elo points;
4000 is the public LMSYS board's ridge), ``--ties`` the tie model (half, davidson, rao-kupper);
all default to the leaderboard settings.
``--leaderbot`` prints leaderbot's Davidson table instead (:mod:`arena.ratings.leaderbot`: a
scale and a tie factor per model, "both bad" dropped, no prior), one row per model by score,
``{"model", "score", "battles", "observed", "predicted"}`` (rates as [win, loss, tie]); its FILE
may also be leaderbot's pair-count JSON (``{"models", "X", "Y"}``, as in ../shared/data).
``--provisional-votes``/``--provisional-width`` apply the board's provisional rule (a provisional
row is listed last in its group with ``rank`` null); by default no row is provisional. On any
error nothing is printed on stdout and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import math

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.battle_files.arrays import read_battle_arrays
from arena.battle_files.parse import BattleFileError, file_bytes
from arena.leaderboard.boards import CLI_ROW_KEYS, board_build
from arena.leaderboard.provisional import ProvisionalRule
from arena.ratings import CI_METHODS, INITIAL_RATING, TIE_MODELS, PairCounts, elo_from_arrays, parse_anchor
from arena.ratings.leaderbot import fit_leaderbot, leaderbot_rows

#: The keys of each printed row: the board's CLI columns and the flip counts of arena.ratings.fragility.
ROW_KEYS = (*CLI_ROW_KEYS, "flips_with", "flips_votes")


def _pair_counts(file: str) -> PairCounts | None:
    """leaderbot's pair-count JSON (``{"models", "X", "Y"}``, model order kept), or None for a battle file."""
    raw = file_bytes(file)
    if not raw.lstrip()[:1] == b"{":
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # JSON Lines: read as battles
    if not (isinstance(data, dict) and {"models", "X", "Y"} <= data.keys()):
        return None
    try:
        return PairCounts.from_leaderbot_json(data)
    except (ValueError, TypeError) as exc:
        raise CommandError(f"{file}: not valid pair counts: {exc}") from None


def leaderbot_table(file: str, ties: str | None) -> list[dict]:
    """``--leaderbot``: the rows of :func:`arena.ratings.leaderbot.leaderbot_rows` for FILE (pair counts
    in leaderbot's format, whose model order its tie basis follows, or battles: models by name)."""
    if ties not in (None, "davidson"):
        raise CommandError("--leaderbot is leaderbot's Davidson model: leave out --ties or give --ties davidson")
    try:
        counts = _pair_counts(file)
        if counts is None:
            battles = read_battle_arrays(file)
            counts = PairCounts.from_arrays(battles.models, battles.model_a, battles.model_b, battles.outcome)
        return leaderbot_rows(fit_leaderbot(counts), counts)
    except BattleFileError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CommandError(f"{file}: {exc}") from None


class Command(BaseCommand):
    help = "Print the leaderboard (Bradley–Terry with bootstrap intervals, and Elo) of a battle file as JSON."
    #: A file-in, JSON-out command: Django's system checks (URLs, admin, templates: importing every
    #: view and the serving clients) would be most of its start-up and say nothing about a file.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="battles in FastChat's schema: JSON list or JSON Lines, optionally gzipped")
        parser.add_argument("--anchor", help="MODEL=RATING: shift the scale so that MODEL has RATING")
        parser.add_argument("--rounds", type=int, default=100, help="bootstrap rounds for the intervals (0: none)")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
        parser.add_argument("--ci", choices=CI_METHODS, default=None,
                            help="interval method (default: ARENA_LEADERBOARD_CI)")
        parser.add_argument("--reweighted", action=argparse.BooleanOptionalAction, default=None,
                            help="weight battles by inverse pair frequency (default: ARENA_LEADERBOARD_REWEIGHTED)")
        parser.add_argument("--min-pair-count", type=int, default=None,
                            help="floor on the pair count in the weights (default: ARENA_LEADERBOARD_MIN_PAIR_COUNT)")
        parser.add_argument("--prior-sd", type=float, default=None,
                            help="SD (Elo points) of the Gaussian prior on every rating (default: "
                                 "ARENA_LEADERBOARD_PRIOR_SD; 4000 is the public LMSYS board's ridge 0.01)")
        parser.add_argument("--ties", choices=TIE_MODELS, default=None,
                            help="tie model: half a win each, davidson or rao-kupper (default: ARENA_LEADERBOARD_TIES)")
        parser.add_argument("--leaderbot", action="store_true",
                            help="print leaderbot's Davidson table instead (a scale and a tie factor per model, "
                                 "\"both bad\" dropped, no prior; FILE may be leaderbot's pair-count JSON)")
        parser.add_argument("--provisional-votes", type=int, default=0,
                            help="rows with fewer votes are provisional: listed last, rank null (default 0: none)")
        parser.add_argument("--provisional-width", type=float, default=math.inf,
                            help="rows with a wider interval (points) are provisional (default: none)")

    def handle(self, *args, file: str, anchor: str | None, rounds: int, seed: int, ci: str | None,
               reweighted: bool | None, min_pair_count: int | None, prior_sd: float | None,
               ties: str | None, provisional_votes: int, provisional_width: float, leaderbot: bool,
               **options) -> None:
        if leaderbot:
            self.stdout.write(json.dumps(leaderbot_table(file, ties), indent=1))
            return
        if rounds < 0:
            raise CommandError("--rounds must be 0 or more")
        if prior_sd is not None and not (math.isfinite(prior_sd) and prior_sd > 0):
            raise CommandError("--prior-sd must be a positive number of Elo points")
        if provisional_votes < 0 or not provisional_width >= 0:
            raise CommandError("--provisional-votes and --provisional-width must be 0 or more")
        if min_pair_count is not None and min_pair_count < 1:
            raise CommandError("--min-pair-count must be 1 or more")
        try:
            anchor_pair = parse_anchor(anchor) if anchor is not None else None
        except ValueError as exc:
            raise CommandError(f"--anchor {exc}") from None
        try:
            battles = read_battle_arrays(file)
        except BattleFileError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
        counts = PairCounts.from_arrays(battles.models, battles.model_a, battles.model_b, battles.outcome)
        if anchor_pair is not None and anchor_pair[0] not in counts.models:
            raise CommandError(f"--anchor model {anchor_pair[0]!r} has no battles in {file}")
        # The arrays are in time order when the battles carry tstamps, as online Elo needs.
        start = [INITIAL_RATING] * len(battles.models)
        elo = dict(zip(battles.models, elo_from_arrays(battles.model_a, battles.model_b, battles.outcome, start).tolist(),
                       strict=True))
        board = board_build(
            counts, anchor=anchor_pair, rounds=rounds, seed=seed, elo=elo,
            ci=ci or settings.ARENA_LEADERBOARD_CI,
            reweighted=settings.ARENA_LEADERBOARD_REWEIGHTED if reweighted is None else reweighted,
            min_pair_count=min_pair_count or settings.ARENA_LEADERBOARD_MIN_PAIR_COUNT,
            prior_sd=prior_sd or settings.ARENA_LEADERBOARD_PRIOR_SD,
            ties=ties or settings.ARENA_LEADERBOARD_TIES,
            provisional=ProvisionalRule(provisional_votes, provisional_width),
        )
        rows = [{key: row[key] for key in ROW_KEYS} for row in board["rows"]]
        self.stdout.write(json.dumps(rows, indent=1))
