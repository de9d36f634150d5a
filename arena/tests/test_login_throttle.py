"""Sign-in forms are throttled (django-axes, config/settings.py): after N failures from one client
address, that address is refused until the lockout time has passed; no raw address is stored."""

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db

LIMIT = 3
CLIENT = "203.0.113.7"


@pytest.fixture
def account(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
    return get_user_model().objects.create_user("rater", password="right-password", is_staff=True)


def sign_in(client, url, password, address=CLIENT):
    return client.post(url, {"username": "rater", "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_after_n_failures_the_next_attempt_is_refused_and_a_correct_one_works_after_the_lockout(client, account, url):
    statuses = [sign_in(client, url, f"wrong-{n}").status_code for n in range(LIMIT)]
    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)  # the form again, with its error
    refused = sign_in(client, url, "right-password")  # even the right password, within the window
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode() and "_auth_user_id" not in client.session

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - dt.timedelta(minutes=16))
    after = sign_in(client, url, "right-password")
    assert after.status_code == 302 and client.session["_auth_user_id"] == str(account.pk)


def test_another_address_is_not_locked_out(client, account):
    for n in range(LIMIT):
        sign_in(client, "/accounts/login/", f"wrong-{n}")
    assert sign_in(client, "/accounts/login/", "right-password", address="198.51.100.9").status_code == 302


def test_failures_are_stored_under_a_pseudo_address_never_the_clients(client, account):
    sign_in(client, "/accounts/login/", "wrong")
    (attempt,) = AccessAttempt.objects.all()
    assert attempt.ip_address != CLIENT and attempt.ip_address.startswith("fd")
    assert "right-password" not in str(attempt.post_data) and "wrong" not in str(attempt.post_data)


def test_zero_turns_the_throttle_off(client, account, settings):
    settings.AXES_ENABLED = False
    for n in range(LIMIT + 2):
        sign_in(client, "/accounts/login/", f"wrong-{n}")
    assert sign_in(client, "/accounts/login/", "right-password").status_code == 302


@pytest.mark.parametrize("raw,expected", [("0", "False 1 900"), ("7", "True 7 900")])
def test_the_settings_map_onto_axes(raw, expected):
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.AXES_ENABLED, s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()))")
    env = {**os.environ, "ARENA_LOGIN_FAILURE_LIMIT": raw, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    env.pop("ARENA_LOGIN_LOCKOUT_S", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=django_settings.BASE_DIR, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == expected
