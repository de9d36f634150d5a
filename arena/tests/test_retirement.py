"""Retired models and the public change log: services, board, page, API and admin (real database)."""

from __future__ import annotations

import pytest

from arena.leaderboard import selectors as leaderboard_selectors
from arena.leaderboard import services as leaderboard_services
from arena.models import BoardChange, Contestant, Vote
from arena.pairing.contestants import contestants_battle_ready
from arena.pairing.retirement import RetirementError, model_reinstate, model_retire, votes_reinclude
from serving.models import ServedModel
from tests.factories import make_model, make_vote


@pytest.fixture
def arena(db):
    ant, bee, cat = (make_model(public_name=n) for n in ("ant", "bee", "cat"))
    for _ in range(3):
        make_vote(ant, bee, "model_a")
        make_vote(bee, cat, "model_a")
        make_vote(cat, ant, "tie")
    make_vote(cat, bee, "model_a", identity_leak=True)
    return ant, bee, cat


def overall(snapshot) -> dict[str, dict]:
    return {r["model"]: r for r in leaderboard_selectors.board_get(snapshot.data, "overall")["board"]["rows"]}


def test_a_retired_model_stops_battling_keeps_its_votes_and_moves_to_the_retired_section(arena, client, settings):
    ant, bee, cat = arena
    settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES = 5  # so the style-control board exists too
    before = overall(leaderboard_services.snapshot_create())
    with pytest.raises(RetirementError, match="reason is required"):
        model_retire(cat, actor="alice", reason="  ")
    change = model_retire(cat, actor="alice", reason="Superseded by cat-2.")
    assert (change.kind, change.model_name, change.actor) == ("retired", "cat", "alice")
    assert Contestant.objects.get(served_model=cat).retired_by == "alice"
    assert cat.pk not in [m.pk for m, _ in contestants_battle_ready()]
    with pytest.raises(RetirementError, match="already retired"):
        model_retire(cat, actor="alice", reason="again")
    after = overall(leaderboard_services.snapshot_create())
    assert {m: r["rating"] for m, r in after.items()} == {m: r["rating"] for m, r in before.items()}  # votes kept
    assert [m for m, r in after.items() if r["retired"]] == ["cat"]
    style_rows = leaderboard_selectors.board_get(leaderboard_selectors.snapshot_latest().data, "overall", True)
    assert [r["model"] for r in style_rows["board"]["rows"] if r["retired"]] == ["cat"]
    api = client.get("/api/leaderboard").json()
    assert [(r["model"], r["retired"]) for r in api["rows"]] == [("ant", False), ("bee", False), ("cat", True)]
    assert api["changelog"][0] == {**api["changelog"][0], "kind": "retired", "model": "cat",
                                   "reason": "Superseded by cat-2."}
    assert "actor" not in api["changelog"][0] and "alice" not in str(api["changelog"])
    page = client.get("/leaderboard/").content.decode()
    assert 'id="retired-cat"' in page and 'id="model-cat"' not in page and "Superseded by cat-2." in page


def test_reinstating_brings_a_model_back_and_is_logged(arena):
    _, _, cat = arena
    with pytest.raises(RetirementError, match="not retired"):
        model_reinstate(cat, actor="bob", reason="never left")
    model_retire(cat, actor="alice", reason="Broken endpoint.")
    model_reinstate(cat, actor="bob", reason="Endpoint fixed.")
    assert cat.pk in [m.pk for m, _ in contestants_battle_ready()]
    assert [c.kind for c in BoardChange.objects.order_by("pk")] == ["retired", "reinstated"]
    assert not overall(leaderboard_services.snapshot_create())["cat"]["retired"]


def test_excluded_votes_counted_again_are_logged_and_enter_the_board(arena):
    before = leaderboard_services.snapshot_create().data["totals"]["counted"]
    change = votes_reinclude(Vote.objects.all(), actor="carol", reason="The 'leak' was the user's own word.")
    assert change.votes == 1 and change.kind == "votes_reincluded"
    assert leaderboard_services.snapshot_create().data["totals"]["counted"] == before + 1
    with pytest.raises(RetirementError, match="None of these votes"):
        votes_reinclude(Vote.objects.all(), actor="carol", reason="again")
    assert leaderboard_selectors.changelog()[0]["votes"] == 1


def test_the_admin_action_asks_why_then_retires(arena, admin_client):
    _, _, cat = arena
    contestant = Contestant.objects.create(served_model=cat)
    url = "/admin/arena/contestant/"
    form = admin_client.post(url, {"action": "retire", "_selected_action": [contestant.pk]})
    assert form.status_code == 200 and b"Reason (shown in the public change log)" in form.content
    refused = admin_client.post(url, {"action": "retire", "_selected_action": [contestant.pk], "apply": "1",
                                      "reason": ""})
    assert b"reason is required" in refused.content and not BoardChange.objects.exists()
    done = admin_client.post(url, {"action": "retire", "_selected_action": [contestant.pk], "apply": "1",
                                   "reason": "End of evaluation."})
    assert done.status_code == 302
    change = BoardChange.objects.get()
    assert (change.model_name, change.actor, change.reason) == ("cat", "admin", "End of evaluation.")
    assert admin_client.get("/admin/arena/boardchange/").status_code == 200


def test_a_retired_fine_tune_is_paused_in_serving_so_its_adapter_slot_is_freed(arena):
    base = arena[0]
    tune = make_model(public_name="ant-dpo-j9", kind="lora", parent=base, endpoint=base.endpoint)
    model_retire(tune, actor="boss", reason="superseded by j10")
    assert not ServedModel.objects.get(pk=tune.pk).active  # reconciliation unloads inactive adapters
    assert ServedModel.objects.get(pk=base.pk).active  # a base model is only taken out of pairing
    model_reinstate(ServedModel.objects.get(pk=tune.pk), actor="boss", reason="needed for a comparison")
    assert ServedModel.objects.get(pk=tune.pk).active
