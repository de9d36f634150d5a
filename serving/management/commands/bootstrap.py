from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from serving.services import local_models_register


class Command(BaseCommand):
    help = "First-run set-up for `make run`: an admin account and the local models' rows (idempotent)."

    def handle(self, *args, **options):
        User = get_user_model()
        username, password = settings.ARENA_ADMIN_USER, settings.ARENA_ADMIN_PASSWORD
        if not User.objects.filter(username=username).exists():
            if password:
                User.objects.create_superuser(username=username, email="", password=password)
                self.stdout.write(self.style.SUCCESS(f"Admin account created: log in at /admin/ as {username} / {password}"))
            else:
                self.stderr.write("No admin created: set ARENA_ADMIN_PASSWORD (DJANGO_DEBUG is false).")
        else:
            self.stdout.write(f"Admin account exists: log in at /admin/ as {username}")
        for model in local_models_register():
            self.stdout.write(f"Local model registered: {model.public_name} on {model.endpoint.base_url}")
        from training.services import jobs_dispatch_unsent, starter_jobs_queue

        for job in starter_jobs_queue():
            self.stdout.write(f"Starter fine-tune queued: job {job.pk} ({job.method} on {job.dataset.name})")
        for job_id in jobs_dispatch_unsent(min_age_s=0):
            self.stdout.write(f"Re-sent job {job_id}, which never reached the training queue")
