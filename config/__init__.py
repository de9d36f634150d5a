"""The composition root: settings, URLs, ASGI, the Celery app and the project-level commands.

The Celery app (``config.celery``) is loaded by :class:`config.apps.ConfigApp` when Django sets
up, before any task can be sent, and by ``celery -A config`` in a worker or beat; not on import
of this package, so that a command ``manage.py`` runs without set-up (``compute_ratings``)
does not import Celery and kombu (~0.2 s of its start).
"""
