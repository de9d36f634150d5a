"""The leaderboard page, its JSON API and the CSV download."""

from __future__ import annotations

import csv
import io
import time

import pytest

from arena.leaderboard import services as leaderboard_services
from arena.models import Battle, RatingSnapshot
from tests.factories import make_model, make_vote

pytestmark = pytest.mark.usefixtures("quick_leaderboard")


@pytest.fixture
def board(db):
    """Three models, eight counted votes (two in German), one identity leak; one snapshot."""
    ant, bee, cat = (make_model(public_name=n, organization=f"{n} Labs", license="MIT") for n in ("ant", "bee", "cat"))
    for _ in range(2):
        make_vote(ant, bee, "model_a")
        make_vote(bee, cat, "model_a")
        make_vote(ant, cat, "model_a", language="de")
        make_vote(cat, ant, "tie")
    make_vote(cat, ant, "model_a", identity_leak=True)
    return leaderboard_services.snapshot_create()


@pytest.mark.django_db
class TestLeaderboardApi:
    def test_it_says_no_ratings_yet_before_the_first_snapshot(self, client):
        response = client.get("/api/leaderboard")
        assert response.status_code == 200
        assert response.json() == {"snapshot": None, "rows": [], "pending": False,
                                   "message": "No ratings yet: no vote has been counted."}

    def test_it_returns_the_rows_sorted_by_rating_with_totals_and_exclusions(self, client, board):
        data = client.get("/api/leaderboard").json()
        assert data["snapshot"]["id"] == board.pk
        assert data["category"]["key"] == "overall" and data["category"]["enough_votes"]
        assert [r["model"] for r in data["rows"]] == ["ant", "bee", "cat"]
        ratings = [r["rating"] for r in data["rows"]]
        assert ratings == sorted(ratings, reverse=True)
        row = data["rows"][0]
        assert set(row) >= {"model", "rating", "ci_low", "ci_high", "rank", "battles", "elo", "organization",
                            "license"}
        assert row["ci_low"] <= row["rating"] <= row["ci_high"] and row["organization"] == "ant Labs"
        assert data["totals"] == {"models": 3, "votes": 8, "all_votes": 9, "counted_votes": 8, "excluded_votes": 1}
        assert data["excluded"] == {"identity_leak": 1, "named_mode": 0, "side_error": 0, "side_incomplete": 0,
                                    "too_fast": 0, "repeated_prompt": 0, "moderation": 0, "outlier_rater": 0, "key_share": 0,
                                    "staff_excluded": 0}
        assert data["connectivity"] == {"is_connected": True, "components": [["ant", "bee", "cat"]]}
        assert data["message"] is None
        assert [c["key"] for c in data["categories"]] == ["overall", "multi_turn", "long_prompt", "no_ties"]

    def test_categories_and_style_control_are_chosen_by_the_query(self, client, board):
        no_ties = client.get("/api/leaderboard", {"category": "no_ties"}).json()
        assert no_ties["category"]["key"] == "no_ties" and no_ties["totals"]["votes"] == 6
        styled = client.get("/api/leaderboard", {"category": "overall", "style": "1"}).json()
        assert styled["category"]["style_control"] and len(styled["rows"]) == 3
        few = client.get("/api/leaderboard", {"category": "lang-de"}).json()
        assert few["rows"] == [] and "its board appears at 4" in few["message"]

    @pytest.mark.parametrize("query,message", [
        ({"category": "coding"}, "Unknown category 'coding'"),
        ({"category": "no_ties", "style": "1"}, "overall board only"),
        ({"style": "maybe"}, "style must be 0 or 1"),
    ])
    def test_bad_queries_are_a_400_with_a_clear_message(self, client, board, query, message):
        response = client.get("/api/leaderboard", query)
        assert response.status_code == 400
        assert message in response.json()["error"]


