"""manage.py export_battles [FILE] [--include-flagged | --snapshot ID] [--usage]: votes as FastChat battles, JSON Lines.

``--snapshot ID`` (or ``latest``) writes exactly the votes that rating snapshot counted: with the
arguments it recorded (``data["reproduce"]["compute_ratings_args"]``), ``compute_ratings`` on
the file reproduces its overall board, and the file's vote-set hash is its ``votes_sha256``.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.battle_files.transfer import battles_export
from arena.models import RatingSnapshot


class Command(BaseCommand):
    help = ("Export votes as battles in FastChat's cleaned-battle schema (JSON Lines) to FILE, or stdout. "
            "Raters appear only as a salted hash (judge).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", default="-", help="output file ('-' or nothing: stdout)")
        parser.add_argument("--include-flagged", action="store_true",
                            help="also votes with an identity leak or a failed side (with their flags)")
        parser.add_argument("--snapshot", help="ID or 'latest': exactly the votes this rating snapshot counted")
        parser.add_argument("--usage", action="store_true",
                            help="add each side's tokens and cost (admin data: never publish it)")

    def handle(self, *args, file: str, include_flagged: bool, snapshot: str | None, usage: bool = False,
               **options) -> None:
        upto = None
        if snapshot is not None:
            if include_flagged:
                raise CommandError("--snapshot and --include-flagged cannot be combined")
            found = (RatingSnapshot.objects.order_by("-pk") if snapshot == "latest"
                     else RatingSnapshot.objects.filter(pk=int(snapshot) if snapshot.isdigit() else -1)).first()
            if found is None:
                raise CommandError(f"no rating snapshot {snapshot!r}")
            upto = found.last_vote_id
        if file == "-":
            count = battles_export(self.stdout, include_flagged=include_flagged, counted_up_to=upto,
                                   include_usage=usage)
            self.stdout.flush()
        else:
            try:
                with open(file, "w", encoding="utf-8") as out:
                    count = battles_export(out, include_flagged=include_flagged, counted_up_to=upto,
                                           include_usage=usage)
            except OSError as exc:
                raise CommandError(f"cannot write {file}: {exc.strerror or exc}") from None
        # The count goes to stderr: stdout may be the data itself.
        sys.stderr.write(f"exported {count} battle{'s' if count != 1 else ''}\n")
