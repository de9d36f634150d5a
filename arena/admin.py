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


@admin.register(Battle)
class BattleAdmin(admin.ModelAdmin):
    list_display = ["public_id", "model_a", "model_b", "status", "mode", "language", "created_at"]
    list_filter = ["status", "mode", "language"]
    readonly_fields = [f.name for f in Battle._meta.fields]
    inlines = [TurnInline]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["turn", "side", "model", "state", "finish_reason", "ttft_ms", "tokens_per_s"]
    list_filter = ["state", "model"]
    readonly_fields = [f.name for f in Response._meta.fields]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["battle", "winner", "identity_leak", "side_error", "created_at"]
    list_filter = ["winner", "identity_leak", "side_error"]
    readonly_fields = [f.name for f in Vote._meta.fields]


@admin.register(RatingSnapshot)
class RatingSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "last_vote_id", "compute_ms"]
    readonly_fields = ["created_at", "last_vote_id", "compute_ms", "data"]
