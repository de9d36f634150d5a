"""Endpoint presets: base URL, key variable, request terms and a few model ids of common providers.

A preset only fills in an endpoint's blank fields and creates its listed models
(inactive, so an admin checks prices and turns them on); nothing here is contacted.
Prices change often: a preset model carries a price only where the provider's own page gave
one, with that page and the date it was read (``price_source``, ``price_read_on``; the admin
sees both when the models are created and on each model's admin page, never on public pages).
Elsewhere the price is left empty for the admin.
Key variables use the ``ARENA_KEY_`` prefix that the endpoint validator allows.
Base URLs ending in ``<...>`` name the part the admin must fill in.
What each provider's API accepts is in ``serving/providers.py``; sources in ``docs/providers.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from serving.models import Endpoint, ServedModel, default_generation
from serving.providers import refused_params, rules_for


@dataclass(frozen=True)
class PresetModel:
    engine_model_id: str
    context_length: int | None = None
    organization: str = ""
    license: str = ""
    price_input_per_mtok: Decimal | None = None
    price_output_per_mtok: Decimal | None = None
    price_source: str = ""
    price_read_on: str = ""
    price_per_request_usd: Decimal | None = None

    def price_note(self) -> str:
        if self.price_input_per_mtok is None:
            return "Price not shipped with the preset: enter it from the provider's price page."
        fee = f", plus USD {self.price_per_request_usd} per request" if self.price_per_request_usd is not None else ""
        return (f"Preset price (USD per million tokens, {self.price_input_per_mtok} in / "
                f"{self.price_output_per_mtok} out{fee}) read on {self.price_read_on} from {self.price_source}; "
                "check it before activating.")


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
_PROPRIETARY = "Proprietary (provider's terms)"
_READ_ON = "2026-12-06"
_ANTHROPIC_PRICES = "https://platform.claude.com/docs/about-claude/models/overview"
_PERPLEXITY_PRICES = "https://docs.perplexity.ai/guides/pricing"


def _priced(model_id: str, context: int, org: str, price_in: str, price_out: str, source: str,
            per_request: str | None = None) -> PresetModel:
    return PresetModel(model_id, context, org, _PROPRIETARY, Decimal(price_in), Decimal(price_out), source, _READ_ON,
                       None if per_request is None else Decimal(per_request))


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
        # OpenAI: prices left empty (OpenAI's own pricing page could not be read here; see docs/providers.md).
        Preset("openai", "OpenAI", Endpoint.Kind.OPENAI_COMPATIBLE, "https://api.openai.com/v1",
               "ARENA_KEY_OPENAI", max_concurrency=8, health_every_s=600, retry_max=3, models=(
                   PresetModel("gpt-5.5", None, "OpenAI", _PROPRIETARY),
                   PresetModel("gpt-5.4-mini", None, "OpenAI", _PROPRIETARY),
               )),
        Preset("anthropic", "Anthropic Claude (OpenAI SDK compatibility)", Endpoint.Kind.OPENAI_COMPATIBLE,
               "https://api.anthropic.com/v1", "ARENA_KEY_ANTHROPIC", max_concurrency=4, health_every_s=600,
               retry_max=3, retry_backoff_s=2.0, models=(
                   _priced("claude-opus-5-5", 1_000_000, "Anthropic", "4", "20", _ANTHROPIC_PRICES),
                   _priced("claude-sonnet-5", 1_000_000, "Anthropic", "2", "10", _ANTHROPIC_PRICES),
                   _priced("claude-haiku-4-5", 200_000, "Anthropic", "1", "5", _ANTHROPIC_PRICES),
               )),
        # Gemini: prices left empty (only third-party transcriptions of Google's page were found).
        Preset("gemini", "Google Gemini (OpenAI compatibility)", Endpoint.Kind.OPENAI_COMPATIBLE,
               "https://generativelanguage.googleapis.com/v1beta/openai", "ARENA_KEY_GEMINI", max_concurrency=8,
               health_every_s=600, retry_max=3, retry_backoff_s=2.0, models=(
                   PresetModel("gemini-3-flash-preview", None, "Google", _PROPRIETARY),
                   PresetModel("gemini-2.5-flash", None, "Google", _PROPRIETARY),
               )),
        Preset("perplexity", "Perplexity (Sonar API)", Endpoint.Kind.OPENAI_COMPATIBLE, "https://api.perplexity.ai",
               "ARENA_KEY_PERPLEXITY", max_concurrency=4, health_every_s=900, retry_max=3, retry_backoff_s=2.0,
               models=(
                   # Token prices plus the request fee at the default (low) search context size: $5 and
                   # $6 per 1,000 requests; medium and high cost more (set the model's fee to match).
                   # The fee amounts are from third-party copies of the page (docs/providers.md).
                   _priced("sonar", 128_000, "Perplexity", "1", "1", _PERPLEXITY_PRICES, "0.005"),
                   _priced("sonar-pro", 200_000, "Perplexity", "3", "15", _PERPLEXITY_PRICES, "0.006"),
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
            price_input_per_mtok=entry.price_input_per_mtok, price_output_per_mtok=entry.price_output_per_mtok,
            price_per_request_usd=entry.price_per_request_usd,
            generation=preset_generation(endpoint),
        ))
    return created


def preset_model(model: ServedModel) -> PresetModel | None:
    """The preset entry a served model was created from, if its endpoint's preset lists it."""
    preset = PRESETS.get(model.endpoint.preset)
    return next((m for m in preset.models if m.engine_model_id == model.engine_model_id), None) if preset else None


def preset_generation(endpoint: Endpoint) -> dict:
    """The default sampling parameters, less those the endpoint's provider would refuse."""
    generation = default_generation()
    refused = set(refused_params(rules_for(endpoint.preset), generation))
    return {key: value for key, value in generation.items() if key not in refused}
