from django.contrib import admin
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from arena.battle.costs import battle_costs, model_usage
from arena.models import Battle, BoardChange, Contestant, RaterDecision, RatingSnapshot, Response, Turn, Vote
from arena.pairing.contestants import contestants_pairing_state
from arena.pairing.retirement import RetirementError, model_reinstate, model_retire, votes_reinclude
from arena.quality import audit
from arena.serving_stats import model_serving_stats
from serving.admin import ServedModelAdmin
from serving.models import ServedModel


def _with_reason(request, queryset, *, action: str, question: str, submit: str, apply) -> TemplateResponse | None:
    """An admin action that asks for a reason first (it goes to the public change log), then runs
    ``apply(queryset, actor=, reason=)`` all or nothing; a refusal is shown on the form."""
    reason, error = request.POST.get("reason", ""), None
    if request.POST.get("apply"):
        try:
            with transaction.atomic():
                apply(queryset, actor=request.user.get_username(), reason=reason)
        except RetirementError as exc:
            error = str(exc)
        else:
            return None
    return TemplateResponse(request, "admin/arena/reason_form.html", {
        "title": submit, "question": question, "items": list(queryset[:50]), "count": queryset.count(),
        "selected": list(queryset.values_list("pk", flat=True)), "action": action, "submit": submit,
        "reason": reason, "error": error,
    })


@admin.register(Contestant)
class ContestantAdmin(admin.ModelAdmin):
    list_display = ["served_model", "sampling_weight", "boost_weight", "boost_votes_left", "retired_at"]
    list_editable = ["sampling_weight"]
    list_filter = [("retired_at", admin.EmptyFieldListFilter)]
    search_fields = ["served_model__public_name"]
    readonly_fields = ["retired_at", "retired_by", "retired_reason"]
    actions = ["retire", "reinstate"]

    @admin.action(description="Retire the selected models (asks why)")
    def retire(self, request, queryset):
        return _with_reason(request, queryset, action="retire", submit="Retire",
                            question="Retire these models? They stop battling and move to the board's Retired section.",
                            apply=lambda qs, **kw: [model_retire(c.served_model, **kw) for c in qs])

    @admin.action(description="Reinstate the selected retired models (asks why)")
    def reinstate(self, request, queryset):
        return _with_reason(request, queryset, action="reinstate", submit="Reinstate",
                            question="Bring these models back into battles and the main board?",
                            apply=lambda qs, **kw: [model_reinstate(c.served_model, **kw) for c in qs])


@admin.register(BoardChange)
class BoardChangeAdmin(admin.ModelAdmin):
    """The change log is written by the retirement services only: read here, never edited."""

    list_display = ["created_at", "kind", "model_name", "votes", "actor"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in BoardChange._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0
    fields = ["index", "prompt", "created_at"]
    readonly_fields = fields
    can_delete = False


def _short_battle(battle: Battle) -> str:
    return str(battle.public_id)[:8]


class RecordAdmin(admin.ModelAdmin):
    """Battles, responses and votes are records written by the arena: staff read them, never add them here."""

    def has_add_permission(self, request):
        return False


# Change lists keep to five or six narrow columns so that they fit 1280 px without scrolling.
@admin.register(Battle)
class BattleAdmin(RecordAdmin):
    list_display = ["short_id", "pair", "status", "language", "created_at"]
    list_filter = ["status", "mode", "language"]
    list_select_related = ["model_a", "model_b"]
    search_fields = ["public_id"]
    readonly_fields = [*(f.name for f in Battle._meta.fields), "cost_per_side"]
    inlines = [TurnInline]

    @admin.display(description="Cost per side (USD)")
    def cost_per_side(self, battle):
        costs = battle_costs(battle)
        return " · ".join(f"{side.upper()}: {'–' if cost is None else cost}" for side, cost in costs.items())

    @admin.display(description="Battle", ordering="public_id")
    def short_id(self, battle):
        return _short_battle(battle)

    @admin.display(description="Model A vs model B")
    def pair(self, battle):
        return f"{battle.model_a} vs {battle.model_b}"


@admin.register(Response)
class ResponseAdmin(RecordAdmin):
    list_display = ["where", "model", "outcome", "first_token", "speed"]
    list_filter = ["state", "rater_caused", "model"]
    list_select_related = ["turn__battle", "model"]
    readonly_fields = [f.name for f in Response._meta.fields]

    @admin.display(description="Battle · turn · side")
    def where(self, response):
        return f"{_short_battle(response.turn.battle)} · {response.turn.index + 1} · {response.side.upper()}"

    @admin.display(description="State", ordering="state")
    def outcome(self, response):
        reason = f" ({response.finish_reason})" if response.finish_reason else ""
        return f"{response.get_state_display()}{reason}"

    @admin.display(description="First token", ordering="ttft_ms")
    def first_token(self, response):
        return "–" if response.ttft_ms is None else f"{response.ttft_ms:.0f} ms"

    @admin.display(description="Speed", ordering="tokens_per_s")
    def speed(self, response):
        return "–" if response.tokens_per_s is None else f"{response.tokens_per_s:.1f} tok/s"


@admin.register(Vote)
class VoteAdmin(RecordAdmin):
    list_display = ["battle", "winner", "counted", "created_at"]
    list_filter = ["winner", "exclusion", "identity_leak", "side_error"]
    search_fields = ["rater_id", "ip_hash"]
    readonly_fields = [f.name for f in Vote._meta.fields]
    actions = ["count_again"]

    @admin.display(description="Counted?")
    def counted(self, vote):
        """One column for every reason a vote is left out (the filters on the right split them)."""
        reasons = [vote.get_exclusion_display()] if vote.exclusion else []
        reasons += ["identity leak"] * vote.identity_leak + ["a side failed"] * vote.side_error
        return "no: " + ", ".join(reasons) if reasons else "yes"

    @admin.action(description="Count the selected excluded votes again (asks why)")
    def count_again(self, request, queryset):
        # One change for the whole selection: the log records how many votes came back.
        return _with_reason(request, queryset, action="count_again", submit="Count again",
                            question="Count these votes again (clear their identity-leak and failed-side flags)?",
                            apply=votes_reinclude)

    def get_urls(self):
        view = self.admin_site.admin_view(lambda request: audit.audit_view(request, self.admin_site))
        return [path("audit/", view, name="arena_vote_audit"), *super().get_urls()]


@admin.register(RaterDecision)
class RaterDecisionAdmin(RecordAdmin):
    """The log of staff decisions; new ones are made on the Vote audit page (they must be applied)."""

    list_display = ["created_at", "made_by", "rater_key", "action", "note"]
    readonly_fields = [f.name for f in RaterDecision._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RatingSnapshot)
class RatingSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "last_vote_id", "compute_ms"]
    readonly_fields = ["created_at", "last_vote_id", "compute_ms", "data"]


