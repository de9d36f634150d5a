"""A model's page: record per opponent, lineage, history and examples, with nothing about raters."""

from __future__ import annotations

import pytest

from arena.model_card import model_card, opponent_records
from arena.models import Vote
from tests.factories import make_finished_battle, make_model

pytestmark = pytest.mark.django_db


def vote(a, b, winner, *, prompt="Hello?", rater="rater-secret-1"):
    battle = make_finished_battle(model_a=a, model_b=b, rater_id=rater, prompt=prompt)
    return Vote.objects.create(battle=battle, winner=winner, rater_id=rater, ip_hash="iphash-secret")


def test_the_record_against_each_opponent_counts_sides_from_the_models_point_of_view():
    me, x, y = make_model(public_name="me"), make_model(public_name="x"), make_model(public_name="y")
    vote(me, x, "model_a")          # me won as A
    vote(x, me, "model_a")          # me lost as B
    vote(x, me, "model_b")          # me won as B
    vote(me, x, "tie")
    vote(y, me, "tie (bothbad)")
    vote(me, y, "model_b")          # me lost as A
    records = {r.opponent: r for r in opponent_records(me, Vote.objects.latest("pk").pk)}
    assert (records["x"].wins, records["x"].losses, records["x"].ties, records["x"].both_bad) == (2, 1, 1, 0)
    assert records["x"].win_rate == pytest.approx(2.5 / 4)
    assert (records["y"].wins, records["y"].losses, records["y"].both_bad) == (0, 1, 1)
    assert records["y"].win_rate == pytest.approx(0.25)
    assert [r.opponent for r in opponent_records(me, Vote.objects.latest("pk").pk)] == ["x", "y"]  # most first


def test_votes_that_do_not_count_are_left_out_of_the_record():
    me, x = make_model(public_name="me"), make_model(public_name="x")
    leaked = vote(me, x, "model_a")
    Vote.objects.filter(pk=leaked.pk).update(identity_leak=True)
    vote(me, x, "model_b")
    (record,) = opponent_records(me, Vote.objects.latest("pk").pk)
    assert (record.wins, record.losses) == (0, 1)


def test_lineage_runs_from_the_base_to_the_model():
    base = make_model(public_name="base")
    sft = make_model(public_name="base-sft-j1", parent=base, kind="lora")
    dpo = make_model(public_name="base-dpo-j2", parent=sft, kind="lora")
    assert [m.public_name for m in model_card("base-dpo-j2")["lineage"]] == ["base", "base-sft-j1", "base-dpo-j2"]
    assert model_card(dpo.public_name)["current"] is None  # no snapshot yet


