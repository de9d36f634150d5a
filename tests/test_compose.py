"""docker-compose.yml runs as written: the compose binary accepts it, the app services start in production
mode only with the secret files it mounts, start order follows healthchecks, the shared volume carries the
models and adapters, and the GPU training worker is the CUDA build.

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
        value = re.sub(r"\$\{ARENA_HOSTNAME:-([^}]*)\}", lambda m: "arena.example.org", str(value))
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
    from serving.services import endpoints_from_settings

    settings.SERVING_ENDPOINTS = json.loads(spec["services"]["web"]["environment"]["ARENA_ENDPOINTS"])
    (endpoint,) = endpoints_from_settings()
    assert endpoint.name == "vllm" and endpoint.supports_lora() and not endpoint.managed


def test_the_vllm_service_uses_the_launchers_cuda_flags(spec):
    """serving/vllm_launch.py is the one source of the CUDA flags; the compose service must not drift."""
    from serving.vllm_launch import build_vllm_command

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