@pytest.mark.django_db
class TestLeaderboardCsv:
    def test_it_downloads_the_board(self, client, board):
        response = client.get("/leaderboard.csv", {"category": "no_ties"})
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert 'filename="leaderboard-no_ties.csv"' in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [r["model"] for r in rows] == ["ant", "bee", "cat"]
        assert rows[0]["rank"] == "1" and float(rows[0]["rating"]) > 1000 and rows[0]["license"] == "MIT"

    def test_formula_like_names_are_defused(self, client, db):
        evil, good = make_model(public_name="=HYPERLINK(1)"), make_model(public_name="good")
        make_vote(evil, good)
        leaderboard_services.snapshot_create()
        text = client.get("/leaderboard.csv").content.decode()
        assert "'=HYPERLINK(1)" in text and "\n=HYPERLINK" not in text

    def test_an_unknown_category_is_a_400(self, client, board):
        response = client.get("/leaderboard.csv", {"category": "nope"})
        assert response.status_code == 400 and b"Unknown category" in response.content


@pytest.mark.django_db
class TestLeaderboardPage:
    def test_it_says_no_ratings_yet_before_any_vote(self, client):
        response = client.get("/leaderboard/")
        assert response.status_code == 200
        assert b"No ratings yet" in response.content and b'id="no-ratings"' in response.content

    def test_the_first_computation_is_queued_and_run_by_the_worker_when_votes_wait(
            self, client, settings, broker_queue, celery_worker_process):
        settings.ARENA_LEADERBOARD_REFRESH_DELAY_S = 0.0
        make_vote(make_model(), make_model())
        response = client.get("/leaderboard/")
        assert b"the first ones are being computed" in response.content
        celery_worker_process()
        deadline = time.monotonic() + 180  # a hang guard: the worker starts in a few seconds
        while not RatingSnapshot.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert RatingSnapshot.objects.get().data["totals"]["counted"] == 1
        assert b'id="no-ratings"' not in client.get("/leaderboard/").content

    def test_it_shows_the_table_plots_and_about_without_javascript(self, client, board):
        html = client.get("/leaderboard/").content.decode()
        for name in ("ant", "bee", "cat"):
            assert f'<tr id="model-{name}">' in html
        assert "Arena score" in html and "95% CI" in html and "ant Labs" in html
        assert html.count("<svg") == 4
        assert 'class="plot-ci"' in html and "plot-win-fraction" in html and "plot-battle-count" in html
        assert 'class="plot-winrate"' in html
        assert "bootstrap" in html and 'id="excluded-identity-leak">1<' in html
        assert "/static/arena/leaderboard.js" in html

    def test_a_category_below_its_threshold_shows_a_notice_instead_of_numbers(self, client, board):
        html = client.get("/leaderboard/", {"category": "lang-de"}).content.decode()
        assert 'id="below-threshold"' in html and "<svg" not in html and 'id="model-ant"' not in html

    def test_a_disconnected_board_is_shown_as_separate_groups(self, client, db):
        a, b, c, d = (make_model(public_name=n) for n in ("a", "b", "c", "d"))
        make_vote(a, b)
        make_vote(c, d)
        leaderboard_services.snapshot_create()
        html = client.get("/leaderboard/").content.decode()
        assert 'id="disconnected"' in html and "2 separate groups" in html
        assert html.count('<table class="board">') == 2

    def test_model_names_are_escaped(self, client, db):
        make_vote(make_model(public_name="<script>x</script>"), make_model(public_name="plain"))
        leaderboard_services.snapshot_create()
        html = client.get("/leaderboard/").content.decode()
        assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html

    def test_an_unknown_category_is_a_400_page(self, client, board):
        response = client.get("/leaderboard/", {"category": "nope"})
        assert response.status_code == 400 and b"Unknown category" in response.content

    def test_named_votes_count_as_excluded_on_the_page(self, client, board):
        make_vote(*(make_model(), make_model()), mode=Battle.Mode.NAMED)
        leaderboard_services.snapshot_create()
        html = client.get("/leaderboard/").content.decode()
        assert 'id="excluded-named-mode">1<' in html and 'id="excluded-total">2<' in html