# The served model's admin page, with the arena's facts about it: usage, cost, serving statistics and
# whether it sits out of pairing (arena/battle/costs.py, arena/serving_stats.py, arena/pairing/holds.py).
admin.site.unregister(ServedModel)


@admin.register(ServedModel)
class ServedModelArenaAdmin(ServedModelAdmin):
    list_display = [*ServedModelAdmin.list_display, "pairing"]
    readonly_fields = [*ServedModelAdmin.readonly_fields, "pairing", "usage_and_cost", "serving_statistics"]

    @admin.display(description="Pairing")
    def pairing(self, model):
        if not model.active or not model.endpoint.healthy:
            return "out: " + ("inactive" if not model.active else "endpoint unhealthy")
        state = contestants_pairing_state()  # over every contestant: the two-model floor depends on all
        hold = state.holds.get(model.pk)
        return f"paused: {hold}" if hold else f"ALERT: {state.kept[model.pk]}" if model.pk in state.kept else "in"

    @admin.display(description="Usage and cost")
    def usage_and_cost(self, model):
        rows = [(label, model_usage(model, days=days)) for label, days in (("Last day", 1), ("Last 30 days", 30),
                                                                             ("All time", None))]
        return _table(["", "Responses", "Prompt tokens", "Completion tokens", "Estimated", "Cost (USD)", "Votes",
                       "USD per 1,000 votes"],
                      [[label, u["responses"], u["prompt_tokens"], u["completion_tokens"], u["estimated"], u["cost"],
                        u["votes"], u["cost_per_1000_votes"]] for label, u in rows])

    @admin.display(description="Serving statistics")
    def serving_statistics(self, model):
        stats = model_serving_stats(model)
        rows = []
        for label, row in stats.items():
            row = row or {}
            rows.append([f"Last {label}", row.get("responses", 0), _fmt(row.get("ttft_ms"), "{:.0f} ms"),
                         _fmt(row.get("tokens_per_s"), "{:.1f}"), _fmt(row.get("error_rate"), "{:.1%}"),
                         _fmt(row.get("timeout_rate"), "{:.1%}"), row.get("error_raters", 0), row.get("rater_errors", 0)])
        return _table(["", "Responses", "First token (mean)", "Tokens/s (mean)", "Error rate", "Timeout rate",
                       "Raters with errors", "Errors the prompt caused (not counted)"], rows)


def _fmt(value, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def _table(head: list[str], rows: list[list]) -> str:
    cells = "".join(format_html("<th>{}</th>", h) for h in head)
    body = "".join(
        format_html("<tr>{}</tr>", format_html_join("", "<td>{}</td>", (("–" if v is None else v,) for v in row)))
        for row in rows
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", mark_safe(cells), mark_safe(body))  # noqa: S308 - escaped above
