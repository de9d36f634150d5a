from celery import shared_task

from serving import adapters, services
from serving.models import Endpoint


@shared_task(ignore_result=True)
def endpoints_check_health() -> dict:
    """Probe every endpoint; a vLLM endpoint re-enters battles only once its adapters are re-loaded
    (``services.endpoint_refresh``); then its adapters are verified by hash and paused ones unloaded."""
    report = {}
    for endpoint in Endpoint.objects.all():
        report[endpoint.name] = services.endpoint_refresh(endpoint)
        if report[endpoint.name]["healthy"] and endpoint.supports_lora():
            report[endpoint.name]["verified"] = adapters.adapters_verify(endpoint)
            report[endpoint.name]["unloaded"] = adapters.adapters_unload_inactive(endpoint)
    return report
