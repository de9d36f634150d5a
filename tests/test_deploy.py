"""Production mode: it refuses to start without real secrets, `check --deploy` is clean, static files are
collected for WhiteNoise, pages carry a CSP, /metrics is guarded, logs hold no raw IP.

Production-mode checks run `manage.py` in a subprocess with its own environment and
DJANGO_SETTINGS_MODULE=config.settings (the suite itself runs in development mode).
"""

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from arena import services as arena_services
from config.logs import JsonFormatter, RedactIPs, redact_ips
from tests.factories import make_finished_battle

REPO = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "ARENA_", "DATABASE_URL", "REDIS_URL"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env})


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    """Production settings with every secret given as a *_FILE secret file, as compose does."""
    files = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(60), "ARENA_ADMIN_PASSWORD": secrets.token_urlsafe(16),
             "ARENA_IP_SALT": secrets.token_urlsafe(32)}
    env = {"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "arena.example.org",
           "ARENA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    for name, value in files.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")
        env[f"{name}_FILE"] = str(path)
    return env


class TestProductionMode:
    def test_with_no_settings_at_all_it_refuses_to_start(self, tmp_path):
        result = manage("check", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
        assert result.returncode != 0
        for name in ("DJANGO_SECRET_KEY", "ARENA_ADMIN_PASSWORD", "ARENA_IP_SALT"):
            assert name in result.stderr
        assert "DJANGO_DEBUG=true" in result.stderr

    def test_a_missing_secret_is_named(self, production_env):
        del production_env["ARENA_IP_SALT_FILE"]
        result = manage("check", env=production_env)
        assert result.returncode != 0 and "needs ARENA_IP_SALT" in result.stderr

    def test_check_deploy_is_clean(self, production_env):
        result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "no issues" in result.stdout

    def test_development_mode_is_explicit_and_starts(self, tmp_path):
        result = manage("check", env={"DJANGO_DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
        assert result.returncode == 0, result.stderr

    def test_static_files_are_collected_hashed_and_compressed_for_whitenoise(self, production_env, tmp_path):
        production_env["DJANGO_STATIC_ROOT"] = str(tmp_path / "static")
        result = manage("collectstatic", "--noinput", env=production_env, timeout=300)
        assert result.returncode == 0, result.stderr
        manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"]
        hashed = manifest["arena/battle.js"]
        assert hashed != "arena/battle.js" and (tmp_path / "static" / f"{hashed}.gz").is_file()


@pytest.mark.django_db
class TestHeadersAndMetrics:
    def test_pages_carry_a_content_security_policy(self, client):
        policy = client.get("/healthz")["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy

    def test_metrics_answer_allowed_networks_and_the_token_only(self, client, settings):
        settings.ARENA_METRICS_TOKEN = "scrape-token"
        assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404
        assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope").status_code == 404
        by_token = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token")
        local = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
        for response in (by_token, local):
            assert response.status_code == 200
            assert b'arena_training_jobs{status="queued"} 0.0' in response.content
            assert b'arena_votes_left_out{reason="key_share"} 0.0' in response.content
            assert b"django_http_requests_total_by_method_total" in response.content

    def test_metrics_decide_on_the_direct_peer_never_a_forwarded_address(self, client, settings):
        # The proxy is trusted for the rater's address, but a client naming 127.0.0.1 through it is no local peer.
        settings.ARENA_TRUSTED_PROXIES = "10.0.0.0/8"
        forged = client.get("/metrics", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="127.0.0.1")
        assert forged.status_code == 404
        settings.ARENA_TRUSTED_PROXIES = "1"
        assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 404
        settings.ARENA_METRICS_ALLOWED_NETS = ["10.0.0.0/8"]  # a scraper inside the network, reaching web directly
        assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 200

    def test_arena_counters_follow_battles_votes_and_errors(self, django_capture_on_commit_callbacks):
        def value(name, **labels):
            return REGISTRY.get_sample_value(name, labels) or 0.0

        battle = make_finished_battle(answers=("I am ChatGPT, made by OpenAI.", ""), states=("done", "pending"))
        pending = battle.turns.get().responses.get(side="b")
        model_b = battle.model_b.public_name
        errors, ttft = value("arena_generation_errors_total", model=model_b), value(
            "arena_time_to_first_token_seconds_count", model=model_b)
        votes, leaks = value("arena_votes_total"), value("arena_votes_excluded_total", reason="identity_leak")
        arena_services.battle_side_finish(response_id=pending.pk, state="error", content="", error="boom", ttft_ms=120.0)
        with django_capture_on_commit_callbacks(execute=True):
            arena_services.battle_vote(battle_id=battle.public_id, rater_id=battle.rater_id, winner="model_a")
        assert value("arena_generation_errors_total", model=model_b) == errors + 1
        assert value("arena_time_to_first_token_seconds_count", model=model_b) == ttft + 1
        assert value("arena_votes_total") == votes + 1
        assert value("arena_votes_excluded_total", reason="identity_leak") == leaks + 1


class TestLogs:
    def test_ip_addresses_never_reach_the_log_line(self, settings):
        settings.ARENA_IP_SALT = "pepper"
        record = logging.LogRecord("daphne.server", logging.INFO, __file__, 1,
                                   "WebSocket CONNECT %s from [%s]:%d", ("/ws/arena/", "203.0.113.9", 5123), None)
        assert RedactIPs().filter(record)
        line = json.loads(JsonFormatter().format(record))
        assert "203.0.113.9" not in line["message"] and line["message"].startswith("WebSocket CONNECT /ws/arena/ from [ip:")
        assert line["level"] == "INFO" and line["logger"] == "daphne.server"

    def test_loopback_endpoints_and_times_stay_readable(self):
        text = "engine http://127.0.0.1:8101 ready at 12:30:00 (v1.2.3.4.5)"
        assert redact_ips(text) == text
        assert "2001:db8::7" not in redact_ips("peer 2001:db8::7 left")


@pytest.mark.browser
def test_the_pages_run_under_the_policy_without_violations(battle_models, asgi_server, page):
    """The battle page (its script and WebSocket), the leaderboard (fetch, SVG styles) and the admin
    login load in Chromium with no Content-Security-Policy violation reported."""
    from playwright.sync_api import expect

    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                         " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    page.goto(asgi_server + "/")
    expect(page.locator("#status")).to_contain_text("Ask anything", timeout=20_000)
    page.wait_for_load_state("networkidle")
    violations = page.evaluate("window.__csp")
    for path in ("/leaderboard/", "/admin/login/"):
        page.goto(asgi_server + path)
        page.wait_for_load_state("networkidle")
        violations += page.evaluate("window.__csp")
    assert violations == []
