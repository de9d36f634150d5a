"""No raw IP on disk: the web server's access log hashes addresses; the IP salt is required in production."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.helpers import REPO, database_url_for_subprocess, free_port


def settings_error(**env) -> str:
    """Load the settings in a fresh interpreter with ``env``; returns stderr ("" when they load)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ARENA_IP_SALT", "ARENA_ADMIN_PASSWORD"))}
    result = subprocess.run([sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
                             "'config.settings'); django.setup()"], cwd=REPO, env={**base, **env},
                            capture_output=True, text=True, timeout=60)
    return result.stderr if result.returncode else ""


class TestIpSalt:
    def test_production_refuses_to_start_without_a_salt(self):
        assert "ARENA_IP_SALT" in settings_error(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="k" * 40)

    def test_production_refuses_the_secret_key_as_the_salt(self):
        assert "differ from DJANGO_SECRET_KEY" in settings_error(
            DJANGO_DEBUG="false", DJANGO_SECRET_KEY="k" * 40, ARENA_ADMIN_PASSWORD="p" * 20, ARENA_IP_SALT="k" * 40)

    def test_a_distinct_salt_starts(self):
        assert settings_error(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="k" * 40, ARENA_ADMIN_PASSWORD="p" * 20,
                              ARENA_IP_SALT="s" * 40) == ""


def test_the_web_servers_access_log_writes_hashed_addresses_only(tmp_path, transactional_db):
    port = free_port()
    log_path = tmp_path / "web.log"
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "config.web", "-b", "127.0.0.1", "-p", str(port),
                                    "config.asgi:application"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail(f"the web server did not start; see {log_path}")
        httpx.get(f"http://127.0.0.1:{port}/api/prompts/suggestions", timeout=10)
        time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(10)
    access = [line for line in log_path.read_text().splitlines() if '"GET ' in line]
    assert len(access) >= 2, log_path.read_text()
    for line in access:
        assert re.match(r"ip:[0-9a-f]{16} ", line), line
        assert "127.0.0.1" not in line
