"""The fine-tune studio in Chromium at 1280×900: a dataset's preview computed by a real worker (rows
as the recipe sees them, the token-length histogram, the rows each preset cuts), readable on a
phone too; a job page's command and "Launch again"; a saved configuration on the launch form."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from serving.local_models import LOCAL_MODELS
from serving.models import Endpoint, ServedModel
from tests.helpers import missing_part, off_the_event_loop
from training import services
from training.models import Job
from training.repeat import job_command

pytestmark = [pytest.mark.browser, pytest.mark.celery]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"


@pytest.fixture
def studio_setup(transactional_db, celery_worker_process, broker_queue, settings):
    """A base model with local weights, a real dataset, a finished (cancelled) job, an admin and a real
    worker (made before the browser starts: Playwright's sync API runs an event loop in this thread)."""
    model_dir = LOCAL_MODELS["smollm2"].engine_spec().model_dir
    if not Path(settings.ARENA_ENGINE_PYTHON).exists() or not (Path(model_dir) / "tokenizer.json").is_file():
        missing_part("engine environment or SmolLM2 directory missing: run `make models`")
    endpoint = Endpoint.objects.create(name="local-smollm2", base_url="http://127.0.0.1:9/v1", model_dir=model_dir)
    base = ServedModel.objects.create(public_name="smollm2-135m-instruct", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct")
    dataset = services.dataset_from_builtin("oasst-en-messages")
    job = services.job_launch(base_model=base, method="sft", dataset=dataset, preset_name="cpu-smoke",
                              overrides=["learning_rate=1e-4", "max_steps=3", "lora_target_modules=q_proj,v_proj"])
    services.job_cancel(job)  # a record to repeat; the worker finds it cancelled and leaves it
    get_user_model().objects.create_superuser("boss", "", "a-long-password")
    worker = celery_worker_process()
    return base, dataset, job, worker


def test_an_admin_previews_a_dataset_and_repeats_a_job_with_a_saved_configuration(studio_setup, asgi_server, page):


    base, dataset, job, worker = studio_setup
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(asgi_server + "/admin/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")

    # The first visit asks the worker; the page says so, then shows the result without a reload.
    page.goto(f"{asgi_server}/admin/training/dataset/{dataset.pk}/change/")
    expect(page.locator("#preview-computing")).to_contain_text("smollm2-135m-instruct")
    expect(page.locator("#preview-histogram svg")).to_be_visible(timeout=240_000)
    expect(page.locator("#preview-facts")).to_contain_text(f"{dataset.row_count} rows")
    assert page.locator("#preview-histogram svg rect").count() >= 3
    smoke = page.locator('#preview-cuts tr[data-method="sft"][data-preset="cpu-smoke"]')
    expect(smoke).to_contain_text("256")
    expect(smoke).to_contain_text("cut (truncated to the limit)")
    expect(page.locator(".preview-row")).to_have_count(5)
    expect(page.locator("#preview-row-1 pre.preview-text").first).to_contain_text("<|im_start|>user")
    page.screenshot(path=str(SCREENSHOTS / "admin-dataset-preview.png"), full_page=True)
    worker.terminate()  # the rest launches a job that no worker should train here
    worker.wait(30)

    # On a phone the chart shrinks to the screen instead of widening the page.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    box = page.locator("#preview-histogram svg").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.screenshot(path=str(SCREENSHOTS / "admin-dataset-preview-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # The job page shows the equivalent command and saves the settings under a name.
    page.goto(f"{asgi_server}/admin/training/job/{job.pk}/change/")
    expect(page.locator("#job-command")).to_have_text(off_the_event_loop(lambda: job_command(job)))
    page.fill("#id_configuration_name", "q-v only, lr 1e-4")
    page.click("#save-configuration")
    expect(page.locator("ul.messagelist")).to_contain_text("Saved as 'q-v only, lr 1e-4'")
    page.locator("#job-repeat").screenshot(path=str(SCREENSHOTS / "admin-job-repeat.png"))

    # "Launch again" opens the launch form filled with the job's settings ...
    page.click("#launch-again")
    expect(page.locator("h1")).to_have_text("Launch a fine-tune")
    expect(page.locator("#id_method")).to_have_value("sft")
    expect(page.locator("#id_dataset")).to_have_value(str(dataset.pk))
    expect(page.locator("#id_preset")).to_have_value("cpu-smoke")
    expect(page.locator("#id_overrides")).to_have_value(
        'learning_rate=0.0001\nmax_steps=3\nlora_target_modules=["q_proj", "v_proj"]')
    # ... which lists the saved configuration beside the presets; picked, it launches the same settings.
    option = page.locator("#id_preset optgroup[label='Saved configurations'] option")
    expect(option).to_have_text("q-v only, lr 1e-4 (sft, cpu-smoke + 3 settings)")
    page.select_option("#id_preset", label=option.inner_text())
    page.fill("#id_overrides", "")
    page.screenshot(path=str(SCREENSHOTS / "admin-launch-saved-configuration.png"), full_page=True)
    page.click("#launch-job")
    expect(page.locator("#job-status")).to_have_text("Queued")
    new = off_the_event_loop(lambda: Job.objects.exclude(pk=job.pk).get())
    assert (new.method, new.dataset_id, new.base_model_id, new.preset, new.config) == (
        job.method, job.dataset_id, job.base_model_id, job.preset, job.config)
    expect(page.locator("#job-command")).to_have_text(off_the_event_loop(lambda: job_command(new)))
