"""An admin chats with a model in Chromium: two turns, streamed then whole, under the real CSP."""

from pathlib import Path

import pytest

from tests.helpers import off_the_event_loop

pytestmark = [pytest.mark.browser, pytest.mark.vllm]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


@pytest.fixture
def chat_setup(transactional_db, vllm_url):
    """A base model on the real engine and an admin (made before the browser's event loop starts)."""
    from django.contrib.auth import get_user_model

    from serving.models import Endpoint, ServedModel

    endpoint = Endpoint.objects.create(name="local", base_url=f"{vllm_url}/v1", healthy=True)
    base = ServedModel.objects.create(public_name="smollm2-135m-instruct", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct", generation={"temperature": 0.0})
    get_user_model().objects.create_superuser("boss", "", "a-long-password")
    return base


def test_an_admin_holds_a_two_turn_chat_streamed_then_whole(chat_setup, asgi_server, page):
    from playwright.sync_api import expect

    from arena.models import Battle, Vote

    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(asgi_server + "/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")
    page.goto(asgi_server + f"/admin/training/checkpoint/chat/?with=model:{chat_setup.pk}")
    page.fill("#chat-max-tokens", "12")
    page.fill("#chat-input", "Name a colour.")
    page.click("#chat-send")
    expect(page.locator("#chat-log .assistant .meta")).to_have_count(1, timeout=120_000)
    expect(page.locator("#chat-log .assistant .meta").first).to_contain_text("smollm2-135m-instruct")
    page.uncheck("#chat-stream")
    page.fill("#chat-input", "Name another one.")
    page.click("#chat-send")
    expect(page.locator("#chat-log .assistant .meta")).to_have_count(2, timeout=120_000)
    assert page.locator("#chat-log .user").count() == 2 and page.locator("#chat-log .error").count() == 0
    assert all(text.strip() for text in page.locator("#chat-log .assistant").all_inner_texts())
    assert not errors, errors  # no CSP refusal, no script error
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-studio-chat.png"), full_page=True)
    assert off_the_event_loop(lambda: (Battle.objects.count(), Vote.objects.count())) == (0, 0)
