from django.contrib import admin
from django.urls import path

from arena import audit
from arena.models import Battle, RaterDecision, RatingSnapshot, Response, Turn, Vote


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
    list_display = ["battle", "winner", "exclusion", "identity_leak", "side_error", "rater_id", "created_at"]
    list_filter = ["winner", "exclusion", "identity_leak", "side_error"]
    search_fields = ["rater_id", "ip_hash"]
    readonly_fields = [f.name for f in Vote._meta.fields]

    def get_urls(self):
        view = self.admin_site.admin_view(lambda request: audit.audit_view(request, self.admin_site))
        return [path("audit/", view, name="arena_vote_audit"), *super().get_urls()]


@admin.register(RaterDecision)
class RaterDecisionAdmin(admin.ModelAdmin):
    """The log of staff decisions; new ones are made on the Vote audit page (they must be applied)."""

    list_display = ["created_at", "made_by", "rater_key", "action", "note"]
    readonly_fields = [f.name for f in RaterDecision._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RatingSnapshot)
class RatingSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "last_vote_id", "compute_ms"]
    readonly_fields = ["created_at", "last_vote_id", "compute_ms", "data"]
