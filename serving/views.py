from django.db import connection
from django.http import JsonResponse

from serving.models import ServedModel


def healthz(request):
    """Liveness of the web process and its database, plus how many models can battle right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True, "battle_ready_models": ServedModel.objects.battle_ready().count()})
