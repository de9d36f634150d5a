"""A plain clone is the whole product: the data folders are created on start-up, the prompt
suggestions and the starter jobs' datasets ship in ``data/``, and no page 404s on its icon.
(The full `make run` from a fresh clone is checked by ``scripts/ci_fresh_clone.sh`` in CI.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from arena.selectors import _load_prompts
from config.paths import ensure_dirs
from serving.local_models import LOCAL_MODELS
from serving.models import ServedModel
from tests.factories import make_endpoint, make_model
from training.builtin import BUILTIN_DATASETS
from training.models import Job
from training.services import starter_jobs_queue

REPO = Path(__file__).resolve().parents[1]


def test_ensure_dirs_creates_nested_folders_and_names_the_variable_it_cannot_use(tmp_path):
    target = tmp_path / "a" / "b" / "models"
    ensure_dirs([("ARENA_MODELS_DIR", target)])
    assert target.is_dir()
    ensure_dirs([("ARENA_MODELS_DIR", target)])  # idempotent

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ImproperlyConfigured) as err:
        ensure_dirs([("ARENA_DATA_DIR", blocker / "var")])
    assert str(blocker / "var") in str(err.value) and "ARENA_DATA_DIR" in str(err.value)


def _manage(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env["ARENA_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_migrate_creates_a_missing_data_dir_and_every_folder_the_app_writes(tmp_path):
    data_dir = tmp_path / "new" / "var"
    result = _manage("migrate", "--noinput", data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (data_dir / "db.sqlite3").is_file()
    for folder in ("logs", "models", "training", "datasets", "cache", "celery-broker/queue",
                   "celery-broker/processed", "celery-broker/control"):
        assert (data_dir / folder).is_dir(), folder


def test_an_unusable_data_dir_fails_with_the_variable_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _manage("check", data_dir=blocker / "var")
    assert result.returncode != 0
    assert f"cannot create the folder {blocker / 'var'} (ARENA_DATA_DIR)" in result.stderr


def test_the_run_time_data_ships_in_the_repository():
    assert settings.ARENA_PROMPTS_DIR == REPO / "data" / "arena_prompts"
    assert settings.ARENA_BUILTIN_DATA_DIR == REPO / "data"
    for dataset in BUILTIN_DATASETS:
        assert dataset.resolve(settings.ARENA_BUILTIN_DATA_DIR).is_file(), dataset.name
        assert dataset.path in (REPO / "data" / "README.md").read_text(), f"{dataset.path} undocumented"
    non_commercial = [d for d in BUILTIN_DATASETS if not d.commercial_use]
    assert non_commercial and all(d.path.startswith("non_commercial/") for d in non_commercial)


def test_prompt_suggestions_come_from_the_shipped_real_prompts(client):
    shipped = set(_load_prompts(str(REPO / "data" / "arena_prompts")))
    assert len(shipped) > 500  # arena-hard, MT-bench and OpenAssistant prompts of 10-300 chars
    prompts = client.get("/api/prompts/suggestions").json()["prompts"]
    assert len(prompts) == 3 and set(prompts) <= shipped


@pytest.mark.django_db
def test_starter_jobs_are_queued_from_the_shipped_datasets(settings, tmp_path):
    settings.ARENA_DATA_DIR = tmp_path
    settings.ARENA_STARTER_JOBS = True
    endpoint = make_endpoint(name="local-smollm2", model_dir=str(tmp_path / "models" / "smollm2"))
    make_model(endpoint=endpoint, kind=ServedModel.Kind.BASE)
    jobs = starter_jobs_queue()
    assert sorted((job.method, job.dataset.name) for job in jobs) == [
        ("dpo", "hh-rlhf-helpful-base-test"), ("sft", "oasst-en-messages")]
    assert all(job.status == Job.Status.QUEUED and job.dataset.commercial_use for job in jobs)
    assert starter_jobs_queue() == []  # only on a fresh start


@pytest.mark.django_db
def test_favicon_is_linked_and_answered(client):
    page = client.get("/")
    assert b'rel="icon"' in page.content
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301 and redirect["Location"].endswith("arena/favicon.svg")
    icon = client.get(redirect["Location"])
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])


def test_local_engines_listen_on_consecutive_ports_from_the_setting(settings):
    settings.ARENA_ENGINE_PORT = 31000
    assert [LOCAL_MODELS[key].engine_spec().port for key in ("smollm2", "gemma3")] == [31000, 31001]
