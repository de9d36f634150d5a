"""manage.py import_battles FILE [--dry-run]: seed the arena with battles from a FastChat-schema file."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.battle_files.transfer import BattleFileError, battles_file_read, battles_import


class Command(BaseCommand):
    help = ("Import battles (FastChat's cleaned-battle schema, JSON Lines or JSON, gzip accepted) as votes. "
            "The whole file is validated first; a bad line stores nothing.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="validate only, store nothing")

    def handle(self, *args, file: str, dry_run: bool, **options) -> None:
        try:
            battles = battles_file_read(file)
        except BattleFileError as exc:
            raise CommandError(f"{exc}; nothing was imported") from None
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
        if dry_run:
            self.stdout.write(f"{file}: {len(battles)} valid battles (dry run: nothing stored)")
            return
        report = battles_import(battles)
        created = f"; new placeholder models: {', '.join(report.models_created)}" if report.models_created else ""
        self.stdout.write(f"imported {report.battles} battles from {file}{created}")
