"""An admin launches a fine-tune from the admin in Chromium and watches it finish live."""

from pathlib import Path

import pytest

from serving.local_models import LOCAL_MODELS
from serving.models import Endpoint, ServedModel
from tests.helpers import off_the_event_loop
from training import services
from training.models import Job

pytestmark = [pytest.mark.browser, pytest.mark.vllm, pytest.mark.training, pytest.mark.celery]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


@pytest.fixture
def launch_setup(transactional_db, vllm_url, celery_worker_process):
    """A base model on the real engine, a real dataset, an admin and a real worker (made before the
    browser starts: Playwright's sync API runs an event loop in this thread, where the ORM refuses to run)."""
    from django.contrib.auth import get_user_model

    endpoint = Endpoint.objects.create(name="local", base_url=f"{vllm_url}/v1", healthy=True,
                                       model_dir=LOCAL_MODELS["smollm2"].engine_spec().model_dir)
    base = ServedModel.objects.create(public_name="smollm2-135m-instruct", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct")
    dataset = services.dataset_from_builtin("oasst-en-messages")
    get_user_model().objects.create_superuser("boss", "", "a-long-password")
    celery_worker_process()
    return base, dataset


def test_an_admin_launches_an_sft_job_and_watches_it_succeed(launch_setup, asgi_server, page):
    from playwright.sync_api import expect


    base, dataset = launch_setup
    page.goto(asgi_server + "/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")
    page.goto(asgi_server + "/admin/training/job/add/")
    expect(page.locator("h1")).to_have_text("Launch a fine-tune")
    page.select_option("#id_base_model", str(base.pk))
    page.select_option("#id_method", "sft")
    page.select_option("#id_dataset", str(dataset.pk))
    page.select_option("#id_preset", "cpu-smoke")
    page.fill("#id_overrides", "max_steps=2\nmax_length=128\nper_device_train_batch_size=2\nmax_train_rows=8")
    page.click("#launch-job")

    # The job page updates itself (polling) until the job has succeeded and names its contestant.
    expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=300_000)
    job = off_the_event_loop(lambda: Job.objects.select_related("created_by").get())
    expect(page.locator("#job-contestant")).to_have_text(f"smollm2-135m-instruct-sft-j{job.pk}")
    # Finished: the cancel button and the launch's "queued" message went with the last poll.
    expect(page.locator("#cancel-job")).to_have_count(0)
    expect(page.locator("ul.messagelist li.info")).to_have_count(0)
    assert page.locator(".job-panel svg").count() >= 2
    assert job.created_by.username == "boss"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-job-succeeded.png"), full_page=True)
