"""Writes and remote calls of the serving app: health, model registration, LoRA adapters, and the
managed endpoints of full fine-tunes (``served_model_register_full``; their engines are run by
``serving.supervisor``).

The arena and training apps talk to endpoints only through these functions and
``serving.streaming``.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from serving.adapter_hash import adapter_dir_sha256
from serving.context import context_lengths_store
from serving.errors import EngineError, EngineUnreachable
from serving.local_models import enabled_local_models
from serving.models import Endpoint, ServedModel, origin_of
from serving.providers import rules_for

logger = logging.getLogger(__name__)


#: Answers that mean "the engine is down or overloaded", not "your request is wrong".
_UNAVAILABLE_STATUS = {502, 503, 504}


def endpoint_list_models(endpoint: Endpoint, *, timeout: float | None = None) -> list[dict]:
    """The endpoint's /v1/models entries. Raises EngineUnreachable when the engine does not answer,
    EngineError when it answers something else than a model list."""
    timeout = timeout or settings.ARENA_HEALTH_TIMEOUT_S
    try:
        url = f"{endpoint.base_url.rstrip('/')}/models"
        response = httpx.get(url, headers=endpoint.auth_headers(url), timeout=timeout)
    except httpx.HTTPError as exc:
        raise EngineUnreachable(f"{endpoint.name}: /v1/models failed: {exc}") from exc
    if response.status_code in (401, 403):
        raise EngineError(_key_refused(endpoint, response.status_code))
    if response.status_code in _UNAVAILABLE_STATUS:
        raise EngineUnreachable(f"{endpoint.name}: /v1/models answered {response.status_code}")
    try:
        response.raise_for_status()
        return list(response.json().get("data", []))
    except (httpx.HTTPError, ValueError) as exc:
        raise EngineError(f"{endpoint.name}: /v1/models failed: {exc}") from exc


def _key_refused(endpoint: Endpoint, status: int) -> str:
    """The admin's explanation of a 401/403: which variable holds the key, and whether it is set."""
    import os

    if not endpoint.api_key_env:
        return f"{endpoint.name}: the server requires an API key (HTTP {status}); name its variable in 'API key env'"
    if not os.environ.get(endpoint.api_key_env):
        return f"{endpoint.name}: the server requires an API key (HTTP {status}) and {endpoint.api_key_env} is not set"
    return f"{endpoint.name}: the server rejected the API key in {endpoint.api_key_env} (HTTP {status}); check its value"


def endpoint_check_health(endpoint: Endpoint, *, force: bool = False) -> bool:
    """Probe the endpoint and store the result (see :func:`endpoint_refresh`). A provider with
    ``health_every_s`` is probed at most that often unless ``force`` (the stored answer is returned in between).
    """
    if (not force and endpoint.health_every_s and endpoint.last_checked_at
            and (timezone.now() - endpoint.last_checked_at).total_seconds() < endpoint.health_every_s):
        return endpoint.healthy
    return endpoint_refresh(endpoint)["healthy"]


def endpoint_refresh(endpoint: Endpoint) -> dict:
    """Probe the endpoint; on a vLLM endpoint that answers, reconcile its adapters first; then store
    the health. So a restarted engine re-enters battles only with every active adapter loaded again
    (or deactivated). Returns ``{"healthy": bool, "adapters": report-or-None}``."""
    error = _probe(endpoint)
    report = None
    if not error and endpoint.supports_lora():
        try:
            entries = endpoint_list_models(endpoint)
        except EngineError:
            entries = None  # adapters_reconcile asks again and reports the engine down
        else:
            context_lengths_store(endpoint, entries)  # what the pre-battle fit check reads (arena.battle.context_fit)
        report = adapters_reconcile(endpoint, entries=entries)
        error = report["engine_down"]
    Endpoint.objects.filter(pk=endpoint.pk).update(
        healthy=not error, last_error=error[:2000], last_checked_at=timezone.now()
    )
    endpoint.healthy, endpoint.last_error = not error, error
    if error:
        logger.warning("endpoint %s unhealthy: %s", endpoint.name, error)
    return {"healthy": not error, "adapters": report}


