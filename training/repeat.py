"""Repeat and vary a run: a job's settings as launch-form values and as the ``launch_training``
command line, and named saved configurations offered on the launch form beside the presets.

A job's settings are its method, base, dataset, init and reward checkpoints, its preset and the
overrides that turn that preset into the job's stored config (``training.launch_args``): launching
them again, from the form or the command, gives a job with the same config.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from training.errors import TrainingError
from training.launch_args import CHOICE_FIELDS, base_preset, config_overrides, launch_command
from training.models import Job, SavedConfiguration
from training.services import job_config

#: the launch form's preset value of a saved configuration: ``saved:<id>``
SAVED_PREFIX = "saved:"


def job_overrides(job: Job) -> list[str]:
    """The ``key=value`` lines that turn the job's preset (as it is defined now) into its config."""
    return config_overrides(job.method, job.preset, job.config)


def _dataset_argument(job: Job) -> str:
    # launch_training reads an all-digit --dataset as an id, so such a name is given by its id
    return str(job.dataset_id) if job.dataset.name.isdigit() else job.dataset.name


def job_command(job: Job) -> str:
    """The ``manage.py launch_training`` line that queues a job with this job's settings."""
    return launch_command(
        method=job.method, base=job.base_model.public_name, dataset=_dataset_argument(job),
        preset_name=base_preset(job.method, job.preset), overrides=job_overrides(job),
        init_job=job.init_checkpoint.job_id if job.init_checkpoint_id else None,
        reward_job=job.reward_model.job_id if job.reward_model_id else None,
    )


def job_initial(job: Job) -> dict:
    """The launch form's initial values for "Launch again with these settings"."""
    lines = job_overrides(job)
    choices = {field: job.config.get(field) for field in CHOICE_FIELDS if field in job.config}
    return {
        "base_model": job.base_model_id, "method": job.method, "dataset": job.dataset_id,
        "preset": base_preset(job.method, job.preset), "init_checkpoint": job.init_checkpoint_id,
        "reward_model": job.reward_model_id, **choices,
        # the choice fields above are set on their own widgets, not typed a second time
        "overrides": "\n".join(line for line in lines if line.partition("=")[0] not in CHOICE_FIELDS),
    }


@transaction.atomic
def saved_configuration_create(*, name: str, method: str, preset: str = "", overrides=None, description: str = "",
                               created_by=None) -> SavedConfiguration:
    """Store a named configuration after checking it exactly as a launch would; raises TrainingError
    (an unknown method or preset, an invalid setting: every problem listed) and then stores nothing."""
    name = (name or "").strip()
    if not name:
        raise TrainingError("Give the configuration a name.")
    if method not in Job.Method.values:
        raise TrainingError(f"Unknown method {method!r}; choose one of {', '.join(Job.Method.values)}.")
    lines = [line.strip() for line in (overrides or []) if line.strip()]
    job_config(method, preset, lines)  # raises TrainingError listing every bad key
    if SavedConfiguration.objects.filter(name=name).exists():
        raise TrainingError(f"A saved configuration named {name!r} already exists; pick another name.")
    try:
        return SavedConfiguration.objects.create(name=name, method=method, preset=preset, overrides=lines,
                                                 description=description, created_by=created_by)
    except IntegrityError:  # saved by someone else in the meantime
        raise TrainingError(f"A saved configuration named {name!r} already exists; pick another name.") from None


def saved_configuration_from_job(job: Job, *, name: str, created_by=None) -> SavedConfiguration:
    """The job's method, preset and overrides under a name (base, dataset and checkpoints are not part of it)."""
    return saved_configuration_create(
        name=name, method=job.method, preset=base_preset(job.method, job.preset), overrides=job_overrides(job),
        description=f"From job {job.pk} ({job.get_method_display()} of {job.base_model} on {job.dataset}).",
        created_by=created_by)


def saved_configuration_choices() -> list[tuple[str, str]]:
    """The launch form's preset choices of the saved configurations: (``saved:<id>``, a label)."""
    out = []
    for saved in SavedConfiguration.objects.all():
        n = len(saved.overrides)
        label = f"{saved.name} ({saved.method}, {saved.preset or 'defaults'} + {n} setting{'s' if n != 1 else ''})"
        out.append((f"{SAVED_PREFIX}{saved.pk}", label))
    return out


def saved_configuration_expand(value: str, method: str) -> tuple[str, list[str]]:
    """(preset, overrides) of the launch form's ``saved:<id>`` choice for ``method``; raises TrainingError."""
    key = value.removeprefix(SAVED_PREFIX)
    saved = SavedConfiguration.objects.filter(pk=int(key)).first() if key.isdigit() else None
    if saved is None:
        raise TrainingError("That saved configuration no longer exists; pick another or a preset.")
    if saved.method != method:
        raise TrainingError(f"The saved configuration {saved.name!r} is for {saved.get_method_display()}, not "
                            f"{Job.Method(method).label}: pick that method or another configuration.")
    return saved.preset, list(saved.overrides)
