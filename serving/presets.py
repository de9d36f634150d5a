"""Endpoint presets: base URL, key variable, request terms and a few model ids of common providers.

A preset only fills in an endpoint's blank fields and creates its listed models
(inactive, so an admin sets prices and turns them on); nothing here is contacted.
Prices change too often to ship: the admin enters them on each served model.
Key variables use the ``ARENA_KEY_`` prefix that the endpoint validator allows.
Base URLs ending in ``<...>`` name the part the admin must fill in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from serving.models import Endpoint, ServedModel


@dataclass(frozen=True)
class PresetModel:
    engine_model_id: str
    context_length: int | None = None
    organization: str = ""
    license: str = ""


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    kind: str
    base_url: str
    api_key_env: str = ""
    max_concurrency: int = 16
    timeout_s: float = 120.0
    retry_max: int = 2
    retry_backoff_s: float = 1.0
    health_every_s: int = 0
    models: tuple[PresetModel, ...] = field(default_factory=tuple)

    def endpoint_defaults(self) -> dict:
        """The endpoint fields this preset sets."""
        return {
            "kind": self.kind, "base_url": self.base_url, "api_key_env": self.api_key_env, "preset": self.key,
            "max_concurrency": self.max_concurrency, "timeout_s": self.timeout_s, "retry_max": self.retry_max,
            "retry_backoff_s": self.retry_backoff_s, "health_every_s": self.health_every_s,
        }


_META = "Meta"
_LLAMA = "Llama 3.x Community License"

PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in [
        Preset("together", "Together AI (serverless)", Endpoint.Kind.OPENAI_COMPATIBLE,
               "https://api.together.xyz/v1", "ARENA_KEY_TOGETHER", max_concurrency=8, health_every_s=600,
               retry_max=3, models=(
                   PresetModel("meta-llama/Llama-3.3-70B-Instruct-Turbo", 131072, _META, _LLAMA),
                   PresetModel("Qwen/Qwen2.5-72B-Instruct-Turbo", 32768, "Qwen", "Qwen license"),
               )),
        Preset("fireworks", "Fireworks AI (serverless)", Endpoint.Kind.OPENAI_COMPATIBLE,
               "https://api.fireworks.ai/inference/v1", "ARENA_KEY_FIREWORKS", max_concurrency=8,
               health_every_s=600, retry_max=3, models=(
                   PresetModel("accounts/fireworks/models/llama-v3p3-70b-instruct", 131072, _META, _LLAMA),
               )),
        Preset("openrouter", "OpenRouter", Endpoint.Kind.OPENAI_COMPATIBLE,
               "https://openrouter.ai/api/v1", "ARENA_KEY_OPENROUTER", max_concurrency=8, health_every_s=600,
               retry_max=3, models=(
                   PresetModel("meta-llama/llama-3.3-70b-instruct", 131072, _META, _LLAMA),
                   PresetModel("mistralai/mistral-small-3.1-24b-instruct", 131072, "Mistral AI", "Apache-2.0"),
               )),
        Preset("hf-endpoint", "Hugging Face Inference Endpoint (TGI Messages API)", Endpoint.Kind.TGI,
               "https://<endpoint>.endpoints.huggingface.cloud/v1", "ARENA_KEY_HF", max_concurrency=8,
               timeout_s=180.0, retry_max=3, retry_backoff_s=2.0, models=(PresetModel("tgi"),)),
        Preset("tgi", "Text Generation Inference server (Messages API)", Endpoint.Kind.TGI,
               "http://<host>:8080/v1", "", models=(PresetModel("tgi"),)),
        Preset("vllm-remote", "vLLM server run by your team", Endpoint.Kind.VLLM,
               "http://<host>:8000/v1", "ARENA_KEY_VLLM"),
        Preset("openai-compatible", "Any OpenAI-compatible provider", Endpoint.Kind.OPENAI_COMPATIBLE,
               "https://<provider>/v1", "ARENA_KEY_PROVIDER", max_concurrency=8, health_every_s=600),
    ]
}


def preset_choices() -> list[tuple[str, str]]:
    return [(key, preset.label) for key, preset in PRESETS.items()]


def preset_create_models(endpoint: Endpoint) -> list[ServedModel]:
    """Create the endpoint's preset models that do not exist yet, inactive (prices first, then turn them on)."""
    preset = PRESETS.get(endpoint.preset)
    created = []
    for entry in preset.models if preset else ():
        if ServedModel.objects.filter(endpoint=endpoint, engine_model_id=entry.engine_model_id).exists():
            continue
        name = entry.engine_model_id.rsplit("/", 1)[-1]
        if ServedModel.objects.filter(public_name=name).exists():
            name = f"{name}@{endpoint.name}"
        created.append(ServedModel.objects.create(
            endpoint=endpoint, engine_model_id=entry.engine_model_id, public_name=name, active=False,
            context_length=entry.context_length, organization=entry.organization, license=entry.license,
        ))
    return created
