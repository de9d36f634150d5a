"""Provisional models: marked, listed after the established ones, on the page, API, CSV and reveal."""

from __future__ import annotations

import csv
import io

import pytest

from arena import services
from arena.leaderboard import services as leaderboard_services
from arena.leaderboard.provisional import ProvisionalRule, is_provisional, mark_provisional
from arena.models import Battle
from tests.factories import make_model, make_vote


def row(model, rating, battles, width=10.0, group=0):
    return {"model": model, "rating": rating, "ci_low": rating - width / 2, "ci_high": rating + width / 2,
            "battles": battles, "group": group}


def test_few_votes_or_a_wide_interval_make_a_row_provisional_and_it_moves_after_its_group():
    rule = ProvisionalRule(min_votes=100, max_width=50.0)
    assert is_provisional(row("a", 1000, 99), rule) and not is_provisional(row("a", 1000, 100), rule)
    assert is_provisional(row("a", 1000, 500, width=51), rule)
    rows = [row("new", 1100, 20), row("old1", 1050, 400), row("wide", 1020, 400, width=80), row("old2", 990, 300),
            row("other", 1000, 10, group=1), row("other2", 900, 200, group=1)]
    marked = mark_provisional(rows, rule)
    assert [r["model"] for r in marked] == ["old1", "old2", "new", "wide", "other2", "other"]
    assert [r["provisional"] for r in marked] == [False, False, True, True, False, True]
    assert mark_provisional(rows, ProvisionalRule(0, float("inf")))[0]["provisional"] is False


@pytest.mark.django_db
def test_the_board_page_api_and_csv_mark_a_provisional_model(client, settings):
    settings.ARENA_LEADERBOARD_PROVISIONAL_VOTES = 12
    settings.ARENA_LEADERBOARD_PROVISIONAL_WIDTH = 10_000.0
    ant, bee, cat, star = (make_model(public_name=n) for n in ("ant", "bee", "cat", "star"))
    for _ in range(8):
        make_vote(ant, bee, "model_a")
        make_vote(bee, cat, "model_a")
        make_vote(ant, cat, "tie")
    for _ in range(3):
        make_vote(star, ant, "model_a")  # the best record, but 3 votes
    leaderboard_services.snapshot_create()
    rows = client.get("/api/leaderboard").json()["rows"]
    assert [(r["model"], r["provisional"]) for r in rows] == [
        ("ant", False), ("bee", False), ("cat", False), ("star", True)]
    assert rows[3]["rating"] > rows[0]["rating"]  # its score is shown, its place is not claimed
    page = client.get("/leaderboard/").content.decode()
    assert page.count('class="badge provisional"') == 1 and "fewer than 12 votes" in page
    table = list(csv.DictReader(io.StringIO(client.get("/leaderboard.csv").content.decode())))
    assert [r["provisional"] for r in table] == ["False", "False", "False", "True"]


@pytest.mark.django_db
@pytest.mark.parametrize("ci", ["bootstrap", "sandwich"])
def test_a_model_with_one_vote_is_provisional_everywhere_unranked_and_its_interval_holds_its_estimate_and_the_mean(
        client, settings, ci):
    # The report: after one vote a model showed 1819, interval 1000–1819, rank 1.
    settings.ARENA_LEADERBOARD_CI = ci
    settings.ARENA_LEADERBOARD_PROVISIONAL_VOTES = 20
    settings.ARENA_LEADERBOARD_PROVISIONAL_WIDTH = 10_000.0
    ant, bee, cat, star = (make_model(public_name=n) for n in ("ant", "bee", "cat", "star"))
    for _ in range(15):
        make_vote(ant, bee, "model_a")
        make_vote(bee, cat, "model_a")
        make_vote(ant, cat, "model_a")
        make_vote(bee, ant, "tie")
    star_vote = make_vote(star, ant, "model_a")  # one vote, against the best model
    leaderboard_services.snapshot_create()
    rows = client.get("/api/leaderboard").json()["rows"]
    assert [(r["model"], r["provisional"]) for r in rows] == [
        ("ant", False), ("bee", False), ("cat", False), ("star", True)]
    assert rows[0]["rank"] == 1 and rows[3]["rank"] is None and rows[3]["rank_if_settled"] >= 1
    star_row = rows[3]
    mean = sum(r["rating"] for r in rows) / len(rows)
    assert star_row["ci_low"] < star_row["rating"] < star_row["ci_high"]
    assert star_row["ci_low"] < mean < star_row["ci_high"]
    assert star_row["rating"] < rows[0]["rating"] + 100  # the prior keeps one vote from pulling it far
    page = client.get("/leaderboard/").content.decode()
    assert page.count('class="badge provisional"') == 1 and "Provisional: not ranked" in page
    table = list(csv.DictReader(io.StringIO(client.get("/leaderboard.csv").content.decode())))
    assert [(r["model"], r["rank"], r["provisional"]) for r in table][-1] == ("star", "", "True")
    card = client.get("/leaderboard/model/star/").content.decode()
    assert "provisional</span>, not ranked yet" in card
    assert "rank 1" in client.get("/leaderboard/model/ant/").content.decode()
    # The reveal after a battle shows the same standing: star provisional and unranked, ant first.
    reveal = services.battle_reveal(Battle.objects.get(pk=star_vote.battle_id))
    star_standing, ant_standing = reveal["model_a"]["standing"], reveal["model_b"]["standing"]
    assert star_standing["provisional"] is True and star_standing["rank"] is None and star_standing["votes"] == 1
    assert star_standing["rating"] == round(star_row["rating"])
    assert star_standing["ci_low"] <= star_standing["rating"] <= star_standing["ci_high"]
    assert ant_standing["provisional"] is False and ant_standing["rank"] == 1
    assert client.get(star_standing["page"]).status_code == 200  # the reveal links to the model's page
