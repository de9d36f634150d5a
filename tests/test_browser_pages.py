"""The rough edges raters, readers and admins saw, checked in Chromium at 1280×900 and 390×844 (a phone).

Each test saves screenshots under var/screenshots/pages/ for a person to look at.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from arena.leaderboard import services as leaderboard_services
from tests.factories import make_model
from tests.helpers import off_the_event_loop
from tests.test_browser_leaderboard import MODELS, cast_votes
from training import services
from training.models import Job

pytestmark = [pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots" / "pages"
SIZES = {"wide": (1280, 900), "phone": (390, 844)}


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def resize(page, size: str) -> None:
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})


def log_in(page, url: str) -> None:
    page.goto(url + "/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")


def overflows(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "el => el.scrollWidth > el.clientWidth + 1")


@pytest.mark.vllm
@pytest.mark.parametrize("size", SIZES)
def test_a_rater_sees_cut_answers_marked_and_a_full_reveal(size, battle_models, asgi_server, page):
    from playwright.sync_api import expect

    resize(page, size)
    page.goto(asgi_server + "/")
    expect(page.locator("#status")).to_contain_text("Ask anything", timeout=20_000)
    # The vote labels point at the sides as laid out: left/right side by side, up/down when stacked.
    stacked = size == "phone"
    expect(page.locator('#votes button[data-winner="model_a"] .stacked')).to_be_visible(visible=stacked)
    expect(page.locator('#votes button[data-winner="model_a"] .side-by-side')).to_be_visible(visible=not stacked)
    page.fill("#prompt", "Tell me a long story about a lighthouse keeper.")
    page.click("#send")
    expect(page.locator('#votes button[data-winner="tie"]')).to_be_enabled(timeout=120_000)
    # Both answers hit the 12-token cap of the fixture: each says it was cut, and nothing tells the sides apart.
    for side in "ab":
        expect(page.locator(f"#chat-{side} .meta.truncated")).to_have_text(re.compile("cut off"))
    body = page.inner_text("body")
    assert "tokens/s" not in body and "first token" not in body
    # No empty band above an answer: its first block starts at the top of the bubble.
    gap = page.eval_on_selector("#chat-a .msg.assistant", """el => {
        const first = el.firstElementChild; if (!first) return 0;
        return first.getBoundingClientRect().top - el.getBoundingClientRect().top; }""")
    assert gap < 16
    shoot(page, f"battle-{size}-answered")

    page.click('#votes button[data-winner="tie"]')
    for side in "ab":
        expect(page.locator(f"#reveal-{side}")).to_contain_text("smollm2-test", timeout=20_000)
        expect(page.locator(f"#facts-{side}")).to_contain_text("Hugging Face · Apache-2.0 · first token")
        expect(page.locator(f"#verdict-{side}")).to_have_text("Tie")
    shoot(page, f"battle-{size}-revealed")


@pytest.fixture
def board(transactional_db):
    def seed():
        models = [make_model(public_name=name, organization=org, license=lic) for name, org, lic, _ in MODELS]
        cast_votes(models, 300, random.Random(3))
        leaderboard_services.snapshot_create()
        return models

    return off_the_event_loop(seed)


@pytest.mark.parametrize("size", SIZES)
def test_the_leaderboard_and_a_model_page_read_well(size, board, asgi_server, page):
    from playwright.sync_api import expect

    resize(page, size)
    page.goto(asgi_server + "/leaderboard/")
    expect(page.locator("table.board tbody tr")).to_have_count(len(board))
    assert not overflows(page, ".table-wrap"), "the board table must fit without sideways scrolling"
    assert not overflows(page, "html")
    name_cell = page.locator("#model-mistral-7b-instruct-v0\\.3 td.model")
    line = page.eval_on_selector("body", "el => parseFloat(getComputedStyle(el).lineHeight) || 22")
    assert name_cell.bounding_box()["height"] <= 3 * line  # not "gem / ma- / 3- / 270m"
    ci = page.locator("#model-mistral-7b-instruct-v0\\.3")
    if size == "phone":
        expect(ci.locator(".ci-inline")).to_be_visible()
        expect(ci.locator("td.ci-col")).to_be_hidden()
        # Plots keep a readable width and scroll inside their box instead of shrinking.
        assert page.locator("#plot-ci svg").bounding_box()["width"] >= 500
    else:
        expect(ci.locator("td.ci-col")).to_be_visible()
        expect(ci.locator("td.detail").first).to_be_visible()
    shoot(page, f"leaderboard-{size}")

    page.click("#model-mistral-7b-instruct-v0\\.3 td.model a")
    expect(page.locator("h1")).to_have_text("mistral-7b-instruct-v0.3")
    expect(page.locator("#current-rating .big")).to_have_text(re.compile(r"^\d{3,4}$"))
    expect(page.locator("#opponents tbody tr")).to_have_count(len(board) - 1)
    expect(page.locator("#plot-history svg")).to_be_visible()
    assert page.locator(".example").count() >= 1
    assert not overflows(page, "html")
    shoot(page, f"model-page-{size}")


@pytest.fixture
def jobs(transactional_db):
    """Two finished SFT runs on one dataset and a running one, as rows (no training needed to lay out a page)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    def seed():
        get_user_model().objects.create_superuser("boss", "", "a-long-password")
        base = make_model(public_name="smollm2-135m-instruct")
        dataset = services.dataset_from_builtin("oasst-en-messages")
        made = []
        for k, status in enumerate(["succeeded", "succeeded", "running"]):
            metrics = [{"step": s, "loss": 2.5 - 0.1 * s - 0.05 * k, "learning_rate": 7.612046748871327e-06 * (9 - s)}
                       for s in range(1, 9)]
            made.append(Job.objects.create(
                base_model=base, method="sft", dataset=dataset, preset="cpu-smoke", config={"learning_rate": 2e-4},
                status=status, step=8, total_steps=8 if status != "running" else 20, metrics=metrics,
                log_tail="\n".join(f"step {s} loss {m['loss']:.3f}" for s, m in enumerate(metrics, 1)) * 3,
                started_at=timezone.now(), finished_at=timezone.now() if status != "running" else None))
        return made

    return off_the_event_loop(seed)


