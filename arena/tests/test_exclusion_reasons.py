"""The one list of exclusion reasons (arena.quality.exclusions.reasons) reaches every surface.

One vote is stored per reason, left out for that reason only; each surface must then name every
reason of the list with its count: the snapshot's ``excluded`` counts and the API, the page's
"Votes left out" table, the admin's audit page, and both metrics. A reason added to
``Vote.Exclusion`` (or to ``FLAGS``) is checked here without editing this file.
"""

import pytest
from django.contrib.auth.models import User
from django.utils.html import escape
from prometheus_client import REGISTRY

from arena import metrics
from arena.leaderboard.services import snapshot_create
from arena.models import Battle, Vote
from arena.quality.audit import audit_context
from arena.quality.exclusions import FLAGS, reasons, vote_reasons
from tests.factories import make_model, make_vote

pytestmark = pytest.mark.django_db


def left_out_for(key: str, a, b) -> Vote:
    """A stored vote left out for ``key`` and nothing else."""
    if key == "named_mode":
        vote = make_vote(a, b, mode=Battle.Mode.NAMED)
    elif key in FLAGS:
        vote = make_vote(a, b, **{key: True})
    else:
        vote = make_vote(a, b)
        Vote.objects.filter(pk=vote.pk).update(exclusion=key)
    return Vote.objects.select_related("battle").get(pk=vote.pk)  # as stored (make_vote updates the battle)


@pytest.fixture
def one_vote_per_reason():
    ant, bee = make_model(public_name="ant"), make_model(public_name="bee")
    for _ in range(3):
        make_vote(ant, bee, "model_a")
    votes = {key: left_out_for(key, ant, bee) for key, _label in reasons()}
    assert {key: vote_reasons(v) for key, v in votes.items()} == {key: [key] for key in votes}
    snapshot_create()
    return votes


def test_the_list_holds_every_fact_and_every_quality_reason():
    keys = [key for key, _label in reasons()]
    assert keys[: len(FLAGS)] == list(FLAGS)
    assert keys[len(FLAGS) :] == [value for value in Vote.Exclusion.values if value]
    assert len(set(keys)) == len(keys)


def test_the_api_and_the_page_name_every_reason_with_its_count(client, one_vote_per_reason):
    data = client.get("/api/leaderboard").json()
    assert data["excluded"] == {key: 1 for key, _label in reasons()}
    assert data["totals"]["excluded_votes"] == len(reasons())
    page = client.get("/leaderboard/").content.decode()
    for key, label in reasons():
        assert f'id="excluded-{key.replace("_", "-")}">1</td>' in page, key
        assert escape(label.lower()) in page, label  # the table writes "… <label, lower case>"


def test_the_audit_page_names_every_reason_with_its_count(client, one_vote_per_reason):
    assert audit_context()["by_reason"] == [{"reason": label, "votes": 1} for _key, label in reasons()]
    client.force_login(User.objects.create_superuser("auditor", password="pw-123456"))
    html = client.get("/admin/arena/vote/audit/").content.decode()
    assert all(escape(label) in html for _key, label in reasons())


def test_the_metrics_count_every_reason(one_vote_per_reason):
    def sample(name, key):
        return REGISTRY.get_sample_value(name, {"reason": key}) or 0.0

    before = {key: sample("arena_votes_excluded_total", key) for key, _label in reasons()}
    for vote in one_vote_per_reason.values():
        metrics.vote_recorded(vote)
    assert {key: sample("arena_votes_excluded_total", key) - before[key] for key, _ in reasons()} == {
        key: 1.0 for key, _label in reasons()
    }
    quality_reasons = [value for value in Vote.Exclusion.values if value]
    assert {key: sample("arena_votes_left_out", key) for key in quality_reasons} == dict.fromkeys(quality_reasons, 1.0)
