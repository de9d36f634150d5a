import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training import formats, services


class Command(BaseCommand):
    help = ("Validate a dataset file and store it; on bad input print each bad line's number and reason and store "
            "nothing, or with --skip-invalid store the valid rows and name each skipped line.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="JSON Lines or JSON array; gzip accepted")
        parser.add_argument("--format", required=True, choices=list(formats.FORMATS))
        parser.add_argument("--name", help="Slug; defaults to the file name")
        parser.add_argument("--license", default="")
        parser.add_argument("--skip-invalid", action="store_true",
                            help="Store the valid rows and list every skipped line with its reason")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        name = options["name"] or path.name.split(".")[0].lower().replace("_", "-")
        try:
            # The operator names a file on their own disk: its directory is the one allowed root.
            dataset = services.dataset_from_path(str(path), name=name, fmt=options["format"],
                                                 license=options["license"], roots=[path.resolve().parent],
                                                 skip_invalid=options["skip_invalid"])
        except services.TrainingError as exc:
            for line in [exc.message, *exc.problems]:
                self.stderr.write(line)
            raise CommandError("nothing was stored") from None
        for skipped in dataset.skipped_rows:
            self.stderr.write(f"skipped line {skipped['line']}: {skipped['reason']}")
        self.stdout.write(json.dumps({"id": dataset.pk, "name": dataset.name, "kind": dataset.kind,
                                      "rows": dataset.row_count, "skipped": dataset.skipped_count}))
