from celery import shared_task

from serving import adapters, services
from serving.models import Endpoint


@shared_task(ignore_result=True)
def endpoints_check_health() -> dict:
    """Probe every endpoint; a vLLM endpoint re-enters battles only once its adapters are re-loaded
    (``services.endpoint_refresh``); register the models of healthy endpoints declared in ARENA_ENDPOINTS
    (once); verify adapters by hash and unload paused ones."""
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
