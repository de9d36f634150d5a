from django.contrib import admin, messages

from serving import services
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "base_url", "managed", "healthy", "last_checked_at"]
    list_filter = ["kind", "healthy", "managed"]
    readonly_fields = ["healthy", "last_checked_at", "last_error", "created_at"]
    actions = ["check_health", "register_models", "reconcile_adapters"]

    @admin.action(description="Check health now")
    def check_health(self, request, queryset):
        for endpoint in queryset:
            ok = services.endpoint_check_health(endpoint)
            self.message_user(request, f"{endpoint}: {'healthy' if ok else endpoint.last_error}",
                              messages.SUCCESS if ok else messages.WARNING)

    @admin.action(description="Register the models it serves")
    def register_models(self, request, queryset):
        for endpoint in queryset:
            try:
                created = services.endpoint_register_models(endpoint)
                self.message_user(request, f"{endpoint}: {len(created)} new model(s)")
            except EngineError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Re-load forgotten LoRA adapters")
    def reconcile_adapters(self, request, queryset):
        for endpoint in queryset:
            self.message_user(request, f"{endpoint}: {services.adapters_reconcile(endpoint)}")


@admin.register(ServedModel)
class ServedModelAdmin(admin.ModelAdmin):
    list_display = ["public_name", "endpoint", "engine_model_id", "kind", "parent", "active"]
    list_filter = ["active", "kind", "endpoint"]
    list_editable = ["active"]
    search_fields = ["public_name", "engine_model_id", "organization"]
    readonly_fields = ["created_at", "last_error"]
