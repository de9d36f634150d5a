from celery import shared_task

from serving import services
from serving.models import Endpoint


@shared_task(ignore_result=True)
def endpoints_check_health() -> dict:
    """Probe every endpoint; a vLLM endpoint re-enters battles only once its adapters are re-loaded."""
    report = {}
    for endpoint in Endpoint.objects.all():
        report[endpoint.name] = services.endpoint_refresh(endpoint)
    return report
