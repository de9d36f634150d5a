"""The periodic health round of every endpoint (run by ``serving.tasks.endpoints_check_health_task``).

For each endpoint: probe it and, on a vLLM endpoint, reconcile its adapters before it is marked
healthy (``services.endpoint_refresh``); then, once healthy, register the models declared for it in
``ARENA_ENDPOINTS`` (once) and, on an engine with LoRA, verify its adapters by hash and unload the
paused ones (``serving.adapters``). Returns a report per endpoint name.
"""

from __future__ import annotations

from serving import adapters, services
from serving.models import Endpoint


def endpoints_refresh_all() -> dict:
    report = {}
    for endpoint in Endpoint.objects.all():
        report[endpoint.name] = services.endpoint_refresh(endpoint)
        if not report[endpoint.name]["healthy"]:
            continue
        try:
            report[endpoint.name]["registered"] = [
                m.public_name for m in services.endpoint_register_declared_models(endpoint)]
        except services.EngineError as exc:
            report[endpoint.name]["registered"] = str(exc)
        if endpoint.supports_lora():
            report[endpoint.name]["verified"] = adapters.adapters_verify(endpoint)
            report[endpoint.name]["unloaded"] = adapters.adapters_unload_inactive(endpoint)
    return report
