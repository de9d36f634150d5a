"""Endpoints (OpenAI-compatible servers) and the models they serve.

Serving knows nothing of battles or training: which served models are
contestants, and how often they battle, is the arena's (``arena.Contestant``).
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from serving.providers import refused_params, rules_for

logger = logging.getLogger(__name__)

env_name_validator = RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "An environment variable name, e.g. ARENA_KEY_OPENAI.")


def key_env_allowed(name: str) -> bool:
    """Only variables named ``ARENA_ENDPOINT_KEY_PREFIX*`` (env ARENA_ENDPOINT_KEY_PREFIX, default
    ARENA_KEY_) may hold endpoint keys: never DATABASE_URL, DJANGO_SECRET_KEY or any other."""
    prefix = settings.ARENA_ENDPOINT_KEY_PREFIX
    return bool(name) and name.startswith(prefix) and len(name) > len(prefix)


def origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class Endpoint(models.Model):
    """An OpenAI-compatible server. ``managed`` ones are vLLM processes we start ourselves."""

    class Kind(models.TextChoices):
        VLLM = "vllm", "vLLM (OpenAI-compatible, supports runtime LoRA)"
        TGI = "tgi", "TGI / Hugging Face Inference Endpoint (Messages API)"
        OPENAI_COMPATIBLE = "openai", "Other OpenAI-compatible provider"

    name = models.SlugField(unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.VLLM)
    base_url = models.URLField(help_text="Up to /v1, e.g. http://127.0.0.1:8101/v1")
    # The key itself is never stored: only the name of the variable that holds it.
    api_key_env = models.CharField(max_length=64, blank=True, validators=[env_name_validator])

    managed = models.BooleanField(default=False, help_text="Started and stopped by `manage.py run_engines`.")
    model_dir = models.CharField(max_length=500, blank=True)
    served_name = models.CharField(max_length=200, blank=True, help_text="--served-model-name of a managed engine")
    chat_template = models.CharField(max_length=500, blank=True)
    extra_args = models.JSONField(default=list, blank=True)

    # How requests to it are made (serving/presets.py fills these for common providers).
    preset = models.CharField(max_length=32, blank=True, help_text="The preset it was made from, if any")
    max_concurrency = models.PositiveIntegerField(
        default=16, help_text="Streams open at once per web process; more wait for a slot (0: no limit)")
    timeout_s = models.FloatField(default=120.0, validators=[MinValueValidator(1.0)],
                                  help_text="Per request: connecting, and waiting between two chunks")
    retry_max = models.PositiveSmallIntegerField(
        default=2, help_text="Retries of a request answered 429/5xx or not reached, before any token came")
    retry_backoff_s = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)],
                                        help_text="First retry delay; doubles each retry (Retry-After wins if longer)")
    extra_body = models.JSONField(default=dict, blank=True, help_text="Extra fields sent in every request body")
    health_every_s = models.PositiveIntegerField(
        default=0, help_text="Probe at most this often (providers bill or rate-limit /v1/models); 0: every check")
    max_loras = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="vLLM --max-loras: adapters it holds at once (empty: read from extra_args)")
    daily_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True,
                                           help_text="Spend per UTC day across its models; when spent they pause")

    healthy = models.BooleanField(default=False)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.extra_body, dict):
            raise ValidationError({"extra_body": "Extra request fields must be a JSON object."})
        reserved = {"model", "messages", "stream", "stream_options"} & set(self.extra_body)
        if reserved:
            raise ValidationError({"extra_body": f"These fields are set by the arena: {', '.join(sorted(reserved))}"})
        if not self.api_key_env:
            return
        prefix = settings.ARENA_ENDPOINT_KEY_PREFIX
        if not key_env_allowed(self.api_key_env):
            raise ValidationError({"api_key_env": f"Endpoint keys can only come from variables named {prefix}..., "
                                                  f"e.g. {prefix}OPENAI (ARENA_ENDPOINT_KEY_PREFIX)."})
        # One key, one server: a key variable is never shared with an endpoint on another host.
        for other in Endpoint.objects.filter(api_key_env=self.api_key_env).exclude(pk=self.pk):
            if origin_of(other.base_url) != origin_of(self.base_url):
                raise ValidationError({"api_key_env": f"{self.api_key_env} already holds the key of endpoint "
                                                      f"{other.name} on another host; use a variable of its own."})

    def api_key(self) -> str:
        """The key from the named environment variable; vLLM without --api-key accepts any.

        A variable outside the key prefix (a row written before the rule, or past the admin) is never read.
        """
        if not self.api_key_env:
            return "EMPTY"
        if not key_env_allowed(self.api_key_env):
            logger.error("endpoint %s names %s, which is not an endpoint key variable; sending no key",
                         self.name, self.api_key_env)
            return "EMPTY"
        return os.environ.get(self.api_key_env, "") or "EMPTY"

    def auth_headers(self, url: str) -> dict[str, str]:
        """The Authorization header for a request to ``url``: only on this endpoint's own origin."""
        if origin_of(url) != origin_of(self.base_url):
            return {}
        return {"Authorization": f"Bearer {self.api_key()}"}

    def root_url(self) -> str:
        """The server root (without /v1), where vLLM serves /health and the LoRA endpoints."""
        url = self.base_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def supports_lora(self) -> bool:
        return self.kind == self.Kind.VLLM

    def lora_slots(self) -> int | None:
        """How many adapters the engine holds at once (``max_loras``, else ``--max-loras`` in extra_args)."""
        if self.max_loras:
            return self.max_loras
        args = [str(arg) for arg in self.extra_args or []]
        for index, arg in enumerate(args):
            if arg.startswith("--max-loras="):
                return int(arg.split("=", 1)[1])
            if arg == "--max-loras" and index + 1 < len(args) and args[index + 1].isdigit():
                return int(args[index + 1])
        return None


