"""The model page lists every run of the same recipe with its gate verdict, held-back runs
included, without naming or linking a sibling that has no public page."""

from __future__ import annotations

import pytest

from arena.model_card import model_card
from tests.factories import make_checkpoint, make_model
from training.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def family():
    """Four SFT runs of one base on one dataset: one admitted (this page's), two held back by the
    gate, one whose gate passed but which was never served; plus a DPO run and a run on other data."""
    base = make_model(public_name="base", kind="base")
    data = Dataset.objects.create(name="chat", kind="sft", format="messages", source="upload", file="/x.jsonl")
    shown = make_checkpoint(base=base, dataset=data, gate={"win_rate": 0.7, "passed": True}, sampling_weight=1.0)
    held = [make_checkpoint(base=base, dataset=data, gate={"win_rate": rate, "passed": False}, sampling_weight=0.0)
            for rate in (0.3, 0.35)]
    unserved = make_checkpoint(base=base, dataset=data, served=False, gate={"win_rate": 0.55, "passed": True})
    other_method = make_checkpoint(base=base, dataset=data, method="dpo", sampling_weight=1.0)
    other_data = make_checkpoint(base=base, sampling_weight=1.0)
    return {"shown": shown, "held": held, "unserved": unserved, "others": [other_method, other_data]}


def test_every_run_of_the_recipe_is_listed_with_its_gate_verdict(family):
    siblings = model_card(family["shown"].served_model.public_name)["siblings"]
    assert (siblings["total"], siblings["held_back"], siblings["hidden"]) == (4, 2, 3)
    assert [(r["state"], r["gate"]["verdict"], r["gate"].get("win_rate")) for r in siblings["rows"]] == [
        ("in the arena", "passed", 0.7), ("held back by the gate", "failed", 0.3),
        ("held back by the gate", "failed", 0.35), ("never served", "passed", 0.55)]
    assert [r["name"] for r in siblings["rows"]] == [family["shown"].served_model.public_name, None, None, None]


def test_the_page_shows_held_back_runs_without_their_names_or_links(client, family):
    page = client.get(f"/leaderboard/model/{family['shown'].served_model.public_name}/").content.decode()
    assert "4 checkpoints trained from the same parent, dataset and method" in page
    assert "2 held back by the gate" in page and page.count("an unnamed run") == 3
    assert "0.30 (0.10–0.50, 20 prompts)" in page and "0.35 (0.15–0.55, 20 prompts)" in page
    for checkpoint in family["held"]:
        name = checkpoint.served_model.public_name
        assert name not in page
        assert client.get(f"/leaderboard/model/{name}/").status_code == 404  # still no page of its own
    for checkpoint in family["others"]:
        assert checkpoint.served_model.public_name not in page


def test_an_admitted_sibling_is_named_and_linked(client, family):
    second = make_checkpoint(base=family["shown"].base_model, dataset=family["shown"].job.dataset,
                             gate={"win_rate": 0.6, "passed": True}, sampling_weight=1.0)
    page = client.get(f"/leaderboard/model/{family['shown'].served_model.public_name}/").content.decode()
    name = second.served_model.public_name
    assert f'<a href="/leaderboard/model/{name}/">{name}</a>' in page


def test_a_base_model_has_no_siblings_section(client, family):
    page = client.get("/leaderboard/model/base/").content.decode()
    assert model_card("base")["siblings"] is None and 'id="siblings"' not in page


def test_a_sibling_held_back_after_the_page_was_cached_loses_its_name_at_once(client, family):
    from arena.models import Contestant

    second = make_checkpoint(base=family["shown"].base_model, dataset=family["shown"].job.dataset,
                             gate={"win_rate": 0.6, "passed": True}, sampling_weight=1.0)
    url = f"/leaderboard/model/{family['shown'].served_model.public_name}/"
    assert second.served_model.public_name in client.get(url).content.decode()
    Contestant.objects.filter(served_model=second.served_model).update(sampling_weight=0.0)
    assert second.served_model.public_name not in client.get(url).content.decode()
