"""The Celery app. Queues: ``default`` (health checks, ratings) and ``training``
(fine-tunes; a GPU worker in production runs ``-Q training -c 1 --prefetch-multiplier 1``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arena")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# kombu's filesystem broker (the embedded default) expects its folders to exist: settings
# create them (config.paths.ensure_dirs) with the other data folders.
