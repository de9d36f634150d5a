"""The Celery app. Queues: ``default`` (health checks, ratings) and ``training``
(fine-tunes; a GPU worker in production runs ``-Q training -c 1 --prefetch-multiplier 1``).

A worker survives a Redis outage while it holds a message (``config.broker_restore``: a workaround
for kombu 5.7.0's restore crash; the held message is queued again once Redis is back)."""

import os

from celery import Celery

from config import broker_restore

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arena")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
broker_restore.install(app)

# kombu's filesystem broker (the embedded default) expects its folders to exist: settings
# create them (config.paths.ensure_dirs) with the other data folders.
