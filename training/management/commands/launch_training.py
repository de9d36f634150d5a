import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from serving.models import ServedModel
from training import services
from training.models import Checkpoint, Dataset, Job


class Command(BaseCommand):
    help = "Queue a fine-tune exactly as the admin's Launch does; --wait follows it to the end."

    def add_arguments(self, parser):
        parser.add_argument("--method", required=True, choices=list(Job.Method.values))
        parser.add_argument("--base", required=True, help="Public name of a base model")
        parser.add_argument("--dataset", required=True, help="Dataset name or id")
        parser.add_argument("--preset", default="")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
        parser.add_argument("--init-job", type=int, help="Continue the checkpoint of this job (e.g. DPO after SFT)")
        parser.add_argument("--reward-job", type=int, help="GRPO: the reward model trained by this job")
        parser.add_argument("--wait", action="store_true")

    def handle(self, *args, **options):
        try:
            base = ServedModel.objects.get(public_name=options["base"], kind=ServedModel.Kind.BASE)
        except ServedModel.DoesNotExist:
            names = ", ".join(ServedModel.objects.filter(kind="base").values_list("public_name", flat=True))
            raise CommandError(f"no base model {options['base']!r} (known: {names or 'none'})") from None
        key = options["dataset"]
        dataset = Dataset.objects.filter(pk=int(key)).first() if key.isdigit() else Dataset.objects.filter(name=key).first()
        if dataset is None:
            raise CommandError(f"no dataset {key!r}")
        init, reward = (self._checkpoint(options[key]) for key in ("init_job", "reward_job"))
        try:
            job = services.job_launch(base_model=base, method=options["method"], dataset=dataset,
                                      preset_name=options["preset"], overrides=options["overrides"],
                                      init_checkpoint=init, reward_model=reward)
        except services.TrainingError as exc:
            raise CommandError(str(exc)) from None
        if not options["wait"]:
            self.stdout.write(json.dumps({"job": job.pk, "status": job.status}))
            return
        job = self._follow(job)
        checkpoint = getattr(job, "checkpoint", None)
        model = checkpoint.served_model if checkpoint else None
        scorer = checkpoint is not None and checkpoint.kind == Checkpoint.Kind.SCORER
        self.stdout.write(json.dumps({"job": job.pk, "status": job.status,
                                      "checkpoint": checkpoint.weights_dir if checkpoint else None,
                                      "kind": checkpoint.kind if checkpoint else None,
                                      "heldout_accuracy": checkpoint.heldout_accuracy() if scorer else None,
                                      "model": model.public_name if model else None}))
        if job.status != Job.Status.SUCCEEDED or (model is None and not scorer):
            if job.error:
                self.stderr.write(job.error)
            sys.exit(1)

    @staticmethod
    def _checkpoint(job_id: int | None) -> Checkpoint | None:
        if job_id is None:
            return None
        checkpoint = Checkpoint.objects.filter(job_id=job_id).first()
        if checkpoint is None:
            raise CommandError(f"job {job_id} has no checkpoint")
        return checkpoint

    def _follow(self, job: Job) -> Job:
        err = self.stderr._out if hasattr(self.stderr, "_out") else sys.stderr
        while True:
            job.refresh_from_db()
            total = job.total_steps or 0
            done = min(job.step, total) if total else 0
            width = 30
            filled = int(width * done / total) if total else 0
            loss = (job.metrics or [{}])[-1].get("loss")
            eta = job.remaining_s()
            err.write(f"\rjob {job.pk} {job.status:<9} [{'#' * filled}{'.' * (width - filled)}] {done}/{total or '?'}"
                      f"{f'  loss {loss:.4f}' if isinstance(loss, (int, float)) else ''}"
                      f"{f'  ~{eta:.0f}s left' if eta else ''}   ")
            err.flush()
            if job.is_finished():
                err.write("\n")
                return job
            time.sleep(1.0)
