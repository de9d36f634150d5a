import os

from django.conf import settings
from django.contrib import admin, messages
from django.utils.html import format_html

from serving import services
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel, key_env_allowed


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Keys are never shown: only the name of the variable holding one, and whether it is set."""

    list_display = ["name", "kind", "base_url", "managed", "healthy", "last_checked_at", "metrics_link"]
    list_filter = ["kind", "healthy", "managed"]
    readonly_fields = ["healthy", "last_checked_at", "last_error", "created_at", "api_key_status", "metrics_link"]
    actions = ["check_health", "register_models", "reconcile_adapters"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "api_key_env" in form.base_fields:
            prefix = settings.SERVING_KEY_ENV_PREFIX
            form.base_fields["api_key_env"].help_text = (
                f"The name of the environment variable holding the key, starting with {prefix} "
                f"(e.g. {prefix}OPENAI). The key itself is never stored or shown, and is sent only to this "
                "endpoint's own host.")
        return form

    @admin.display(description="API key")
    def api_key_status(self, obj):
        if not obj.api_key_env:
            return "none (vLLM without --api-key accepts any)"
        if not key_env_allowed(obj.api_key_env):
            return f"refused: {obj.api_key_env} is not an endpoint key variable"
        return f"{obj.api_key_env} is {'set' if os.environ.get(obj.api_key_env) else 'NOT set'} in this process"

    @admin.display(description="vLLM metrics")
    def metrics_link(self, obj):
        if obj.kind != Endpoint.Kind.VLLM:
            return "-"
        url = f"{obj.root_url()}/metrics"
        return format_html('<a href="{}" rel="noreferrer">{}</a>', url, url)

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
    readonly_fields = ["created_at"]
