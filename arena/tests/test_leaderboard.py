"""snapshot_create and the leaderboard selectors, on real votes in the test database."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from django.conf import settings
from scipy.optimize import minimize

from arena import services
from arena.leaderboard import boards, categories, presentation
from arena.leaderboard import selectors as leaderboard_selectors
from arena.leaderboard import services as leaderboard_services
from arena.models import Battle, RatingSnapshot, Vote
from arena.ratings import DEFAULT_REG, PairCounts, elo_update
from tests.factories import make_finished_battle, make_model, make_vote

pytestmark = pytest.mark.usefixtures("quick_leaderboard")

@pytest.fixture
def trio(db):
    return [make_model(public_name=name, organization=f"{name} Labs", license="MIT") for name in ("ant", "bee", "cat")]


def bt_by_scipy(battles: list[tuple[str, str, str]], reg: float = DEFAULT_REG) -> dict[str, float]:
    """An independent Bradley–Terry fit: scipy's generic optimiser on the penalised likelihood
    written out here (ties half a win each, ridge ``reg/2·Σθ²`` with θ = rating/400), centred at 1000."""
    models = sorted({m for a, b, _ in battles for m in (a, b)})
    index = {m: k for k, m in enumerate(models)}
    score = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}

    def loss(theta: np.ndarray) -> float:
        total = reg / 2 * float(np.sum(theta**2))
        for a, b, winner in battles:
            d = math.log(10) * (theta[index[a]] - theta[index[b]])
            total += score[winner] * np.logaddexp(0, -d) + (1 - score[winner]) * np.logaddexp(0, d)
        return total

    theta = minimize(loss, np.zeros(len(models)), method="BFGS", options={"gtol": 1e-10}).x
    return {m: 1000 + 400 * (theta[k] - theta.mean()) for m, k in index.items()}


def entry(snapshot: RatingSnapshot, key: str) -> dict:
    return leaderboard_selectors.board_get(snapshot.data, key)


def ratings(snapshot: RatingSnapshot, key: str = "overall") -> dict[str, float]:
    return {row["model"]: row["rating"] for row in entry(snapshot, key)["board"]["rows"]}


@pytest.mark.django_db
class TestSnapshotCreate:
    def test_an_empty_arena_gets_a_snapshot_with_no_numbers(self):
        snapshot = leaderboard_services.snapshot_create()
        assert snapshot.data["totals"] == {"votes": 0, "counted": 0, "excluded": 0}
        for category in snapshot.data["categories"]:
            assert category["votes"] == 0 and category["board"] is None and not category["enough_votes"]
        assert snapshot.data["style_control"]["board"] is None
        assert snapshot.last_vote_id == 0

    def test_the_overall_board_matches_an_independent_fit_of_the_same_votes(self, trio):
        ant, bee, cat = trio
        plan = [(ant, bee, "model_a")] * 5 + [(bee, ant, "tie")] * 2 + [(bee, cat, "model_a")] * 4 + [
            (cat, ant, "model_b"), (cat, bee, "tie (bothbad)")]
        for a, b, w in plan:
            make_vote(a, b, w)
        snapshot = leaderboard_services.snapshot_create()
        board = entry(snapshot, "overall")["board"]
        # The board's prior (SD in points) is the ridge (400/SD)² of the scipy fit.
        sd = settings.ARENA_LEADERBOARD_PRIOR_SD
        expected = bt_by_scipy([(a.public_name, b.public_name, w) for a, b, w in plan], reg=(400 / sd) ** 2)
        assert [r["model"] for r in board["rows"]] == ["ant", "bee", "cat"]
        for row in board["rows"]:
            assert row["rating"] == pytest.approx(expected[row["model"]], abs=1e-3)
            assert row["ci_low"] <= row["ci_high"]
        assert np.mean([r["rating"] for r in board["rows"]]) == pytest.approx(1000)
        assert board["rows"][0]["organization"] == "ant Labs" and board["rows"][0]["license"] == "MIT"
        assert [r["battles"] for r in board["rows"]] == [8, 12, 6]
        assert board["heatmaps"]["models"] == ["ant", "bee", "cat"]

    def test_categories_split_the_votes(self, trio):
        ant, bee, cat = trio
        for _ in range(4):
            make_vote(ant, bee, "model_a", turns=3)
            make_vote(bee, cat, "tie", prompt_tokens=categories.LONG_PROMPT_TOKENS, language="de")
        make_vote(cat, ant, "model_b", language="en")
        snapshot = leaderboard_services.snapshot_create()
        votes = {c["key"]: c["votes"] for c in snapshot.data["categories"]}
        assert votes == {"overall": 9, "multi_turn": 4, "long_prompt": 4, "no_ties": 5, "lang-de": 4, "lang-en": 1}
        assert set(ratings(snapshot, "multi_turn")) == {"ant", "bee"}
        assert set(ratings(snapshot, "no_ties")) == {"ant", "bee", "cat"}
        # German has enough votes for a tab, English not yet.
        tabs = [c["key"] for c in leaderboard_selectors.categories_list(snapshot.data)]
        assert tabs == ["overall", "multi_turn", "long_prompt", "no_ties", "lang-de"]
        assert entry(snapshot, "lang-de")["label"] == "German"
        assert entry(snapshot, "lang-en")["board"] is None

    def test_a_category_below_its_threshold_says_so_instead_of_printing_numbers(self, trio, settings):
        settings.ARENA_LEADERBOARD_MIN_VOTES = 3
        ant, bee, _ = trio
        make_vote(ant, bee)
        make_vote(ant, bee, turns=2)
        snapshot = leaderboard_services.snapshot_create()
        overall = entry(snapshot, "overall")
        assert overall["board"] is None and overall["votes"] == 2 and overall["min_votes"] == 3
        payload = presentation.board_payload(snapshot, "overall")
        assert payload["rows"] == []
        assert payload["message"] == (
            "Not enough votes yet: 2 counted votes in this category; its board appears at 3."
        )
        make_vote(ant, bee)
        assert entry(leaderboard_services.snapshot_create(), "overall")["board"] is not None

    def test_excluded_votes_are_counted_with_their_reasons_and_kept_out(self, trio):
        ant, bee, cat = trio
        make_vote(ant, bee, "model_a")
        make_vote(ant, cat, "model_a", identity_leak=True)
        make_vote(ant, cat, "model_a", side_error=True)
        make_vote(ant, cat, "model_a", identity_leak=True, side_error=True)
        make_vote(cat, ant, "model_a", mode=Battle.Mode.NAMED)
        too_fast = make_vote(bee, cat, "model_b")
        Vote.objects.filter(pk=too_fast.pk).update(exclusion=Vote.Exclusion.TOO_FAST)
        snapshot = leaderboard_services.snapshot_create()
        assert snapshot.data["totals"] == {"votes": 6, "counted": 1, "excluded": 5}
        quality_reasons = {"side_incomplete": 0, "too_fast": 1, "repeated_prompt": 0, "moderation": 0,
                           "outlier_rater": 0, "key_share": 0, "staff_excluded": 0}
        assert snapshot.data["excluded"] == {"identity_leak": 2, "named_mode": 1, "side_error": 2, **quality_reasons}
        assert set(ratings(snapshot)) == {"ant", "bee"}  # cat only ever had excluded votes
        assert snapshot.data["style_control"]["votes"] == 1

    def test_a_real_identity_leak_is_flagged_by_the_vote_service_and_left_out(self, trio):
        ant, bee, _ = trio
        leaky = make_finished_battle(model_a=ant, model_b=bee, rater_id="me", answers=("I am ChatGPT.", "Hi"))
        services.battle_vote(battle_id=leaky.public_id, rater_id="me", winner="model_a")
        clean = make_finished_battle(model_a=ant, model_b=bee, rater_id="me")
        services.battle_vote(battle_id=clean.public_id, rater_id="me", winner="model_b")
        snapshot = leaderboard_services.snapshot_create()
        assert snapshot.data["excluded"]["identity_leak"] == 1
        assert entry(snapshot, "overall")["votes"] == 1
        rows = entry(snapshot, "overall")["board"]["rows"]
        assert rows[0]["model"] == "bee"  # only bee's win counts

    def test_a_disconnected_graph_is_kept_in_groups_with_ranks_within_each(self, db):
        models = [make_model(public_name=n) for n in ("a1", "a2", "a3", "b1", "b2")]
        for _ in range(3):
            make_vote(models[0], models[1])
            make_vote(models[1], models[2])
            make_vote(models[3], models[4], "model_b")
        board = entry(leaderboard_services.snapshot_create(), "overall")["board"]
        assert not board["is_connected"]
        assert board["components"] == [["a1", "a2", "a3"], ["b2", "b1"]]
        assert [(r["model"], r["group"]) for r in board["rows"]] == [
            ("a1", 0), ("a2", 0), ("a3", 0), ("b2", 1), ("b1", 1)]
        assert board["heatmaps"]["models"] == ["a1", "a2", "a3"]  # the largest group only
        assert [r["rank"] for r in board["rows"] if r["group"] == 1][0] == 1

    def test_the_anchor_setting_pins_its_model(self, trio, settings):
        settings.ARENA_LEADERBOARD_ANCHOR = ("bee", 1200.0)
        ant, bee, cat = trio
        for a, b in [(ant, bee), (bee, cat), (cat, ant), (ant, bee)]:
            make_vote(a, b)
        snapshot = leaderboard_services.snapshot_create()
        assert ratings(snapshot)["bee"] == pytest.approx(1200.0)
        assert entry(snapshot, "overall")["board"]["anchor"] == {"model": "bee", "rating": 1200.0}
        assert snapshot.data["anchor"] == {"model": "bee", "rating": 1200.0}

    def test_style_control_is_a_board_of_its_own_and_skips_votes_without_style(self, trio):
        ant, bee, cat = trio
        for k in range(6):
            long_a = {"a": {"tokens": 400, "headers": 2, "lists": 5, "bold": 3},
                      "b": {"tokens": 40 + k, "headers": 0, "lists": 0, "bold": 0}}
            make_vote(ant, bee, "model_a", style=long_a)
            make_vote(bee, cat, "model_b" if k % 2 else "model_a")
        make_vote(cat, ant, "tie", style={})
        snapshot = leaderboard_services.snapshot_create()
        style = snapshot.data["style_control"]
        assert style["style_control"] and style["votes"] == 12 and style["without_style"] == 1
        board = style["board"]
        assert {r["model"] for r in board["rows"]} == {"ant", "bee", "cat"}
        assert all(r["elo"] is None for r in board["rows"])
        assert set(board["coefficients"]) == {"tokens", "headers", "lists", "bold"}
        assert leaderboard_selectors.board_get(snapshot.data, "overall", style=True) is style

    def test_a_slow_style_fit_is_carried_over_until_it_is_due(self, trio, monkeypatch, settings):
        ant, bee, cat = trio
        for a, b in [(ant, bee), (bee, cat), (cat, ant), (ant, cat)]:
            make_vote(a, b)
        monkeypatch.setattr(leaderboard_services, "STYLE_CHEAP_MS", 0.0)  # every fit counts as slow
        first = leaderboard_services.snapshot_create()
        make_vote(bee, ant)
        second = leaderboard_services.snapshot_create()
        assert second.data["style_control"]["computed_at"] == first.data["style_control"]["computed_at"]
        assert second.data["style_control"]["last_vote_id"] == first.last_vote_id < second.last_vote_id
        assert entry(second, "overall")["votes"] == 5 and second.data["style_control"]["votes"] == 4
        assert not leaderboard_selectors.snapshot_is_current()  # so the periodic refresh completes it
        settings.ARENA_LEADERBOARD_STYLE_EVERY_S = 0.0
        third = leaderboard_services.snapshot_create()
        assert third.data["style_control"]["votes"] == 5 and leaderboard_selectors.snapshot_is_current()

    def test_old_snapshots_are_pruned(self, trio, monkeypatch):
        monkeypatch.setattr(leaderboard_services, "KEEP_SNAPSHOTS", 2)
        make_vote(trio[0], trio[1])
        made = [leaderboard_services.snapshot_create().pk for _ in range(3)]
        assert list(RatingSnapshot.objects.order_by("pk").values_list("pk", flat=True)) == made[1:]


@pytest.mark.django_db
class TestIncrementalElo:
    def full_recompute(self) -> dict:
        RatingSnapshot.objects.all().delete()
        snapshot = leaderboard_services.snapshot_create()
        assert snapshot.elo_state["full_recompute"]
        return snapshot.elo_state["ratings"]

    def test_incremental_elo_equals_a_full_recompute(self, trio):
        ant, bee, cat = trio
        pattern = [(ant, bee, "model_a"), (bee, cat, "tie"), (cat, ant, "model_a"), (bee, ant, "model_b")]
        for a, b, w in pattern * 3:
            make_vote(a, b, w, turns=2)
        first = leaderboard_services.snapshot_create()
        assert first.elo_state["full_recompute"]
        for a, b, w in pattern[::-1] * 2:
            make_vote(a, b, w, language="fr")
        second = leaderboard_services.snapshot_create()
        assert not second.elo_state["full_recompute"]
        incremental = second.elo_state["ratings"]
        full = self.full_recompute()
        assert incremental.keys() == full.keys() == {"overall", "multi_turn", "no_ties", "lang-fr"}
        for key in full:
            assert incremental[key] == pytest.approx(full[key], abs=1e-9)
        # And the same as elo_update over all counted votes in time order.
        battles = [(v.battle.model_a.public_name, v.battle.model_b.public_name, v.winner)
                   for v in Vote.objects.counted().order_by("created_at", "pk").select_related("battle__model_a",
                                                                                             "battle__model_b")]
        assert full["overall"] == pytest.approx(elo_update({}, battles), abs=1e-9)
        rows = entry(second, "overall")["board"]["rows"]
        assert {r["model"]: r["elo"] for r in rows} == pytest.approx(incremental["overall"])

    def test_a_vote_reflagged_after_the_snapshot_forces_a_full_recompute(self, trio):
        ant, bee, cat = trio
        votes = [make_vote(ant, bee), make_vote(bee, cat), make_vote(cat, ant)]
        leaderboard_services.snapshot_create()
        Vote.objects.filter(pk=votes[1].pk).update(identity_leak=True)
        make_vote(ant, cat)
        after = leaderboard_services.snapshot_create()
        assert after.elo_state["full_recompute"]
        full = self.full_recompute()
        assert after.elo_state["ratings"].keys() == full.keys()
        for key in full:
            assert after.elo_state["ratings"][key] == pytest.approx(full[key], abs=1e-9)

    def test_a_newer_vote_older_than_the_last_one_replayed_forces_a_full_recompute(self, trio):
        ant, bee, cat = trio
        first = make_vote(ant, bee)
        make_vote(bee, cat)
        leaderboard_services.snapshot_create()
        make_vote(cat, ant, created_at=first.created_at - dt.timedelta(days=1))  # imported history
        after = leaderboard_services.snapshot_create()
        assert after.elo_state["full_recompute"]
        assert after.elo_state["ratings"]["overall"] == pytest.approx(self.full_recompute()["overall"])


@pytest.mark.django_db
class TestSelectors:
    def test_snapshot_latest_is_none_before_the_first_and_then_the_newest(self, trio):
        assert leaderboard_selectors.snapshot_latest() is None
        leaderboard_services.snapshot_create()
        newest = leaderboard_services.snapshot_create()
        latest = leaderboard_selectors.snapshot_latest()
        assert latest.pk == newest.pk and "elo_state" in latest.get_deferred_fields()

    def test_snapshot_is_current_until_a_vote_or_a_model_changes(self, trio):
        ant, bee, _ = trio
        assert not leaderboard_selectors.snapshot_is_current()
        make_vote(ant, bee)
        leaderboard_services.snapshot_create()
        assert leaderboard_selectors.snapshot_is_current()
        make_vote(bee, ant)
        assert not leaderboard_selectors.snapshot_is_current()
        leaderboard_services.snapshot_create()
        ant.organization = "Renamed Labs"
        ant.save()
        assert not leaderboard_selectors.snapshot_is_current()

    def test_unknown_categories_are_refused_with_the_list_of_known_ones(self, trio):
        make_vote(trio[0], trio[1])
        data = leaderboard_services.snapshot_create().data
        with pytest.raises(leaderboard_selectors.UnknownCategory, match="overall, multi_turn, long_prompt, no_ties"):
            leaderboard_selectors.board_get(data, "coding")
        with pytest.raises(leaderboard_selectors.UnknownCategory, match="overall board only"):
            leaderboard_selectors.board_get(data, "no_ties", style=True)


class TestBoardBuild:
    """The pure part shared with manage.py compute_ratings."""

    def test_a_one_model_board_has_one_row_at_1000(self):
        board = boards.board_build(PairCounts.from_grouped([], models=["solo"]), rounds=10)
        assert [(r["model"], r["rating"], r["rank"], r["battles"], r["avg_win_rate"]) for r in board["rows"]] == [
            ("solo", 1000.0, 1, 0, None)]
        assert board["is_connected"] and board["heatmaps"]["models"] == ["solo"]

    def test_an_empty_board_has_no_rows(self):
        board = boards.board_build(PairCounts.from_grouped([]), rounds=10)
        assert board["rows"] == [] and board["components"] == []

    def test_rows_carry_elo_and_descriptions_when_given(self):
        counts = PairCounts.from_grouped([("x", "y", "model_a", 3), ("y", "x", "tie", 1)])
        board = boards.board_build(counts, rounds=5, elo={"x": 1010.0}, info={"y": ("Org", "MIT")})
        by_model = {r["model"]: r for r in board["rows"]}
        assert by_model["x"]["elo"] == 1010.0 and by_model["y"]["elo"] is None
        assert (by_model["y"]["organization"], by_model["y"]["license"]) == ("Org", "MIT")
        assert by_model["x"]["avg_win_rate"] + by_model["y"]["avg_win_rate"] == pytest.approx(1.0)
        assert set(by_model["x"]) >= set(boards.CLI_ROW_KEYS)
