"""A job's settings as launch arguments (standard library only): the ``key=value`` overrides that
turn a preset into a given recipe config, and the ``manage.py launch_training`` command line.

Contract: for any valid ``config`` of ``method``, ``job_config(method, preset, config_overrides(method,
preset, config))`` (``training.services``) gives back ``config`` exactly, because

* the overrides are the fields whose value differs from the preset's (from the method's defaults
  when the preset is empty or no longer exists: ``base_preset`` says which one was used), and
* each value is written the way ``training.recipes.values.coerce`` reads it back: ``repr`` for a
  float (shortest round-trip), ``true``/``false``, a JSON list for a list of module names.

``launch_command`` quotes every argument for a POSIX shell, so the printed line is the command.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from training.recipes.config import PRESETS, config_class, preset

#: the launch form's choice fields that are also recipe settings (the form turns them back into overrides)
CHOICE_FIELDS = ("finetuning_type", "backend", "deepspeed")


def base_preset(method: str, preset_name: str) -> str:
    """The preset a job's overrides are relative to: its own, or "" (the defaults) when that one is gone."""
    return preset_name if preset_name in PRESETS.get(method, {}) else ""


def override_text(value: Any) -> str:
    """One value as ``training.recipes.values.coerce`` reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def config_overrides(method: str, preset_name: str, config: Mapping[str, Any]) -> list[str]:
    """``key=value`` lines that turn ``base_preset(method, preset_name)`` into ``config``, in field order.

    Keys of ``config`` that the method's recipe no longer has are left out (an old job's config).
    """
    name = base_preset(method, preset_name)
    start = (preset(method, name) if name else config_class(method)()).to_dict()
    lines = []
    for key, default in start.items():
        if key in config and config[key] != default:
            lines.append(f"{key}={override_text(config[key])}")
    return lines


def launch_command(*, method: str, base: str, dataset: str, preset_name: str = "", overrides: Sequence[str] = (),
                   init_job: int | None = None, reward_job: int | None = None) -> str:
    """The ``manage.py launch_training`` line, shell-quoted. ``dataset``: a name, or an id (as text)."""
    args = ["--method", method, "--base", base, "--dataset", dataset]
    if preset_name:
        args += ["--preset", preset_name]
    for line in overrides:
        args += ["--set", line]
    if init_job is not None:
        args += ["--init-job", str(init_job)]
    if reward_job is not None:
        args += ["--reward-job", str(reward_job)]
    return ".venv/bin/python manage.py launch_training " + " ".join(shlex.quote(arg) for arg in args)


def command_arguments(command: str) -> list[str]:
    """The arguments of a line made by ``launch_command`` (what ``call_command`` takes after the name)."""
    words = shlex.split(command)
    start = words.index("launch_training") + 1
    return words[start:]
