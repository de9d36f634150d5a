"""Small helpers shared by the tests: the one skip-or-fail rule, the one place that knows where
the shared data lives, the real Celery broker's queues, ORM work off Playwright's event loop, and
what tests need to start real servers (a free port, a SmolLM2 engine, the test database's URL for
a subprocess). Test modules import helpers from here, never from ``conftest.py``, which holds
only fixtures and hooks."""

from __future__ import annotations

import contextlib
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

#: Set by .ci/run: a missing real part (engine, model, data, Chromium, PostgreSQL, Redis) fails.
REQUIRE_REAL = os.environ.get("ARENA_REQUIRE_REAL_PARTS") == "1"
#: The repository root.
REPO = Path(__file__).resolve().parents[1]
#: A port nobody listens on: a real connection attempt that is refused at once.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


def missing_part(reason: str):
    """The one rule for a real part that is not here: skip with the reason, except under
    ARENA_REQUIRE_REAL_PARTS=1 (CI), where the test fails: CI never passes by skipping."""
    if REQUIRE_REAL:
        pytest.fail(f"required real part missing: {reason}")
    pytest.skip(reason)


def off_the_event_loop(fn):
    """Run ORM work in a thread of its own: Playwright's sync API runs an event loop in this
    one, where Django refuses database calls."""
    from django.db import connection

    def work():
        try:
            return fn()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def shared_data_dir() -> Path:
    """``settings.ARENA_SHARED_DATA_DIR`` (ARENA_SHARED_DATA_DIR, default ../shared/data), or
    :func:`missing_part`. Pure tests run with ``-p no:django``; reading a setting needs no app."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    path = Path(settings.ARENA_SHARED_DATA_DIR)
    if not path.is_dir():
        missing_part(f"shared data folder missing: {path} (ARENA_SHARED_DATA_DIR)")
    return path


def shared_data_file(relative: str) -> Path:
    """A file of the shared data folder, or :func:`missing_part`."""
    path = shared_data_dir() / relative
    if not path.exists():
        missing_part(f"shared data file missing: {path}")
    return path


def broker_messages(queue: str) -> list[dict]:
    """Take every message waiting in ``queue`` of the real broker (files in the embedded mode,
    Redis when REDIS_URL is set): ``{"task", "id", "args", "eta"}`` each, oldest first."""
    from config.celery import app  # the root conftest imports this module before Django is set up

    taken = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            args, _kwargs, _embed = message.decode()
            headers = message.headers
            taken.append({"task": headers["task"], "id": headers["id"], "args": args, "eta": headers.get("eta")})
    return taken


@contextlib.contextmanager
def dead_broker():
    """Point the Celery app at a broker that refuses connections, then back: the real failure
    of a broker outage, without a fake. Celery caches its connection and producer pools (per
    URL, so the real broker's pools are kept aside and put back untouched)."""
    from config.celery import app  # the root conftest imports this module before Django is set up

    saved_conf = {key: app.conf[key] for key in ("broker_url", "broker_write_url")}
    saved_pools = app._pool, app.amqp._producer_pool
    app._pool = app.amqp._producer_pool = None
    app.conf.update(broker_url=DEAD_REDIS_URL, broker_write_url=None)
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        app.conf.update(saved_conf)
        app._pool, app.amqp._producer_pool = saved_pools


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_smollm2_engine(log_name: str):
    """A real SmolLM2 vLLM CPU engine on a free port, ready (an EngineProcess: stop() it), or the test fails."""
    from django.conf import settings

    from serving.engines import EngineProcess  # the root conftest imports this module before Django is set up
    from serving.errors import EngineError  # the root conftest imports this module before Django is set up
    from serving.local_models import (
        LOCAL_MODELS,  # the root conftest imports this module before Django is set up
    )

    spec = LOCAL_MODELS["smollm2"].engine_spec()
    if not Path(spec.python).exists() or not (Path(spec.model_dir) / "config.json").exists():
        missing_part(f"engine python {spec.python} or model {spec.model_dir} missing: run `make models`")
    spec.port = free_port()
    spec.log_path = settings.ARENA_DATA_DIR / "logs" / log_name
    engine = EngineProcess(spec)
    engine.start()
    try:
        engine.wait_ready(settings.ARENA_ENGINE_START_TIMEOUT_S)
    except EngineError as exc:
        engine.stop()
        pytest.fail(str(exc))
    return engine


def database_url_for_subprocess() -> str:
    """The test database as a DATABASE_URL for a server started in a subprocess (daphne, run_all, a worker)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
