"""The admin's Vote audit page: counts by reason, rater and model; staff decisions logged with their author."""

import pytest
from django.contrib.auth.models import User

from arena import services
from arena.models import Battle, RaterDecision, Vote
from tests.factories import make_finished_battle, make_model

pytestmark = pytest.mark.django_db

URL = "/admin/arena/vote/audit/"


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("auditor", password="pw-123456"))
    return client


def cast(rater: str, ip: str, **kwargs) -> Vote:
    battle = make_finished_battle(rater_id=rater, **kwargs)
    Battle.objects.filter(pk=battle.pk).update(ip_hash=ip)
    return services.battle_vote(battle_id=battle.public_id, rater_id=rater, winner="model_a", ip_hash=ip)


def test_the_page_lists_excluded_votes_by_reason_rater_and_model(staff_client):
    model = make_model(public_name="audited-model")
    cast("rater-x", "a" * 64, model_a=model, states=("done", "cancelled"))
    cast("rater-y", "b" * 64)
    html = staff_client.get(URL).content.decode()
    assert "A side was stopped or empty" in html and "audited-model" in html and "rater-x" in html
    assert "a" * 64 in html, "IP hashes are shown; no raw address exists to show"


def test_a_staff_decision_is_applied_logged_with_its_author_and_refits(staff_client, django_capture_on_commit_callbacks):
    vote = cast("rater-x", "")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(URL, {"rater_key": "rater-x", "action": "exclude", "note": "script"})
    assert response.status_code == 302
    vote.refresh_from_db()
    assert vote.exclusion == Vote.Exclusion.STAFF_EXCLUDED
    assert RaterDecision.objects.get().made_by.username == "auditor"
    assert any(c.__name__ == "ratings_refresh_soon" for c in callbacks)
    assert "script" in staff_client.get(URL).content.decode()


def test_non_staff_cannot_reach_it(client):
    client.force_login(User.objects.create_user("rater", password="pw-123456"))
    assert client.get(URL).status_code == 302
