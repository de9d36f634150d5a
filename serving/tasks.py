from celery import shared_task

from serving import adapters, services
from serving.models import Endpoint


@shared_task(ignore_result=True)
def endpoints_check_health() -> dict:
    """Probe every endpoint; on healthy vLLM endpoints re-load forgotten adapters, verify them, unload paused ones."""
    report = {}
    for endpoint in Endpoint.objects.all():
        healthy = services.endpoint_check_health(endpoint)
        report[endpoint.name] = {"healthy": healthy}
        if healthy and endpoint.supports_lora():
            report[endpoint.name]["adapters"] = services.adapters_reconcile(endpoint)
            report[endpoint.name]["verified"] = adapters.adapters_verify(endpoint)
            report[endpoint.name]["unloaded"] = adapters.adapters_unload_inactive(endpoint)
    return report
