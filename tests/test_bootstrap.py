"""The project-level first-run command: an admin, the local models served and entered as contestants."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from arena.models import Contestant
from serving.models import ServedModel

pytestmark = pytest.mark.django_db


def test_bootstrap_registers_local_models_as_unboosted_contestants_and_is_idempotent(settings):
    settings.ARENA_ADMIN_USER, settings.ARENA_ADMIN_PASSWORD = "boss", "s3cret-pass"
    settings.ARENA_LOCAL_MODELS = ["smollm2"]
    settings.ARENA_STARTER_JOBS = False
    out = StringIO()
    call_command("bootstrap", stdout=out)
    assert get_user_model().objects.get(username="boss").is_superuser
    model = ServedModel.objects.get(endpoint__name="local-smollm2")
    contestant = Contestant.objects.get(served_model=model)
    assert (contestant.sampling_weight, contestant.boost_votes_left) == (1.0, 0)
    assert f"Local model registered: {model.public_name}" in out.getvalue()

    # A second run keeps the admin's choices and creates nothing new.
    Contestant.objects.filter(pk=contestant.pk).update(sampling_weight=3.0)
    out = StringIO()
    call_command("bootstrap", stdout=out)
    assert "Admin account exists" in out.getvalue()
    assert ServedModel.objects.count() == 1 and Contestant.objects.get().sampling_weight == 3.0
