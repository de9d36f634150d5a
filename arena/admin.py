from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from arena.costs import battle_costs, model_usage
from arena.models import Battle, Contestant, RatingSnapshot, Response, Turn, Vote
from arena.pairing_holds import pairing_holds
from arena.serving_stats import model_serving_stats
from serving.admin import ServedModelAdmin
from serving.models import ServedModel


@admin.register(Contestant)
class ContestantAdmin(admin.ModelAdmin):
    list_display = ["served_model", "sampling_weight", "boost_weight", "boost_votes_left"]
    list_editable = ["sampling_weight"]
    search_fields = ["served_model__public_name"]


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
    list_filter = ["state", "model"]
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
    list_display = ["battle", "winner", "identity_leak", "side_error", "created_at"]
    list_filter = ["winner", "identity_leak", "side_error"]
    readonly_fields = [f.name for f in Vote._meta.fields]


@admin.register(RatingSnapshot)
class RatingSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "last_vote_id", "compute_ms"]
    readonly_fields = ["created_at", "last_vote_id", "compute_ms", "data"]


# The served model's admin page, with the arena's facts about it: usage, cost, serving statistics and
# whether it sits out of pairing (arena/costs.py, arena/serving_stats.py, arena/pairing_holds.py).
admin.site.unregister(ServedModel)


@admin.register(ServedModel)
class ServedModelArenaAdmin(ServedModelAdmin):
    list_display = [*ServedModelAdmin.list_display, "pairing"]
    readonly_fields = [*ServedModelAdmin.readonly_fields, "pairing", "usage_and_cost", "serving_statistics"]

    @admin.display(description="Pairing")
    def pairing(self, model):
        if not model.active or not model.endpoint.healthy:
            return "out: " + ("inactive" if not model.active else "endpoint unhealthy")
        hold = pairing_holds([model]).get(model.pk)
        return f"paused: {hold}" if hold else "in"

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
                         _fmt(row.get("timeout_rate"), "{:.1%}")])
        return _table(["", "Responses", "First token (mean)", "Tokens/s (mean)", "Error rate", "Timeout rate"], rows)


def _fmt(value, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def _table(head: list[str], rows: list[list]) -> str:
    cells = "".join(format_html("<th>{}</th>", h) for h in head)
    body = "".join(
        format_html("<tr>{}</tr>", format_html_join("", "<td>{}</td>", (("–" if v is None else v,) for v in row)))
        for row in rows
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", mark_safe(cells), mark_safe(body))  # noqa: S308 - escaped above
