"""Fixtures shared by the cross-app tests: training (the closed loop and its faults), and the
migrated PostgreSQL cluster the PostgreSQL fault tests copy."""

import os
import subprocess
from pathlib import Path

import pytest

from serving.local_models import LOCAL_MODELS
from serving.models import Endpoint, ServedModel
from tests.faults import ThrowawayPostgres
from tests.helpers import REPO, free_port, missing_part


@pytest.fixture(scope="session")
def migrated_postgres_data():
    """The data folder of a stopped PostgreSQL cluster of the session's own, its database ``arena``
    migrated once: each PostgreSQL fault test starts a copy (``ThrowawayPostgres(port, template=...)``)."""
    try:
        template = ThrowawayPostgres.migrated(free_port(), REPO, dict(os.environ))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        missing_part(f"cannot make a migrated PostgreSQL cluster of the tests' own: {exc}")
    yield template.data
    template.stop()


@pytest.fixture
def base_model(transactional_db, vllm_url, settings, tmp_path):
    spec = LOCAL_MODELS["smollm2"].engine_spec()
    if not Path(settings.ARENA_ENGINE_PYTHON).exists():
        missing_part(f"engine environment missing: {settings.ARENA_ENGINE_PYTHON} (make engine)")
    endpoint = Endpoint.objects.create(name="test-local", base_url=f"{vllm_url}/v1", healthy=True,
                                       model_dir=spec.model_dir)
    return ServedModel.objects.create(public_name="smollm2-135m-instruct", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct", organization="Hugging Face",
                                      license="Apache-2.0", generation={"temperature": 0.0, "max_tokens": 8})
