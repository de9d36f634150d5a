import uuid

from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from arena import selectors
from arena.models import Battle


@require_GET
def battle_page(request):
    # An anonymous, stable id for this browser's votes; the session is the only place it lives.
    if not request.session.get("arena_rater"):
        request.session["arena_rater"] = uuid.uuid4().hex
    return render(
        request,
        "arena/battle.html",
        {
            "suggestions": selectors.prompt_suggestions(3),
            "max_prompt_chars": settings.ARENA_MAX_PROMPT_CHARS,
            "max_turns": settings.ARENA_MAX_TURNS,
        },
    )


@require_GET
def battle_detail_api(request, battle_id: uuid.UUID):
    try:
        battle = Battle.objects.select_related("model_a", "model_b", "vote").get(public_id=battle_id)
    except Battle.DoesNotExist:
        raise Http404("There is no such battle.") from None
    return JsonResponse(selectors.battle_public_state(battle))


@require_GET
def suggestions_api(request):
    return JsonResponse({"prompts": selectors.prompt_suggestions(3)})
