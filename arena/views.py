import csv
import re
import uuid

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from arena import model_card, selectors
from arena.leaderboard import presentation as leaderboard_presentation
from arena.leaderboard import refresh as leaderboard_refresh
from arena.leaderboard import selectors as leaderboard_selectors
from arena.leaderboard.plots import rating_history_chart
from arena.models import Battle
from serving.models import ServedModel


@require_GET
def battle_page(request):
    if settings.ARENA_REQUIRE_LOGIN and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("login"))
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


@require_GET
def model_page(request, public_name: str):
    """One contestant's page: rating history, lineage, record per opponent, example battles."""
    try:
        card = model_card.model_card(public_name)
    except ServedModel.DoesNotExist:
        raise Http404("There is no model of that name.") from None
    return render(request, "arena/model.html", {**card, "history_chart": rating_history_chart(card["history"])})


class BadQuery(ValueError):
    pass


def _board_query(request) -> tuple[str, bool]:
    """``?category=KEY&style=0|1`` of the leaderboard views; raises BadQuery on a bad style value."""
    category = request.GET.get("category") or "overall"
    raw = (request.GET.get("style") or "0").lower()
    if raw not in {"0", "1", "true", "false", "on", "off", "yes", "no"}:
        raise BadQuery(f"style must be 0 or 1, not {raw[:20]!r}.")
    return category, raw in {"1", "true", "on", "yes"}


@require_GET
def leaderboard_page(request):
    snapshot = leaderboard_selectors.snapshot_latest()
    try:
        category, style = _board_query(request)
        context = leaderboard_presentation.page_context(snapshot, category, style)
    except (BadQuery, leaderboard_selectors.UnknownCategory) as exc:
        return render(request, "arena/leaderboard.html", {"error": str(exc)}, status=400)
    if snapshot is None and context["pending"]:
        leaderboard_refresh.ratings_refresh_soon()  # coalesced: many readers of an empty board queue one refit
    return render(request, "arena/leaderboard.html", context)


@require_GET
def leaderboard_api(request):
    snapshot = leaderboard_selectors.snapshot_latest()
    try:
        category, style = _board_query(request)
        if snapshot is None:
            return JsonResponse(leaderboard_presentation.no_snapshot_payload())
        return JsonResponse(leaderboard_presentation.board_payload(snapshot, category, style))
    except (BadQuery, leaderboard_selectors.UnknownCategory) as exc:
        return JsonResponse({"error": str(exc)}, status=400)


def _csv_cell(value) -> object:
    # A text cell starting like a formula would be run by a spreadsheet (model names come from files too).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@require_GET
def leaderboard_csv(request):
    """The board as CSV; header only before the first snapshot or below the category's threshold."""
    snapshot = leaderboard_selectors.snapshot_latest()
    try:
        category, style = _board_query(request)
        rows = leaderboard_presentation.board_payload(snapshot, category, style)["rows"] if snapshot else []
    except (BadQuery, leaderboard_selectors.UnknownCategory) as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", category)[:40] + ("-style-control" if style else "")
    response["Content-Disposition"] = f'attachment; filename="leaderboard-{name}.csv"'
    # flips_votes: the votes whose removal would swap the row with flips_with, the next one below it.
    columns = ["rank", "model", "rating", "ci_low", "ci_high", "battles", "elo", "organization", "license", "group",
               "provisional", "flips_with", "flips_votes"]
    writer = csv.writer(response)
    writer.writerow(columns)
    for row in rows:  # snapshots from before a column: "provisional" False, the flip counts empty
        writer.writerow([_csv_cell(row.get(c, False if c == "provisional" else None)) for c in columns])
    return response
