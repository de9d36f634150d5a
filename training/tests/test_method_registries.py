"""The training methods have one list, ``training.recipes.config.CONFIG_CLASSES``: the job model's
choices (``Job.Method``) and the recipe modules (``RECIPES``) are derived from it. The presets
cannot be (each is a hand-chosen config), and a method's module must offer the recipe's
functions: this test is their agreement, naming the place that disagrees."""

from __future__ import annotations

import inspect

from training.models import Job
from training.recipes.config import CONFIG_CLASSES, PRESETS
from training.recipes.methods import RECIPES

REQUIRED = ("trainer_config", "build_trainer", "start_fields")


def test_every_registry_names_the_same_methods():
    methods = set(CONFIG_CLASSES)
    assert Job.Method.choices == [(method, cls.label) for method, cls in CONFIG_CLASSES.items()]
    assert all(cls.label for cls in CONFIG_CLASSES.values()), "a config class without its label"
    for place, names in (("training.recipes.methods.RECIPES", RECIPES), ("CONFIG_CLASSES", CONFIG_CLASSES),
                         ("PRESETS", PRESETS)):
        assert set(names) == methods, f"{place} names {sorted(names)}, CONFIG_CLASSES names {sorted(methods)}"


def test_each_method_has_its_config_class_module_functions_and_a_cpu_smoke_preset():
    for method, module in RECIPES.items():
        assert CONFIG_CLASSES[method].method == method
        for name in REQUIRED:
            assert inspect.isfunction(getattr(module, name, None)), f"{module.__name__} lacks {name}()"
        assert "cpu-smoke" in PRESETS[method], f"{method} has no cpu-smoke preset (the tests and benchmarks use it)"
        for preset, config in PRESETS[method].items():
            assert isinstance(config, CONFIG_CLASSES[method]), f"preset {method}/{preset} is a {type(config).__name__}"
