"""One module per training method, as TRL keeps one trainer per method. Each exposes:

* ``trainer_config(fields, cfg)`` -- the method's TRL config from the shared TrainingArguments
  ``fields`` (``common.trainer_fields``) and its ``RecipeConfig``;
* ``build_trainer(parts)`` -- the TRL trainer from the shared keyword arguments (model, args,
  train_dataset, processing_class, peft_config, callbacks);
* ``start_fields(trainer, init_dir)`` -- extra fields of the ``start`` progress event.

and optionally: ``split_rows(rows, cfg)`` -> (train, held out); ``MODEL = "seq-cls"`` and
``PEFT_TASK_TYPE`` (a scorer); ``fit_rows(rows, tokenizer, cfg)`` -> the training rows that fit
``max_length`` (GRPO's prompts); ``extra_parts(spec, base, device)`` -> more trainer keyword
arguments (GRPO's reward model); ``check_device(cfg, device)`` raises ``JobError`` for settings the
device cannot run (before any model loads; GRPO's ``use_vllm`` off CUDA); ``heldout_metrics(trainer, heldout, tokenizer, cfg)`` -> more
``done`` metrics.

Adding a method: its config class in ``training.recipes.config`` (with its dataset kind, label
and presets) in ``CONFIG_CLASSES``, and its module here, named after the method: ``RECIPES`` is
derived from ``CONFIG_CLASSES``. The modules import TRL inside their functions only, so this
package loads in the web process too (without TRL).
"""

from importlib import import_module
from types import ModuleType

from training.recipes.config import CONFIG_CLASSES

RECIPES: dict[str, ModuleType] = {method: import_module(f"{__name__}.{method}") for method in CONFIG_CLASSES}
