from django.contrib import admin

from arena.models import Battle, Contestant, RatingSnapshot, Response, Turn, Vote


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
    readonly_fields = [f.name for f in Battle._meta.fields]
    inlines = [TurnInline]

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