def _probe(endpoint: Endpoint) -> str:
    """"" when the endpoint answers; else what went wrong. vLLM and TGI have /health (plus /v1/models
    when a key is configured, to check it); other providers answer /v1/models."""
    error = ""
    try:
        if endpoint.kind in (Endpoint.Kind.VLLM, Endpoint.Kind.TGI):
            health_url = f"{endpoint.root_url()}/health"
            response = httpx.get(health_url, headers=endpoint.auth_headers(health_url),
                                 timeout=settings.ARENA_HEALTH_TIMEOUT_S)
            if response.status_code in (401, 403):
                error = _key_refused(endpoint, response.status_code)
            elif response.status_code != 200:
                error = f"/health answered {response.status_code}"
            elif endpoint.api_key_env:
                endpoint_list_models(endpoint)  # /health is open: check the key where the API needs it
        elif rules_for(endpoint.preset).health == "chat":
            error = _probe_chat_key(endpoint)
        else:
            endpoint_list_models(endpoint)
    except httpx.HTTPError as exc:
        error = f"/health failed: {exc.__class__.__name__}: {exc}"
    except EngineError as exc:
        error = str(exc)
    return error


def _probe_chat_key(endpoint: Endpoint) -> str:
    """For providers without a model list: an empty chat request, which the API refuses as invalid
    (400/422) once it has accepted the key, and with 401/403 when it has not. Nothing is generated
    or billed. "" when the key was accepted."""
    url = f"{endpoint.base_url.rstrip('/')}/chat/completions"
    try:
        response = httpx.post(url, json={"model": "", "messages": []}, headers=endpoint.auth_headers(url),
                              timeout=settings.ARENA_HEALTH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"{endpoint.name}: /chat/completions failed: {exc.__class__.__name__}: {exc}"
    if response.status_code in (401, 403):
        return _key_refused(endpoint, response.status_code)
    if response.status_code in (400, 422):
        return ""
    return f"{endpoint.name}: /chat/completions answered {response.status_code} to the key check"


def endpoint_register_models(endpoint: Endpoint, *, defaults: dict | None = None) -> list[ServedModel]:
    """Create a base ServedModel for every base model the endpoint reports that we don't know yet.

    LoRA adapters (entries with a ``parent``) are registered by training when it loads them. Ids
    lose the prefix the provider's list adds (Gemini's ``models/``), so they match the preset's.
    A provider without a model list (its rules probe by chat) raises EngineError saying so.
    """
    rules = rules_for(endpoint.preset)
    if rules.health == "chat":
        raise EngineError(f"{endpoint.name}: the arena reads no model list from {rules.name}; the preset "
                          "created its models, add others by hand (Served models > Add)")
    created = []
    for entry in endpoint_list_models(endpoint):
        model_id = entry.get("id")
        if not model_id or entry.get("parent"):
            continue
        model_id = model_id.removeprefix(rules.model_id_prefix) if rules.model_id_prefix else model_id
        if ServedModel.objects.filter(endpoint=endpoint, engine_model_id=model_id).exists():
            continue
        public_name = model_id if not ServedModel.objects.filter(public_name=model_id).exists() else (
            f"{model_id}@{endpoint.name}"
        )
        created.append(
            ServedModel.objects.create(
                endpoint=endpoint, engine_model_id=model_id, public_name=public_name, **(defaults or {})
            )
        )
    return created


def adapter_load(endpoint: Endpoint, *, name: str, path: str) -> None:
    """Load a LoRA adapter into a running vLLM server and confirm /v1/models lists it.

    Names must be immutable and versioned: vLLM keys its prefix cache by name,
    so a reload in place could serve stale cached prefixes.
    """
    if not endpoint.supports_lora():
        raise EngineError(f"{endpoint.name} is not a vLLM endpoint and cannot load adapters")
    try:
        url = f"{endpoint.root_url()}/v1/load_lora_adapter"
        response = httpx.post(url, json={"lora_name": name, "lora_path": path},
                              headers=endpoint.auth_headers(url), timeout=120.0)
    except httpx.HTTPError as exc:
        raise EngineUnreachable(f"{endpoint.name}: load_lora_adapter failed: {exc}") from exc
    if response.status_code in _UNAVAILABLE_STATUS:
        raise EngineUnreachable(f"{endpoint.name}: load_lora_adapter answered {response.status_code}")
    already_loaded = response.status_code == 400 and "already been loaded" in response.text
    if response.status_code != 200 and not already_loaded:
        raise EngineError(f"{endpoint.name}: load_lora_adapter answered {response.status_code}: {response.text[:500]}")
    ids = {entry.get("id") for entry in endpoint_list_models(endpoint, timeout=30.0)}
    if name not in ids:
        raise EngineError(f"{endpoint.name}: adapter {name} was accepted but is not in /v1/models")


def adapter_unload(endpoint: Endpoint, *, name: str) -> None:
    try:
        url = f"{endpoint.root_url()}/v1/unload_lora_adapter"
        response = httpx.post(url, json={"lora_name": name}, headers=endpoint.auth_headers(url), timeout=30.0)
    except httpx.HTTPError as exc:
        raise EngineError(f"{endpoint.name}: unload_lora_adapter failed: {exc}") from exc
    if response.status_code not in (200, 404):
        raise EngineError(f"{endpoint.name}: unload_lora_adapter answered {response.status_code}: {response.text[:500]}")


def served_model_register_adapter(*, parent: ServedModel, name: str, adapter_path: str, description: str = "") -> ServedModel:
    """Load an adapter into the parent's endpoint and create its served model. Raises EngineError, creating nothing.

    Whether (and how often) it battles is the arena's to decide: see ``arena.pairing.contestants.contestant_enter``.
    The HTTP call (up to minutes) runs outside any transaction: in the embedded mode (SQLite) a
    transaction holds the database's one write lock, and every battle would wait on it.
    """
    adapter_load(parent.endpoint, name=name, path=adapter_path)
    try:
        return ServedModel.objects.create(
            adapter_sha256=adapter_dir_sha256(adapter_path), public_name=name,
            endpoint=parent.endpoint,
            engine_model_id=name,
            kind=ServedModel.Kind.LORA,
            parent=parent,
            adapter_path=adapter_path,
            organization=parent.organization,
            license=parent.license,
            description=description,
            generation=dict(parent.generation or {}),
        )
    except Exception:
        try:
            adapter_unload(parent.endpoint, name=name)
        except EngineError:
            logger.warning("adapter %s stays loaded on %s although its served model was not created", name,
                           parent.endpoint)
        raise


#: Managed engines of full fine-tunes listen on ports from ARENA_ENGINE_PORT + this offset (the
#: local models of `make run` take the first ports), up to MANAGED_PORT_SPAN of them.
MANAGED_PORT_OFFSET = 16
MANAGED_PORT_SPAN = 1000


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def engine_port_choose(host: str = "127.0.0.1") -> int:
    """A port after ``ARENA_ENGINE_PORT`` that no endpoint row uses and that is free on this host.
    Raises EngineError when the range is exhausted."""
    used = {origin_of(url)[2] for url in Endpoint.objects.values_list("base_url", flat=True)}
    first = settings.ARENA_ENGINE_PORT + MANAGED_PORT_OFFSET
    for port in range(first, min(first + MANAGED_PORT_SPAN, 65536)):
        if port not in used and port_is_free(port, host):
            return port
    raise EngineError(f"no free engine port in {first}-{first + MANAGED_PORT_SPAN - 1} (ARENA_ENGINE_PORT)")


def served_model_register_full(*, parent: ServedModel, name: str, model_dir: str, description: str = "") -> ServedModel:
    """A fully fine-tuned model: a new *managed* vLLM endpoint for it (its engine is started by the
    engine supervisor, ``serving.supervisor``; unhealthy until it answers) and its served model (kind
    full, child of ``parent``, the base it was trained from). The parent endpoint's chat template is
    kept (the saved tokenizer has the base's own). Raises EngineError when no port is left."""
    endpoint_name = "full-" + slugify(name)[-45:].lstrip("-")  # the tail holds what makes names unique (job id)
    sha256 = adapter_dir_sha256(model_dir)  # seconds for a large model: outside the transaction
    with transaction.atomic():
        endpoint = Endpoint.objects.create(
            name=endpoint_name, kind=Endpoint.Kind.VLLM, managed=True, model_dir=model_dir, served_name=name,
            base_url=f"http://127.0.0.1:{engine_port_choose()}/v1", chat_template=parent.endpoint.chat_template,
            healthy=False, last_error="waiting for its engine to start",
        )
        return ServedModel.objects.create(
            public_name=name, endpoint=endpoint, engine_model_id=name, kind=ServedModel.Kind.FULL, parent=parent,
            adapter_sha256=sha256, organization=parent.organization, license=parent.license,
            description=description, generation=dict(parent.generation or {}),
        )


def adapters_reconcile(endpoint: Endpoint, *, entries: list[dict] | None = None) -> dict:
    """Bring the engine's adapters in line with the active LoRA contestants; three cases, never confused:

    * engine down (no answer, 502/503/504): change nothing, retry at the next check; ``engine_down``
      says why, and :func:`endpoint_refresh` keeps the endpoint out of battles meanwhile;
    * adapter gone (a restarted vLLM forgot it): load it again (``reloaded``);
    * adapter broken (vLLM refuses it: files deleted or unreadable): deactivate the contestant and
      say why in its ``last_error``, shown in the admin (``deactivated``).
    """
    report: dict = {"reloaded": [], "deactivated": [], "present": [], "engine_down": ""}
    try:
        loaded = {entry.get("id") for entry in (endpoint_list_models(endpoint) if entries is None else entries)}
    except EngineError as exc:
        report["engine_down"] = str(exc)
        return report
    for model in ServedModel.objects.filter(endpoint=endpoint, kind=ServedModel.Kind.LORA, active=True):
        if model.engine_model_id in loaded:
            report["present"].append(model.public_name)
            continue
        try:
            adapter_load(endpoint, name=model.engine_model_id, path=model.adapter_path)
        except EngineUnreachable as exc:
            report["engine_down"] = str(exc)
            return report
        except EngineError as exc:
            logger.error("deactivating %s: %s", model.public_name, exc)
            ServedModel.objects.filter(pk=model.pk).update(
                active=False, last_error=f"{timezone.now():%Y-%m-%d %H:%M} taken out of battles: vLLM refused "
                                         f"its adapter: {exc}"[:2000])
            report["deactivated"].append(model.public_name)
        else:
            report["reloaded"].append(model.public_name)
    return report


def local_models_register() -> list[ServedModel]:
    """Create (or refresh) the endpoint and served-model rows of the models `make run` serves locally."""
    models = []
    for local in enabled_local_models():
        spec = local.engine_spec()
        endpoint, _ = Endpoint.objects.update_or_create(
            name=local.endpoint_name,
            defaults={
                "kind": Endpoint.Kind.VLLM, "base_url": f"{spec.root_url}/v1", "managed": True,
                "model_dir": spec.model_dir, "served_name": local.served_name,
                "chat_template": spec.chat_template or "",
            },
        )
        model, created = ServedModel.objects.get_or_create(
            endpoint=endpoint, engine_model_id=local.served_name,
            defaults={
                "public_name": local.served_name, "organization": local.organization, "license": local.license,
                "description": local.description, "generation": local.generation,
            },
        )
        models.append(model)
    return models


ENDPOINT_ENV_FIELDS = {"name", "base_url", "kind", "model_dir", "api_key_env", "organization", "license"}


def endpoints_from_settings() -> list[Endpoint]:
    """Create or update the endpoints declared in ``SERVING_ENDPOINTS`` (env ARENA_ENDPOINTS), validated like
    the admin's (key prefix included). Raises EngineError naming the bad entry; the admin adds more by hand."""
    endpoints = []
    for entry in settings.ARENA_ENDPOINTS:
        unknown = set(entry) - ENDPOINT_ENV_FIELDS
        if unknown or not entry.get("name") or not entry.get("base_url"):
            raise EngineError(f"ARENA_ENDPOINTS entry {entry!r}: needs name and base_url; allowed keys are "
                              f"{', '.join(sorted(ENDPOINT_ENV_FIELDS))}")
        fields = {key: entry.get(key, "") for key in ("base_url", "model_dir", "api_key_env")}
        fields["kind"] = entry.get("kind", Endpoint.Kind.VLLM)
        endpoint = Endpoint.objects.filter(name=entry["name"]).first() or Endpoint(name=entry["name"])
        for key, value in fields.items():
            setattr(endpoint, key, value)
        try:
            # Django's URLValidator wants a dotted host name; compose and Kubernetes service names
            # ("http://vllm:8000/v1") have none, so the URL is checked here instead.
            if urlsplit(endpoint.base_url).scheme not in ("http", "https") or not urlsplit(endpoint.base_url).hostname:
                raise ValidationError({"base_url": ["must be an http(s) URL with a host"]})
            endpoint.full_clean(exclude=["base_url"])
        except ValidationError as exc:
            raise EngineError(f"ARENA_ENDPOINTS entry {entry['name']!r}: {exc.message_dict}") from None
        endpoint.save()
        endpoints.append(endpoint)
    return endpoints


def endpoint_register_declared_models(endpoint: Endpoint) -> list[ServedModel]:
    """Register the models of an endpoint declared in ARENA_ENDPOINTS once it answers (none before)."""
    entry = next((e for e in settings.ARENA_ENDPOINTS if e.get("name") == endpoint.name), None)
    if entry is None or endpoint.models.exists():
        return []
    defaults = {key: entry[key] for key in ("organization", "license") if entry.get(key)}
    return endpoint_register_models(endpoint, defaults=defaults)
