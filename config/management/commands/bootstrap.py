"""First-run set-up of the whole project: it wires serving, arena and training, so it lives here, not in one app."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from arena.pairing.contestants import contestant_enter
from serving.errors import EngineError
from serving.services import endpoints_from_settings, local_models_register
from training.services import jobs_dispatch_unsent, starter_jobs_queue


class Command(BaseCommand):
    help = "First-run set-up for `make run`: an admin account, the local models as contestants, starter jobs (idempotent)."

    def handle(self, *args, **options):
        User = get_user_model()
        username, password = settings.ARENA_ADMIN_USER, settings.ARENA_ADMIN_PASSWORD
        if not User.objects.filter(username=username).exists():
            if password:
                User.objects.create_superuser(username=username, email="", password=password)
                shown = password if settings.DEBUG else "the ARENA_ADMIN_PASSWORD secret"  # never log a real one
                self.stdout.write(self.style.SUCCESS(f"Admin account created: log in at /admin/ as {username} / {shown}"))
            else:
                self.stderr.write("No admin created: set ARENA_ADMIN_PASSWORD (DJANGO_DEBUG is false).")
        else:
            self.stdout.write(f"Admin account exists: log in at /admin/ as {username}")
        try:
            for endpoint in endpoints_from_settings():
                self.stdout.write(f"Endpoint from ARENA_ENDPOINTS: {endpoint.name} at {endpoint.base_url}")
        except EngineError as exc:
            raise CommandError(str(exc)) from None
        for model in local_models_register():
            contestant_enter(model, boost=False)
            self.stdout.write(f"Local model registered: {model.public_name} on {model.endpoint.base_url}")
        for job in starter_jobs_queue():
            self.stdout.write(f"Starter fine-tune queued: job {job.pk} ({job.method} on {job.dataset.name})")
        for job_id in jobs_dispatch_unsent(min_age_s=0):
            self.stdout.write(f"Re-sent job {job_id}, which never reached the training queue")
