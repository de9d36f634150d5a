import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.errors import TrainingError
from training.export import checkpoint_export, export_push, push_refusal
from training.models import Checkpoint


class Command(BaseCommand):
    help = ("Export a job's model with its model card: the LoRA adapter, or with --merge the adapter folded into "
            "its base (safetensors that transformers and vLLM load); a full fine-tune's own weights. --push uploads "
            "it to a model hub (needs HF_TOKEN and a network).")

    def add_arguments(self, parser):
        parser.add_argument("--job", type=int, required=True, help="The job whose checkpoint to export")
        parser.add_argument("--to", required=True, help="A new or empty folder")
        parser.add_argument("--merge", action="store_true", help="Fold the LoRA adapter into its base")
        parser.add_argument("--push", metavar="OWNER/NAME", default="", help="Upload the folder to this hub repository")

    def handle(self, *args, **options):
        checkpoint = Checkpoint.objects.select_related("job__dataset", "base_model__endpoint", "served_model").filter(
            job_id=options["job"]).first()
        if checkpoint is None:
            raise CommandError(f"job {options['job']} has no checkpoint (not finished, failed, or no such job)")
        repo = options["push"]
        # Checked first: minutes of merging are not spent on a push that cannot happen.
        refusal = push_refusal(repo) if repo else ""
        if refusal:
            raise CommandError(refusal)
        try:
            result = checkpoint_export(checkpoint, Path(options["to"]), merge=options["merge"])
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        try:
            pushed = export_push(result.folder, repo) if repo else None
        except TrainingError as exc:
            raise CommandError(f"{exc} The export itself is complete in {result.folder}.") from None
        self.stdout.write(json.dumps({"folder": str(result.folder), "format": result.format, "files": result.files,
                                      "pushed": pushed}))
