from celery import shared_task

from serving import services
from serving.models import Endpoint


@shared_task(ignore_result=True)
def endpoints_check_health() -> dict:
    """Probe every endpoint; register the models of healthy endpoints declared in ARENA_ENDPOINTS (once); on healthy
    vLLM endpoints re-load adapters a restart made it forget."""
    report = {}
    for endpoint in Endpoint.objects.all():
        healthy = services.endpoint_check_health(endpoint)
        report[endpoint.name] = {"healthy": healthy}
        if healthy:
            try:
                report[endpoint.name]["registered"] = [
                    m.public_name for m in services.endpoint_register_declared_models(endpoint)]
            except services.EngineError as exc:
                report[endpoint.name]["registered"] = str(exc)
        if healthy and endpoint.supports_lora():
            report[endpoint.name]["adapters"] = services.adapters_reconcile(endpoint)
    return report
