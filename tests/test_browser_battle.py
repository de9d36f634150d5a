"""A rater plays a whole battle in headless Chromium: prompt, both streams, vote, reveal, new round."""

import re
from pathlib import Path

import pytest

from arena.leaderboard import services as leaderboard_services
from tests.factories import make_vote
from tests.helpers import off_the_event_loop

pytestmark = [pytest.mark.browser, pytest.mark.vllm]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


def test_a_rater_plays_a_full_battle(battle_models, asgi_server, page):
    from playwright.sync_api import expect

    def earlier_board():  # 4 votes for each model, far under the 300 that settle a place
        for winner in ("model_a", "model_b", "tie"):
            make_vote(*battle_models, winner)
        make_vote(battle_models[1], battle_models[0], "model_a")
        leaderboard_services.snapshot_create()

    off_the_event_loop(earlier_board)

    page.goto(asgi_server + "/")
    expect(page.locator("#status")).to_contain_text("Ask anything", timeout=20_000)
    # Before the vote, the page never shows who is fighting.
    assert "smollm2" not in page.content().lower()

    page.fill("#prompt", "Name three colours.")
    page.click("#send")
    vote_a = page.locator('#votes button[data-winner="model_a"]')
    expect(vote_a).to_be_enabled(timeout=120_000)
    for side in "ab":
        answer = page.locator(f"#chat-{side} .msg.assistant")
        expect(answer).to_have_count(1)
        assert answer.inner_text().strip()
    assert "smollm2" not in page.content().lower()

    vote_a.click()
    expect(page.locator("#reveal-a")).to_contain_text("smollm2-test", timeout=20_000)
    expect(page.locator("#reveal-b")).to_contain_text("smollm2-test")
    expect(page.locator("#side-a")).to_have_class("side winner")
    # Each side's standing on the board as it was before this vote: provisional, so no rank.
    expect(page.locator("#standing-a")).to_contain_text("provisional, not ranked yet · rating ")
    expect(page.locator("#standing-a")).to_contain_text("· 4 votes")
    expect(page.locator("#standing-b")).to_contain_text("· 4 votes")
    expect(page.locator("#standing-a .badge.provisional")).to_have_count(1)
    expect(page.locator("#standing-a a")).to_have_attribute("href", re.compile(r"^/leaderboard/model/smollm2-test-[ab]/$"))
    assert "rank" not in page.locator("#standing-a").inner_text().replace("not ranked", "")
    expect(page.locator("#send")).to_be_disabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "battle-revealed.png"), full_page=True)

    page.click("#new-round")
    expect(page.locator("#reveal-a")).to_have_text("", timeout=20_000)
    expect(page.locator("#standing-a")).to_have_text("")
    expect(page.locator("#chat-a .msg")).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled(timeout=20_000)
