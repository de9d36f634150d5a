"""A rater plays a whole battle in headless Chromium: prompt, both streams, vote, reveal, new round."""

from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.vllm]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


def test_a_rater_plays_a_full_battle(battle_models, asgi_server, page):
    from playwright.sync_api import expect

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
    expect(page.locator("#send")).to_be_disabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "battle-revealed.png"), full_page=True)

    page.click("#new-round")
    expect(page.locator("#reveal-a")).to_have_text("", timeout=20_000)
    expect(page.locator("#chat-a .msg")).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled(timeout=20_000)
