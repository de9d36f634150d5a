"""The ``config`` app: project-level commands (``bootstrap``, ``run_all``) and the Celery app.

Importing :mod:`config.celery` here, while Django loads the apps, binds ``@shared_task`` to our
app (broker, queues, routes from the settings) in every process that sets Django up (web,
management commands, tests), as the usual ``from .celery import app`` in the package's
``__init__`` would, without every import of ``config.settings`` paying for Celery.
"""

from django.apps import AppConfig

from config import celery  # noqa: F401  (see the docstring)


class ConfigApp(AppConfig):
    name = "config"
    verbose_name = "Project wiring"