class ServedModelQuerySet(models.QuerySet):
    def healthy(self) -> ServedModelQuerySet:
        """Active models on a healthy endpoint: the ones that can answer right now."""
        return self.filter(active=True, endpoint__healthy=True).select_related("endpoint")


def default_generation() -> dict:
    return {"temperature": 0.7, "top_p": 0.9}


ALLOWED_GENERATION_KEYS = {
    "temperature": (float, 0.0, 2.0),
    "top_p": (float, 0.0, 1.0),
    "max_tokens": (int, 1, 32768),
    "repetition_penalty": (float, 0.5, 2.0),
    "frequency_penalty": (float, -2.0, 2.0),
    "presence_penalty": (float, -2.0, 2.0),
    "seed": (int, 0, 2**31 - 1),
}


def validate_generation(value: dict) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Generation parameters must be a JSON object.")
    errors = []
    for key, raw in value.items():
        if key not in ALLOWED_GENERATION_KEYS:
            errors.append(f"unknown key {key!r} (allowed: {', '.join(sorted(ALLOWED_GENERATION_KEYS))})")
            continue
        kind, low, high = ALLOWED_GENERATION_KEYS[key]
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (kind is int and not isinstance(raw, int)):
            errors.append(f"{key} must be a {kind.__name__}")
        elif not low <= raw <= high:
            errors.append(f"{key} must be between {low} and {high}")
    if errors:
        raise ValidationError("; ".join(errors))


class ServedModel(models.Model):
    """A model (or LoRA adapter) on an endpoint, under a public name (revealed after a battle's vote)."""

    class Kind(models.TextChoices):
        BASE = "base", "Base model"
        LORA = "lora", "LoRA adapter"
        FULL = "full", "Full fine-tune"  # a whole model, on a managed endpoint (engine) of its own

    public_name = models.CharField(max_length=200, unique=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="models")
    engine_model_id = models.CharField(max_length=200, help_text="The id in the endpoint's /v1/models")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.BASE)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    adapter_path = models.CharField(max_length=500, blank=True)

    organization = models.CharField(max_length=200, blank=True)
    license = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    generation = models.JSONField(default=default_generation, blank=True, validators=[validate_generation])

    context_length = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens of context it accepts")
    price_input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True,
                                               help_text="USD per million prompt tokens (empty: not billed)")
    price_output_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True,
                                                help_text="USD per million completion tokens (empty: not billed)")
    price_per_request_usd = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True,
        help_text="USD per answered request on top of the token prices (a provider's request fee, e.g. "
                  "Perplexity's search fee; empty: none)")
    daily_budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True,
                                           help_text="Spend per UTC day; when spent it pauses until the next day")
    adapter_sha256 = models.CharField(max_length=64, blank=True,
                                      help_text="Content hash of the adapter directory, verified after each load")

    active = models.BooleanField(default=True)
    last_error = models.TextField(blank=True, help_text="Why the arena took this model out of battles, if it did")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ServedModelQuerySet.as_manager()

    class Meta:
        ordering = ["public_name"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "engine_model_id"], name="unique_engine_model_per_endpoint"),
        ]

    def __str__(self) -> str:
        return self.public_name

    def clean(self) -> None:
        """A sampling parameter the endpoint's provider rejects or ignores is refused here, by name,
        rather than failing (or silently not applying) in every battle."""
        super().clean()
        if self.endpoint_id is None or not isinstance(self.generation, dict):
            return
        rules = rules_for(self.endpoint.preset)
        refused = refused_params(rules, self.generation)
        if refused:
            raise ValidationError({"generation": f"{rules.name} does not accept {', '.join(refused)}; "
                                                  "remove it from the generation parameters."})

    def generation_params(self, *, max_tokens: int) -> dict:
        """The model's sampling parameters, its ``max_tokens`` capped at the caller's ``max_tokens``."""
        params = dict(self.generation or {})
        params["max_tokens"] = min(int(params.get("max_tokens", max_tokens)), max_tokens)
        return params
