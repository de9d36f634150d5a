import os

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.html import format_html

from serving import adapters, presets, services
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel, key_env_allowed


class EndpointForm(forms.ModelForm):
    """The endpoint form, with a preset that fills the fields left blank (serving/presets.py)."""

    preset = forms.ChoiceField(required=False, choices=[("", "— none —"), *presets.preset_choices()],
                               help_text="Fills base URL, key variable, kind and request terms where left blank; "
                                         "creates the preset's models, inactive until you set prices.")

    base_url = forms.URLField(required=False, assume_scheme="https", help_text=Endpoint.base_url.field.help_text)

    class Meta:
        model = Endpoint
        fields = "__all__"

    def clean(self):
        data = super().clean()
        if data.get("preset") and self.instance.pk is None:
            # Fields the admin left untouched or empty take the preset's values.
            untouched = {name for name, value in data.items() if name not in self.changed_data or value in ("", None)}
            defaults = presets.PRESETS[data["preset"]].endpoint_defaults()
            data.update({name: value for name, value in defaults.items() if name in untouched})
        url = data.get("base_url") or ""
        if not url:
            self.add_error("base_url", "Give the base URL (up to /v1), or choose a preset.")
        elif "<" in url:
            self.add_error("base_url", f"Fill in the part in <...> of {url}.")
        else:
            try:
                URLValidator()(url)
            except ValidationError as exc:
                self.add_error("base_url", exc)
        return data


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Keys are never shown: only the name of the variable holding one, and whether it is set."""

    form = EndpointForm
    list_display = ["name", "kind", "preset", "base_url", "healthy", "last_checked_at", "metrics_link"]
    list_filter = ["kind", "healthy", "managed"]
    readonly_fields = ["healthy", "last_checked_at", "last_error", "created_at", "api_key_status", "metrics_link"]
    actions = ["check_health", "register_models", "reconcile_adapters"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change:
            return
        created = presets.preset_create_models(obj)
        if created:
            self.message_user(request, f"{obj}: created {', '.join(m.public_name for m in created)} (inactive: "
                                       "set their prices, then activate them)")
            for model in created:
                self.message_user(request, f"{model.public_name}: {presets.preset_model(model).price_note()}")
        self.check_health(request, [obj])

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "api_key_env" in form.base_fields:
            prefix = settings.ARENA_ENDPOINT_KEY_PREFIX
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
            ok = services.endpoint_check_health(endpoint, force=True)
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

    @admin.action(description="Re-load forgotten LoRA adapters, verify them, unload paused ones")
    def reconcile_adapters(self, request, queryset):
        for endpoint in queryset:
            report = services.adapters_reconcile(endpoint)
            verified = adapters.adapters_verify(endpoint)
            unloaded = adapters.adapters_unload_inactive(endpoint)
            self.message_user(request, f"{endpoint}: {report}; verified {verified}; unloaded {unloaded}",
                              messages.WARNING if verified["failed"] else messages.SUCCESS)


@admin.register(ServedModel)
class ServedModelAdmin(admin.ModelAdmin):
    list_display = ["public_name", "endpoint", "engine_model_id", "kind", "parent", "active"]
    list_filter = ["active", "kind", "endpoint"]
    list_editable = ["active"]
    search_fields = ["public_name", "engine_model_id", "organization"]
    readonly_fields = ["created_at", "last_error", "preset_price"]

    @admin.display(description="Preset price")
    def preset_price(self, obj):
        entry = presets.preset_model(obj) if obj.pk else None
        return entry.price_note() if entry else "-"
