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
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

logger = logging.getLogger(__name__)

env_name_validator = RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "An environment variable name, e.g. ARENA_KEY_OPENAI.")


def key_env_allowed(name: str) -> bool:
    """Only variables named ``SERVING_KEY_ENV_PREFIX*`` (env ARENA_ENDPOINT_KEY_PREFIX, default
    ARENA_KEY_) may hold endpoint keys: never DATABASE_URL, DJANGO_SECRET_KEY or any other."""
    prefix = settings.SERVING_KEY_ENV_PREFIX
    return bool(name) and name.startswith(prefix) and len(name) > len(prefix)


def origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class Endpoint(models.Model):
    """An OpenAI-compatible server. ``managed`` ones are vLLM processes we start ourselves."""

    class Kind(models.TextChoices):
        VLLM = "vllm", "vLLM (OpenAI-compatible, supports runtime LoRA)"
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
        if not self.api_key_env:
            return
        prefix = settings.SERVING_KEY_ENV_PREFIX
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

    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ServedModelQuerySet.as_manager()

    class Meta:
        ordering = ["public_name"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "engine_model_id"], name="unique_engine_model_per_endpoint"),
        ]

    def __str__(self) -> str:
        return self.public_name

    def generation_params(self, *, max_tokens: int) -> dict:
        """The model's sampling parameters, its ``max_tokens`` capped at the caller's ``max_tokens``."""
        params = dict(self.generation or {})
        params["max_tokens"] = min(int(params.get("max_tokens", max_tokens)), max_tokens)
        return params
