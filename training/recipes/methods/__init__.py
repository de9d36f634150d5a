"""One module per training method, as TRL keeps one trainer per method. Each exposes:

* ``trainer_config(fields, cfg)`` -- the method's TRL config from the shared TrainingArguments
  ``fields`` (``common.trainer_fields``) and its ``RecipeConfig``;
* ``build_trainer(parts)`` -- the TRL trainer from the shared keyword arguments (model, args,
  train_dataset, processing_class, peft_config, callbacks);
* ``start_fields(trainer, init_dir)`` -- extra fields of the ``start`` progress event.

Adding a method: its config class in ``training.recipes.config`` (with its dataset kind), a
module here, and a line in ``RECIPES``.
"""

from types import ModuleType

from training.recipes.methods import dpo, sft

RECIPES: dict[str, ModuleType] = {"sft": sft, "dpo": dpo}
