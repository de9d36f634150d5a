"""Repeat and vary a run (the fine-tune studio), kept apart from ``training.admin``'s model admins:

* ``JobRepeatMixin`` (the job pages): "Launch again with these settings" (the launch form filled
  from a job: ``?from_job=N``), the job's ``launch_training`` command, and "Save these settings as";
* ``SavedConfigurationAdmin``: the named configurations the launch form offers beside the presets.

Each writes through ``training.repeat``; a refusal is shown on the page with what was typed kept.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse

from training import repeat
from training.errors import TrainingError
from training.forms import SavedConfigurationForm
from training.models import Job, SavedConfiguration


class JobRepeatMixin:
    def get_changeform_initial_data(self, request):
        """``?from_job=N``: the launch form filled with that job's settings ("Launch again")."""
        job_id = request.GET.get("from_job", "")
        job = Job.objects.filter(pk=int(job_id)).first() if job_id.isdigit() else None
        if job is None:
            return super().get_changeform_initial_data(request)
        return repeat.job_initial(job)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = get_object_or_404(Job, pk=object_id)
        context = {**(extra_context or {}), "repeat_command": repeat.job_command(job),
                   "launch_again_url": f"{reverse('admin:training_job_add')}?from_job={job.pk}"}
        if request.method == "POST" and "_save_configuration" in request.POST:
            if not request.user.has_perm("training.add_savedconfiguration"):
                raise PermissionDenied
            name = request.POST.get("configuration_name", "")
            try:
                saved = repeat.saved_configuration_from_job(job, name=name, created_by=request.user)
            except TrainingError as exc:
                context.update(save_error=exc, save_name=name)
                request.method = "GET"  # the page again, read-only, with the refusal and the typed name
            else:
                self.message_user(request, f"Saved as {saved.name!r}: the launch form offers it beside the presets.")
                return HttpResponseRedirect(reverse("admin:training_job_change", args=[job.pk]))
        return super().change_view(request, object_id, form_url, context)


@admin.register(SavedConfiguration)
class SavedConfigurationAdmin(admin.ModelAdmin):
    form = SavedConfigurationForm
    list_display = ["name", "method", "preset", "settings", "created_by", "created_at"]
    list_filter = ["method"]
    search_fields = ["name", "description"]

    @admin.display(description="Settings")
    def settings(self, saved):
        return ", ".join(saved.overrides) or "—"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
