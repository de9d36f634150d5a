"""Settings of the test suite: development mode, set explicitly.

``config.settings`` runs in production mode unless DJANGO_DEBUG says otherwise; the tests
(and the daphne and Celery subprocesses they start, which inherit this environment) run in
development mode, as `make run` does. A test of production mode starts its own subprocess
with DJANGO_SETTINGS_MODULE=config.settings and its own environment (tests/test_deploy.py).
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from config.settings import *  # noqa: E402,F403