def test_history_follows_the_snapshots_and_the_page_never_names_a_rater(client):
    from arena.leaderboard.services import snapshot_create

    me, x = make_model(public_name="me"), make_model(public_name="x")
    vote(me, x, "model_a", prompt="What is the tallest mountain?")
    snapshot_create()
    vote(me, x, "model_a")
    snapshot_create()
    card = model_card("me")
    assert [p["battles"] for p in card["history"]] == [1, 2]
    assert card["history"][1]["rating"] > 1000 > model_card("x")["history"][1]["rating"]
    response = client.get("/leaderboard/model/me/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "What is the tallest mountain?" in html and 'class="plot-history"' in html
    assert "rater-secret" not in html and "iphash-secret" not in html


def test_an_unknown_model_is_a_404(client):
    assert client.get("/leaderboard/model/nobody/").status_code == 404


def test_names_with_slashes_and_markup_have_a_page_and_are_escaped(client):
    me, x = make_model(public_name="org/<b>model</b>"), make_model(public_name="x")
    vote(me, x, "model_a")
    from arena.leaderboard.services import snapshot_create

    snapshot_create()
    board = client.get("/leaderboard/").content.decode()
    assert "/leaderboard/model/org/%3Cb%3Emodel%3C/b%3E/" in board
    page = client.get("/leaderboard/model/org/<b>model</b>/").content.decode()
    assert "<b>model</b>" not in page and "org/&lt;b&gt;model&lt;/b&gt;" in page


class TestBuiltFromTheSnapshot:
    """The page moves only with the board: no live counts, counted votes only, one build per snapshot."""

    def test_a_vote_after_the_snapshot_changes_nothing_until_the_next_refit(self, client):
        from arena.leaderboard.services import snapshot_create

        me, x = make_model(public_name="me"), make_model(public_name="x")
        vote(me, x, "model_a", prompt="First prompt, in the snapshot")
        snapshot_create()
        before = client.get("/leaderboard/model/me/").content.decode()
        vote(me, x, "model_a", prompt="Second prompt, after the snapshot")
        after = client.get("/leaderboard/model/me/").content.decode()
        assert after == before and "Second prompt" not in after
        assert [(r.wins, r.losses) for r in model_card("me")["opponents"]] == [(1, 0)]
        snapshot_create()
        refitted = client.get("/leaderboard/model/me/").content.decode()
        assert "Second prompt, after the snapshot" in refitted
        assert [(r.wins, r.losses) for r in model_card("me")["opponents"]] == [(2, 0)]

    def test_an_excluded_vote_is_neither_counted_nor_shown_as_an_example(self, client):
        from arena.leaderboard.services import snapshot_create

        me, x = make_model(public_name="me"), make_model(public_name="x")
        vote(me, x, "model_b", prompt="An ordinary prompt")
        excluded = vote(me, x, "model_a", prompt="Moderated text that must not be published")
        Vote.objects.filter(pk=excluded.pk).update(exclusion="moderation")
        snapshot_create()
        card = model_card("me")
        assert [(r.wins, r.losses) for r in card["opponents"]] == [(0, 1)]
        assert [ex["prompt"] for ex in card["examples"]] == ["An ordinary prompt"]
        assert "Moderated text" not in client.get("/leaderboard/model/me/").content.decode()

    def test_the_card_is_built_once_per_snapshot(self, django_assert_num_queries):
        from arena.leaderboard.services import snapshot_create

        me, x = make_model(public_name="me"), make_model(public_name="x")
        vote(me, x, "model_a")
        snapshot_create()
        model_card("me")
        # the model, the latest snapshot's key, and whether it is a checkpoint (siblings are never
        # cached: a sibling held back since must lose its name at once); the rest is cached
        with django_assert_num_queries(3):
            model_card("me")


class TestOnlyPublicContestants:
    def make_rated(self):
        from arena.leaderboard.services import snapshot_create

        me, x = make_model(public_name="me"), make_model(public_name="x")
        vote(me, x, "model_a")
        snapshot_create()
        return me

    def test_an_active_contestant_has_a_page_before_its_first_vote(self, client):
        make_model(public_name="fresh")
        assert client.get("/leaderboard/model/fresh/").status_code == 200

    def test_an_inactive_model_off_the_board_is_a_404(self, client):
        make_model(public_name="gone", active=False)
        assert client.get("/leaderboard/model/gone/").status_code == 404

    def test_a_fine_tune_held_by_the_gate_is_a_404_like_an_unknown_name(self, client):
        from arena.contestants import contestant_admit, contestant_hold

        base = make_model(public_name="base")
        held = make_model(public_name="base-sft-j9", parent=base, kind="lora")
        contestant_hold(held)
        response = client.get("/leaderboard/model/base-sft-j9/")
        assert response.status_code == 404
        assert response.content == client.get("/leaderboard/model/nobody/").content
        contestant_admit(held)
        assert client.get("/leaderboard/model/base-sft-j9/").status_code == 200

    def test_a_retired_model_and_an_imported_placeholder_on_the_board_keep_their_pages(self, client):
        from arena.leaderboard.services import snapshot_create
        from arena.retirement import model_retire

        me = self.make_rated()
        model_retire(me, actor="staff", reason="replaced")
        snapshot_create()
        assert client.get("/leaderboard/model/me/").status_code == 200
        placeholder = make_model(public_name="imported", active=False)
        vote(placeholder, make_model(public_name="y"), "model_a")
        snapshot_create()
        assert client.get("/leaderboard/model/imported/").status_code == 200
