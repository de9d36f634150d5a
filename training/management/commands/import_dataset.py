import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training import formats, services


class Command(BaseCommand):
    help = "Validate a dataset file and store it; on bad input print each bad line's number and reason, store nothing."

    def add_arguments(self, parser):
        parser.add_argument("file", help="JSON Lines or JSON array; gzip accepted")
        parser.add_argument("--format", required=True, choices=list(formats.FORMATS))
        parser.add_argument("--name", help="Slug; defaults to the file name")
        parser.add_argument("--license", default="")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        name = options["name"] or path.name.split(".")[0].lower().replace("_", "-")
        try:
            # The operator names a file on their own disk: its directory is the one allowed root.
            dataset = services.dataset_from_path(str(path), name=name, fmt=options["format"],
                                                 license=options["license"], roots=[path.resolve().parent])
        except services.TrainingError as exc:
            for line in [exc.message, *exc.problems]:
                self.stderr.write(line)
            raise CommandError("nothing was stored") from None
        self.stdout.write(json.dumps({"id": dataset.pk, "name": dataset.name, "kind": dataset.kind,
                                      "rows": dataset.row_count}))
