"""The training methods are named in four places that cannot be derived from one another without
importing the recipes (TRL) into the web process or the model into the recipes: the job model's
choices (and its migrations), the recipe modules, the config classes and the presets. This test is
their agreement: a method added to one and not the others fails here, naming the place."""

from __future__ import annotations

import inspect

from training.models import Job
from training.recipes.config import CONFIG_CLASSES, PRESETS
from training.recipes.methods import RECIPES

REQUIRED = ("trainer_config", "build_trainer", "start_fields")


def test_every_registry_names_the_same_methods():
    methods = set(Job.Method.values)
    for place, names in (("training.recipes.methods.RECIPES", RECIPES), ("CONFIG_CLASSES", CONFIG_CLASSES),
                         ("PRESETS", PRESETS)):
        assert set(names) == methods, f"{place} names {sorted(names)}, Job.Method names {sorted(methods)}"


def test_each_method_has_its_config_class_module_functions_and_a_cpu_smoke_preset():
    for method, module in RECIPES.items():
        assert CONFIG_CLASSES[method].method == method
        for name in REQUIRED:
            assert inspect.isfunction(getattr(module, name, None)), f"{module.__name__} lacks {name}()"
        assert "cpu-smoke" in PRESETS[method], f"{method} has no cpu-smoke preset (the tests and benchmarks use it)"
        for preset, config in PRESETS[method].items():
            assert isinstance(config, CONFIG_CLASSES[method]), f"preset {method}/{preset} is a {type(config).__name__}"
