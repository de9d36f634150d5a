from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # The public model page lists a checkpoint's siblings; the arena asks, it never imports training.
        from arena.model_card import SIBLING_PROVIDERS  # noqa: PLC0415 - apps are ready only now
        from training.siblings import model_siblings  # noqa: PLC0415 - models load only after ready

        if model_siblings not in SIBLING_PROVIDERS:
            SIBLING_PROVIDERS.append(model_siblings)
