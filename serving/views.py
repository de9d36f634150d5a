from django.db import connection
from django.http import JsonResponse

from serving.models import ServedModel


def healthz(request):
    """Liveness of the web process and its database, plus how many served models are healthy right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True, "healthy_models": ServedModel.objects.healthy().count()})
