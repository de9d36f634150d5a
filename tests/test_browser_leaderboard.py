"""A reader opens the leaderboard in headless Chromium: table, plots, categories, live update."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest
from django.db import transaction

from arena import tasks
from arena.leaderboard import services as leaderboard_services
from tests.factories import make_model, make_vote
from tests.helpers import off_the_event_loop

pytestmark = [pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"

# (name, organization, license, true strength in Elo points): a plausible small arena.
MODELS = [
    ("qwen2.5-7b-instruct", "Alibaba", "Apache-2.0", 1120),
    ("llama-3.1-8b-instruct", "Meta", "Llama 3.1", 1100),
    ("gemma-2-9b-it", "Google", "Gemma", 1090),
    ("mistral-7b-instruct-v0.3", "Mistral AI", "Apache-2.0", 1040),
    ("smollm2-1.7b-instruct", "Hugging Face", "Apache-2.0", 990),
    ("phi-3-mini-4k-instruct", "Microsoft", "MIT", 980),
    ("gemma-3-270m", "Google", "Gemma", 900),
    ("smollm2-135m-instruct", "Hugging Face", "Apache-2.0", 860),
]


def cast_votes(models, count: int, rng: random.Random) -> None:
    """Votes drawn from the Bradley–Terry model of the true strengths, with realistic ties (in one
    transaction: one commit for them all)."""
    with transaction.atomic():
        _cast_votes(models, count, rng)


def _cast_votes(models, count: int, rng: random.Random) -> None:
    strength = {m.public_name: s for m, (_, _, _, s) in zip(models, MODELS, strict=False)}
    for k in range(count):
        a, b = rng.sample(models, 2)
        p = 1 / (1 + 10 ** ((strength.get(b.public_name, 1000) - strength.get(a.public_name, 1000)) / 400))
        u = rng.random()
        winner = "tie" if u < 0.12 else "tie (bothbad)" if u < 0.16 else ("model_a" if rng.random() < p else "model_b")
        tokens = (int(200 + 150 * math.sin(k)), int(200 + 150 * math.cos(k)))
        make_vote(
            a, b, winner, rater_id=f"rater-{k % 37}", language="en" if k % 5 else "zh-cn", turns=1 + (k % 4 == 0),
            prompt_tokens=600 if k % 7 == 0 else 40, identity_leak=k % 53 == 0,
            style={side: {"tokens": t, "headers": k % 3, "lists": (k + i) % 4, "bold": i}
                   for i, (side, t) in enumerate(zip("ab", tokens, strict=True))},
        )


def test_a_reader_sees_the_board_its_plots_and_its_updates(asgi_server, page, settings):
    from playwright.sync_api import expect

    settings.ARENA_LEADERBOARD_CATEGORY_MIN_VOTES = 30

    def seed():
        models = [make_model(public_name=name, organization=org, license=lic) for name, org, lic, _ in MODELS]
        cast_votes(models, 400, random.Random(7))
        leaderboard_services.snapshot_create()
        return models

    models = off_the_event_loop(seed)

    page.goto(asgi_server + "/leaderboard/")
    rows = page.locator("table.board tbody tr")
    expect(rows).to_have_count(len(MODELS))
    top = page.locator("#model-qwen2\\.5-7b-instruct")
    expect(top).to_contain_text("Alibaba")
    expect(top.locator("td.ci")).to_have_text(re.compile(r"^\+[\d.]+/−[\d.]+$"))
    expect(page.locator("#summary")).to_contain_text("counted votes")
    for plot in ("#plot-ci", "#plot-win-rate", "#plot-win-fraction", "#plot-battle-count"):
        svg = page.locator(f"{plot} svg")
        expect(svg).to_be_visible()
        assert svg.bounding_box()["height"] > 100
    assert page.locator("#plot-ci g.ci-row").count() == len(MODELS)
    assert page.locator("#plot-win-rate g.bar").count() == len(MODELS)
    assert page.locator("#plot-win-fraction rect").count() >= len(MODELS) ** 2
    expect(page.locator("#about")).to_contain_text("bootstrap")
    expect(page.locator("#excluded-identity-leak")).to_have_text("8")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "leaderboard.png"), full_page=True)
    page.locator("#plots").screenshot(path=str(SCREENSHOTS / "leaderboard-plots.png"))

    # Categories and the style-control switch work as plain links.
    page.click("nav.tabs >> text=English")
    expect(page.locator("nav.tabs a.active")).to_have_text("English")
    expect(page.locator("table.board tbody tr")).to_have_count(len(MODELS))
    page.click("nav.tabs >> text=Overall")
    page.click(".style-switch >> text=on")
    expect(page.locator("#style-coefficients")).to_contain_text("tokens")
    page.click(".style-switch >> text=off")

    # A new contestant's votes and a refit: the open page picks the new snapshot up by itself
    # (pushed over the WebSocket with Redis, by the 15 s poll in the embedded mode).
    def newcomer_arrives():
        newcomer = make_model(public_name="arena-dpo-j1", organization="This arena", license="Apache-2.0")
        cast_votes([newcomer, *models[:3]], 40, random.Random(8))
        tasks.ratings_refresh_task()

    off_the_event_loop(newcomer_arrives)
    expect(page.locator("#model-arena-dpo-j1")).to_contain_text("This arena", timeout=40_000)
    expect(page.locator("table.board tbody tr")).to_have_count(len(MODELS) + 1)
