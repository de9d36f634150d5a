"""Test-session fixtures for real parts: one vLLM CPU server, served-model rows, Chromium,
a Celery worker, the ASGI server.

A missing part skips its tests with the reason, except when ARENA_REQUIRE_REAL_PARTS=1 (set by
.ci/run), where it fails them: CI must never pass by skipping the real thing. The rule is
``tests.helpers.missing_part``; where the shared data lives, ``tests.helpers.shared_data_file``.
Under ARENA_REQUIRE_REAL_PARTS=1 the session also checks, before any test, that the database is
PostgreSQL and that REDIS_URL answers and backs the channel layer, the shared cache and the broker.
Test conventions: tests/README.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.faults import start_daphne
from tests.helpers import (
    REPO,
    REQUIRE_REAL,
    broker_messages,
    database_url_for_subprocess,
    free_port,
    missing_part,
    start_smollm2_engine,
)

# Development mode for the suite, also where pytest-django is off (-p no:django) and a helper reads
# config.settings directly; with pytest-django, config/settings_test.py sets it before settings load.
os.environ.setdefault("DJANGO_DEBUG", "true")


def pytest_sessionstart(session):
    """Under ARENA_REQUIRE_REAL_PARTS=1, stop before any test unless the real servers are in use."""
    if not REQUIRE_REAL or not session.config.pluginmanager.hasplugin("django"):
        return
    problems = real_server_problems()
    if problems:
        pytest.exit("ARENA_REQUIRE_REAL_PARTS=1 but the real servers are not in use:\n  " + "\n  ".join(problems),
                    returncode=3)


def real_server_problems() -> list[str]:
    """What keeps this session off PostgreSQL and Redis (the channel layer, the shared cache and
    the Celery broker all on REDIS_URL), in words; empty when all are real and answer."""
    import redis
    from django.conf import settings
    from django.db import connection

    from config.celery import app  # the root conftest loads before Django is set up

    problems = []
    if connection.vendor != "postgresql":
        problems.append(f"the database is {connection.vendor}, not PostgreSQL (DATABASE_URL)")
    url = settings.REDIS_URL
    if not url:
        return [*problems, "REDIS_URL is not set"]
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        problems.append(f"REDIS_URL {url} does not answer PING: {exc}")
    layer = settings.CHANNEL_LAYERS["default"]
    if not layer["BACKEND"].startswith("channels_redis.") or layer.get("CONFIG", {}).get("hosts") != [url]:
        problems.append(f"the channel layer is {layer['BACKEND']}, not Redis at REDIS_URL")
    shared = settings.CACHES["shared"]
    if not shared["BACKEND"].endswith("RedisCache") or shared.get("LOCATION") != url:
        problems.append(f"the shared cache is {shared['BACKEND']}, not Redis at REDIS_URL")
    if app.conf.broker_url != url:
        problems.append(f"the Celery broker is {app.conf.broker_url.split('://')[0]}://..., not REDIS_URL")
    return problems


@pytest.fixture(scope="session")
def vllm_url():
    """Root URL of a real vLLM CPU server serving SmolLM2-135M-Instruct for the whole session.

    ARENA_TEST_VLLM_URL reuses a server that is already running (handy while developing).
    """
    existing = os.environ.get("ARENA_TEST_VLLM_URL")
    if existing:
        yield existing.rstrip("/")
        return
    engine = start_smollm2_engine("test-engine.log")
    spec = engine.spec
    yield spec.root_url
    engine.stop()


@pytest.fixture
def battle_models(db, vllm_url):
    """Two contestants on the real server: the same weights behind two endpoints, sampled differently."""
    from serving.models import Endpoint, ServedModel  # the root conftest loads before Django is set up

    models = []
    for index, generation in enumerate([{"temperature": 0.7, "top_p": 0.9}, {"temperature": 0.0}]):
        endpoint = Endpoint.objects.create(
            name=f"test-engine-{index}", base_url=f"{vllm_url}/v1", healthy=True, kind=Endpoint.Kind.VLLM
        )
        models.append(
            ServedModel.objects.create(
                public_name=f"smollm2-test-{'ab'[index]}", endpoint=endpoint,
                engine_model_id="smollm2-135m-instruct", organization="Hugging Face", license="Apache-2.0",
                generation={**generation, "max_tokens": 12},
            )
        )
    return models


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        missing_part("Debian's chromium is not installed (make browser)")
    return path


@pytest.fixture
def asgi_server(transactional_db):
    """The real ASGI app (HTTP + WebSockets) served by daphne from a subprocess, on the test database.

    A daphne per test, not per session: transactional_db empties the tables after each test and
    post_migrate then recreates the content types under new ids, which a longer-lived server would
    keep in its ContentType cache (an admin action's log entry then fails its foreign key)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    try:
        process = start_daphne(REPO, port, env, REPO / "var" / "logs" / "test-daphne.log")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


#: The abuse protections (arena/abuse/limits.py, arena/quality/rules.py) are off in tests unless a test turns
#: one on: most tests play many quick battles from one address. Their own tests set them.
PROTECTIONS_OFF = {
    "ARENA_LIMIT_BATTLES_PER_MINUTE": 0, "ARENA_LIMIT_CONCURRENT_GENERATIONS": 0, "ARENA_LIMIT_VOTES_PER_HOUR": 0,
    "ARENA_LIMIT_VOTES_PER_DAY": 0, "ARENA_MIN_VOTE_SECONDS": 0, "ARENA_PROMPT_REPEAT_CAP": 0, "ARENA_OUTLIER_Z": 0,
    "ARENA_KEY_SHARE_CAP": 0,
}


@pytest.fixture(autouse=True)
def _abuse_protections_off(request, monkeypatch):
    """Settings (and the environment, for servers started in a subprocess) with the protections off."""
    for name, value in PROTECTIONS_OFF.items():
        monkeypatch.setenv(name, str(value))
    if request.config.pluginmanager.hasplugin("django"):
        # Not pytest-django's ``settings`` fixture: requesting it here would change the teardown
        # order of every test's own fixtures (a test's settings would be restored after them).
        from django.conf import settings

        for name, value in PROTECTIONS_OFF.items():
            monkeypatch.setattr(settings, name, value)


@pytest.fixture(scope="session", autouse=True)
def _close_stray_db_sessions(request):
    """Channels runs ORM calls in worker threads whose connections outlive the tests; end them
    before pytest-django drops the test database, or PostgreSQL refuses ("being accessed by other users").
    Pure tests run with ``-p no:django`` too, so the Django fixtures are looked up only when present."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    request.getfixturevalue("django_db_setup")
    django_db_blocker = request.getfixturevalue("django_db_blocker")
    yield
    from django.db import connection

    if connection.vendor != "postgresql" or not connection.settings_dict["NAME"].startswith("test_"):
        return  # no test used the database, so none was created
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def broker_queue():
    """The real Celery broker of this session, its ``default`` and ``training`` queues emptied
    before and after the test. Call it with a queue name to take the messages waiting there
    (``tests.helpers.broker_messages``): what the code sent, checked without a fake. The
    leaderboard's "refresh queued" flag goes with the messages it stands for: left behind by an
    earlier test's votes, it would stop this test's first refresh from being queued."""
    from django.core.cache import caches

    from arena.leaderboard.refresh import PENDING_KEY  # the root conftest loads before Django is set up

    for queue in ("default", "training"):
        broker_messages(queue)
    caches["shared"].delete(PENDING_KEY)  # before the test only: a test may break the cache on purpose
    yield broker_messages
    for queue in ("default", "training"):
        broker_messages(queue)


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real Celery worker (solo pool) consuming the default and training queues, on the test database.

    Yields a function that starts it and returns the Popen, so a test can kill it.
    """
    import subprocess
    import sys

    started: list[subprocess.Popen] = []
    log_path = REPO / "var" / "logs" / "test-celery.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def start() -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", "training,default",
                 "--without-heartbeat", "--without-mingle", "--without-gossip", "-n", f"test{len(started)}@%h",
                 "--loglevel", "INFO"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def lora_adapter_dir(tmp_path_factory) -> str:
    """A real (randomly initialised) r16 LoRA adapter for SmolLM2, made with PEFT in the engine environment."""
    import subprocess

    from django.conf import settings

    from serving.local_models import LOCAL_MODELS  # the root conftest loads before Django is set up

    model_dir = LOCAL_MODELS["smollm2"].engine_spec().model_dir
    if not Path(settings.ARENA_ENGINE_PYTHON).exists() or not (Path(model_dir) / "config.json").exists():
        missing_part("engine environment or SmolLM2 directory missing: run `make models`")
    out = tmp_path_factory.mktemp("adapter") / "random-lora"
    script = (
        "import sys, torch; from transformers import AutoModelForCausalLM; from peft import LoraConfig, get_peft_model\n"
        "torch.manual_seed(0)\n"
        "m = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "p = get_peft_model(m, LoraConfig(r=16, lora_alpha=16, target_modules='all-linear', init_lora_weights=False))\n"
        "p.save_pretrained(sys.argv[2])\n"
    )
    subprocess.run([settings.ARENA_ENGINE_PYTHON, "-c", script, model_dir, str(out)], check=True, capture_output=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return str(out)


@pytest.fixture
def page(chromium_path):
    """A headless Chromium page (Debian's chromium driven by Playwright; it cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()
