"""A reader sees a fine-tune's siblings, held-back runs counted and unnamed, on its public page in Chromium."""

from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


@pytest.fixture
def family(transactional_db):
    from tests.factories import make_checkpoint, make_model
    from training.models import Dataset

    base = make_model(public_name="smollm2-135m-instruct", kind="base")
    data = Dataset.objects.create(name="oasst", kind="sft", format="messages", source="builtin", file="/x.jsonl")
    shown = make_checkpoint(base=base, dataset=data, gate={"win_rate": 0.7, "passed": True}, sampling_weight=1.0)
    for rate in (0.3, 0.4):
        make_checkpoint(base=base, dataset=data, gate={"win_rate": rate, "passed": False}, sampling_weight=0.0)
    return shown.served_model.public_name


def test_a_reader_sees_every_run_of_the_recipe(family, asgi_server, page):
    from playwright.sync_api import expect

    page.goto(f"{asgi_server}/leaderboard/model/{family}/")
    expect(page.locator("#siblings-summary")).to_contain_text("3 checkpoints trained from the same parent")
    expect(page.locator("#siblings-summary")).to_contain_text("2 held back by the gate")
    expect(page.locator("#siblings tbody tr")).to_have_count(3)
    expect(page.locator("#siblings .muted")).to_have_count(2)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#siblings").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "model-page-siblings.png"))
