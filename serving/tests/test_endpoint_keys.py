"""Endpoint keys come only from ARENA_KEY_* variables, are never shown, and go only to the endpoint's own host.

``RecordingServer`` is a fake OpenAI-compatible server (a real HTTP server on a local port) that
records the Authorization headers it receives: the test is about what we send over HTTP.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from serving import services
from serving.health import endpoints_refresh_all as endpoints_check_health
from serving.models import Endpoint, ServedModel

SECRET_DB_URL = "postgres://arena:super-secret-db-password@db:5432/arena"


class RecordingServer:
    """Fake OpenAI-compatible server: answers /v1/models and /health, records each request's Authorization."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                seen.append((self.path, self.headers.get("Authorization")))
                body = json.dumps({"data": [{"id": "fake-model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recording_server():
    server = RecordingServer()
    yield server
    server.close()


@pytest.mark.django_db
class TestKeyVariables:
    def test_database_url_cannot_be_named(self, monkeypatch):
        monkeypatch.setenv("DATABASE_URL", SECRET_DB_URL)
        endpoint = Endpoint(name="evil", base_url="http://203.0.113.5/v1", api_key_env="DATABASE_URL",
                            kind=Endpoint.Kind.OPENAI_COMPATIBLE)
        with pytest.raises(ValidationError) as err:
            endpoint.full_clean()
        assert "ARENA_KEY_" in str(err.value.message_dict["api_key_env"])

    def test_a_row_naming_database_url_sends_no_key(self, monkeypatch, recording_server):
        """A row written past the admin (or before the rule): the variable is still never read."""
        monkeypatch.setenv("DATABASE_URL", SECRET_DB_URL)
        endpoint = Endpoint.objects.create(name="evil", base_url=f"{recording_server.url}/v1",
                                           api_key_env="DATABASE_URL", kind=Endpoint.Kind.OPENAI_COMPATIBLE)
        assert services.endpoint_check_health(endpoint)
        assert recording_server.seen == [("/v1/models", "Bearer EMPTY")]
        assert "super-secret" not in endpoint.api_key()

    def test_the_admin_refuses_database_url(self, client, monkeypatch):
        monkeypatch.setenv("DATABASE_URL", SECRET_DB_URL)
        client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
        response = client.post(reverse("admin:serving_endpoint_add"), {
            "name": "evil", "kind": "openai", "base_url": "http://203.0.113.5/v1", "api_key_env": "DATABASE_URL",
            "extra_args": "[]", "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
        })
        assert response.status_code == 200 and b"Endpoint keys can only come from variables named" in response.content
        assert not Endpoint.objects.filter(name="evil").exists()

    def test_a_prefixed_variable_is_sent_to_its_own_host_only(self, monkeypatch, recording_server):
        monkeypatch.setenv("ARENA_KEY_TEAM", "team-key-123")
        endpoint = Endpoint(name="team", base_url=f"{recording_server.url}/v1", api_key_env="ARENA_KEY_TEAM",
                            kind=Endpoint.Kind.OPENAI_COMPATIBLE)
        endpoint.full_clean()
        endpoint.save()
        services.endpoint_list_models(endpoint)
        assert recording_server.seen == [("/v1/models", "Bearer team-key-123")]
        assert endpoint.auth_headers("http://203.0.113.5/v1/models") == {}

    def test_one_key_variable_serves_one_host(self, monkeypatch):
        Endpoint.objects.create(name="a", base_url="https://api.example.com/v1", api_key_env="ARENA_KEY_X")
        same_host = Endpoint(name="b", base_url="https://api.example.com/v1", api_key_env="ARENA_KEY_X")
        same_host.full_clean()
        other_host = Endpoint(name="c", base_url="https://attacker.example.net/v1", api_key_env="ARENA_KEY_X")
        with pytest.raises(ValidationError, match="another host"):
            other_host.full_clean()

    def test_the_admin_never_shows_the_key(self, client, monkeypatch):
        monkeypatch.setenv("ARENA_KEY_TEAM", "team-key-123")
        endpoint = Endpoint.objects.create(name="team", base_url="https://api.example.com/v1",
                                           api_key_env="ARENA_KEY_TEAM", kind=Endpoint.Kind.VLLM)
        client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
        for url in (reverse("admin:serving_endpoint_change", args=[endpoint.pk]),
                    reverse("admin:serving_endpoint_changelist")):
            page = client.get(url).content
            assert b"team-key-123" not in page
        page = client.get(reverse("admin:serving_endpoint_change", args=[endpoint.pk])).content
        assert b"ARENA_KEY_TEAM is set" in page
        assert b"https://api.example.com/metrics" in page


@pytest.mark.django_db
class TestEndpointsFromEnvironment:
    def test_declared_endpoints_are_created_then_their_models_registered_once_healthy(self, settings, vllm_url):
        settings.ARENA_ENDPOINTS = [{"name": "gpu-vllm", "base_url": f"{vllm_url}/v1", "organization": "Team",
                                       "model_dir": "/data/models/smollm2-135m-instruct"}]
        (endpoint,) = services.endpoints_from_settings()
        assert endpoint.kind == Endpoint.Kind.VLLM and endpoint.model_dir.endswith("smollm2-135m-instruct")

        report = endpoints_check_health()
        assert report["gpu-vllm"]["registered"] == ["smollm2-135m-instruct"]
        assert ServedModel.objects.get(endpoint=endpoint).organization == "Team"
        assert endpoints_check_health()["gpu-vllm"]["registered"] == []  # once
        services.endpoints_from_settings()  # a restart updates, never duplicates
        assert Endpoint.objects.filter(name="gpu-vllm").count() == 1

    def test_a_declared_endpoint_obeys_the_key_rule(self, settings):
        settings.ARENA_ENDPOINTS = [{"name": "x", "base_url": "http://vllm:8000/v1", "api_key_env": "DATABASE_URL"}]
        with pytest.raises(services.EngineError, match="ARENA_KEY_"):
            services.endpoints_from_settings()
        assert not Endpoint.objects.exists()