@pytest.mark.parametrize("size", SIZES)
def test_the_job_page_has_one_heading_live_facts_and_compares_runs(size, jobs, asgi_server, page):
    from playwright.sync_api import expect


    resize(page, size)
    log_in(page, asgi_server)

    done, _, running = jobs
    page.goto(f"{asgi_server}/admin/training/job/{done.pk}/change/")
    expect(page.locator("#content h1")).to_have_text(re.compile(rf"^Job {done.pk}: SFT of smollm2-135m-instruct on "))
    assert page.locator("#content h2", has_text=f"Job {done.pk}").count() == 0  # no second, near-identical heading
    expect(page.locator("#job-lr")).to_have_text(re.compile(r"^\d\.\d\de-\d\d$"))
    expect(page.locator("#job-comparison svg path")).to_have_count(3)  # this run and the two others
    history, log = page.locator(".object-tools").bounding_box(), page.locator("pre.log").bounding_box()
    assert history["y"] >= log["y"] + log["height"] or history["y"] + history["height"] <= log["y"]
    shoot(page, f"job-page-{size}")

    # The running job's page picks up its worker without a reload.
    page.goto(f"{asgi_server}/admin/training/job/{running.pk}/change/")
    expect(page.locator("#job-status")).to_have_text("Running")
    off_the_event_loop(lambda: Job.objects.filter(pk=running.pk).update(worker="celery@gpu-1"))
    expect(page.locator("#job-worker")).to_have_text("celery@gpu-1", timeout=10_000)

    page.goto(f"{asgi_server}/admin/training/job/")
    page.check(f'input[name="_selected_action"][value="{done.pk}"]')
    page.check(f'input[name="_selected_action"][value="{jobs[1].pk}"]')
    page.select_option('select[name="action"]', "compare_runs")
    page.click('button[name="index"]')
    expect(page.locator("#compare-runs svg path")).to_have_count(2)
    shoot(page, f"job-compare-{size}")


def test_the_record_lists_fit_a_1280_screen(board, asgi_server, page):
    from django.contrib.auth import get_user_model

    off_the_event_loop(lambda: get_user_model().objects.create_superuser("boss", "", "a-long-password"))
    log_in(page, asgi_server)
    for model in ("battle", "response", "vote"):
        page.goto(f"{asgi_server}/admin/arena/{model}/")
        assert page.locator("#result_list tbody tr").count() > 0
        assert not overflows(page, "#changelist .results"), f"the {model} list scrolls sideways at 1280 px"
        assert page.locator(".object-tools .addlink").count() == 0  # records of the arena, not added by hand
        shoot(page, f"admin-{model}s")
