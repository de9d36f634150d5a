"""docker-compose.yml runs as written: the compose binary accepts it, the app services start in production
mode only with the secret files it mounts, start order follows healthchecks, the shared volume carries the
models and adapters, the GPU training worker is the CUDA build, and only the TLS proxy is published, the
one hop web trusts.

The binary is Debian's docker-compose 1.29 (.ci/run installs it) or a modern `docker compose`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serving.services import endpoints_from_settings
from serving.vllm_launch import build_vllm_command
from tests.helpers import missing_part

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
APP_SERVICES = ("init", "web", "worker", "beat", "training-worker")


def compose_binary() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    missing_part("no compose binary (apt-get install docker-compose, or Docker's compose plugin)")


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_binary_accepts_the_file():
    result = subprocess.run([*compose_binary(), "-f", str(COMPOSE), "config", "-q"], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "ARENA_HOSTNAME": "arena.example.org"}, timeout=60)
    assert result.returncode == 0, result.stderr


def test_start_order_follows_healthchecks(spec):
    services = spec["services"]
    for name in ("postgres", "redis", "web", "worker", "vllm"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["init"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                              "redis": {"condition": "service_healthy"}}
    assert services["init"]["restart"] == "no"
    for name in (*APP_SERVICES[1:], "vllm"):
        assert services[name]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}, name


def test_init_prepares_the_model_vllm_serves_and_registers_its_endpoint(spec):
    services = spec["services"]
    init_command = " ".join(services["init"]["command"])
    assert "migrate" in init_command and "prepare_models" in init_command and "bootstrap" in init_command
    model_dir = services["vllm"]["command"][services["vllm"]["command"].index("--model") + 1]
    (endpoint,) = json.loads(services["web"]["environment"]["ARENA_ENDPOINTS"])
    assert endpoint["model_dir"] == model_dir and endpoint["base_url"] == "http://vllm:8000/v1"
    data_dir = services["web"]["environment"]["ARENA_DATA_DIR"]
    assert model_dir.startswith(data_dir + "/models/")
    for name in (*APP_SERVICES, "vllm"):  # adapters written by training are read by vllm at the same path
        assert f"arena-data:{data_dir}" in services[name]["volumes"], name
    assert "--enable-lora" in services["vllm"]["command"]
    assert services["vllm"]["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


def test_the_training_worker_is_the_cuda_build_on_a_gpu(spec):
    worker = spec["services"]["training-worker"]
    assert worker["build"]["args"]["TORCH"] == "cuda" and worker["image"] != spec["services"]["web"]["image"]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "-Q" in worker["command"] and "training" in worker["command"]
    assert "beat" in spec["services"]["beat"]["command"] and "-B" not in spec["services"]["worker"]["command"]


def _app_env(spec, service: str, secrets_dir: Path) -> dict[str, str]:
    env = {}
    for key, value in spec["services"][service]["environment"].items():
        value = re.sub(r"\$\{([A-Z_]+):-([^}]*)\}",
                       lambda m: "arena.example.org" if m[1] == "ARENA_HOSTNAME" else m[2], str(value))
        env[key] = value.replace("/run/secrets/", f"{secrets_dir}/")
    return env


@pytest.mark.parametrize("service", ["web", "training-worker"])
def test_app_services_start_in_production_mode_only_with_the_secret_files(spec, service, tmp_path):
    """The service's own environment from the file, its /run/secrets paths pointed at real files here."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    env = _app_env(spec, service, secrets_dir)
    env["ARENA_DATA_DIR"] = str(tmp_path / "data")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ARENA_", "DATABASE_", "REDIS_"))}
    run_env = {**base, **env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    check = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]

    refused = subprocess.run(check, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "cannot be read" in refused.stderr

    for name in spec["secrets"]:
        (secrets_dir / name).write_text(f"{name}-" + "x" * 60 + "\n")
    started = subprocess.run(check, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "no issues" in started.stdout


@pytest.mark.django_db
def test_the_declared_vllm_endpoint_passes_the_admin_validation(spec, settings):
    settings.ARENA_ENDPOINTS = json.loads(spec["services"]["web"]["environment"]["ARENA_ENDPOINTS"])
    (endpoint,) = endpoints_from_settings()
    assert endpoint.name == "vllm" and endpoint.supports_lora() and not endpoint.managed


def test_the_vllm_service_uses_the_launchers_cuda_flags(spec):
    """serving/vllm_launch.py is the one source of the CUDA flags; the compose service must not drift."""
    argv, env = build_vllm_command(python="python", model_dir="/data/models/smollm2-135m-instruct",
                                   served_name="smollm2-135m-instruct", port=8000, device="cuda", kv_cache_gib=2)
    launcher = argv[argv.index("--model"):]
    for flag in ("--host", "--port"):  # the image's defaults: 0.0.0.0:8000
        i = launcher.index(flag)
        del launcher[i:i + 2]
    assert spec["services"]["vllm"]["command"] == launcher
    service_env = spec["services"]["vllm"]["environment"]
    assert {k: env[k] for k in ("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "HF_HUB_OFFLINE")} == {
        k: service_env[k] for k in ("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "HF_HUB_OFFLINE")}


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The file as the compose binary resolves it (defaults of ${VAR:-default} filled in)."""
    result = subprocess.run([*compose_binary(), "-f", str(COMPOSE), "config"], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "ARENA_HOSTNAME": "arena.example.org"}, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _published(service: dict) -> list[tuple[str, int]]:
    """(host address, port) of each published port, long or short syntax."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", "0.0.0.0"), int(port["published"])))
        else:
            parts = str(port).split("/")[0].split(":")
            found.append((parts[0] if len(parts) == 3 else "0.0.0.0", int(parts[-2])))
    return found


def test_only_the_proxy_is_published_and_web_is_reachable_inside_the_network_only(resolved):
    services = resolved["services"]
    assert sorted(port for _, port in _published(services["proxy"])) == [80, 443, 443]
    for name, service in services.items():
        if name != "proxy":
            assert all(host == "127.0.0.1" for host, _ in _published(service)), f"{name} is published"
    assert "ports" not in services["web"]


def test_web_trusts_exactly_the_proxy_hop(resolved):
    import ipaddress

    services = resolved["services"]
    proxy_address = ipaddress.ip_address(services["proxy"]["networks"]["default"]["ipv4_address"])
    subnet = ipaddress.ip_network(resolved["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert proxy_address in subnet
    for name in APP_SERVICES:
        trusted = services[name]["environment"]["ARENA_TRUSTED_PROXIES"]
        assert ipaddress.ip_network(trusted) == ipaddress.ip_network(f"{proxy_address}/32"), name
    # The metrics view allows only loopback peers by default: the proxy's address is not among them.
    assert "ARENA_METRICS_ALLOWED_NETS" not in services["web"]["environment"]


def test_the_proxy_forwards_to_web_and_keeps_metrics_off_the_public_side(resolved):
    proxy = resolved["services"]["proxy"]
    mounts = {(v["target"] if isinstance(v, dict) else v.split(":")[1]):
              (v.get("source", "") if isinstance(v, dict) else v.split(":")[0]) for v in proxy["volumes"]}
    source = mounts["/etc/caddy/Caddyfile"]
    caddyfile = REPO / "deploy" / "Caddyfile"
    assert Path(source).resolve() == caddyfile.resolve()
    text = caddyfile.read_text()
    assert "reverse_proxy web:8000" in text and "{$ARENA_HOSTNAME" in text
    assert re.search(r"@metrics path /metrics", text) and "respond @metrics 404" in text
    assert proxy["depends_on"] == {"web": {"condition": "service_healthy"}}
