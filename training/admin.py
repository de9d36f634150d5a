from django.contrib import admin, messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from training import services
from training.forms import DatasetImportForm, JobLaunchForm
from training.models import Checkpoint, Dataset, Job
from training.plots import job_charts


def _with_user(form_class, user):
    class BoundForm(form_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, user=user, **kwargs)

    return BoundForm


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "format", "source", "row_count", "license", "created_by", "created_at"]
    list_filter = ["kind", "source"]
    search_fields = ["name", "description"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            return _with_user(DatasetImportForm, request.user)
        return super().get_form(request, obj, **kwargs)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is None:
            # No request-wide transaction for an import: a hub download or a large upload takes up to
            # minutes, and in the embedded mode (SQLite) a transaction holds the one write lock that
            # every vote needs. The import service writes its one row in a short transaction of its own.
            return self._changeform_view(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["import_from", "name", "data_format", "upload", "builtin", "server_path",
                                       "hub_id", "license", "description"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["name", "kind", "format", "source", "source_ref", "row_count", "file", "commercial_use",
                "created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()  # on add, the import service already stored it


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "method", "base_model", "dataset", "preset", "status", "progress", "created_by", "created_at"]
    list_filter = ["status", "method"]
    actions = ["cancel_jobs"]
    change_form_template = "admin/training/job/change_form.html"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            return _with_user(JobLaunchForm, request.user)
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["base_model", "method", "dataset", "preset", "overrides", "init_checkpoint"]
        # Status, progress and errors are in the live panel above the form; only fixed facts here.
        return ["base_model", "method", "dataset", "preset", "init_checkpoint", "config", "created_by", "created_at",
                "worker"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            messages.info(request, f"Job {obj.pk} queued on the training queue.")

    def has_delete_permission(self, request, obj=None):
        return False  # jobs are the record of who trained what

    @admin.display(description="Progress")
    def progress(self, job):
        return f"{job.step}/{job.total_steps}" if job.total_steps else "—"

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        for job in queryset:
            services.job_cancel(job)
        self.message_user(request, f"Cancel requested for {queryset.count()} job(s).")

    def get_urls(self):
        return [
            path("<int:job_id>/progress/", self.admin_site.admin_view(self.progress_view), name="training_job_progress"),
            path("<int:job_id>/cancel/", self.admin_site.admin_view(require_POST(self.cancel_view)),
                 name="training_job_cancel"),
            *super().get_urls(),
        ]

    def _panel(self, job: Job) -> str:
        checkpoint = getattr(job, "checkpoint", None) if job.status == Job.Status.SUCCEEDED else None
        return render_to_string("admin/training/job/progress_panel.html", {
            "job": job, "charts": job_charts(job.metrics or [], job.method), "checkpoint": checkpoint,
            "last": (job.metrics or [{}])[-1],
        })

    def progress_view(self, request, job_id: int):
        job = get_object_or_404(Job, pk=job_id)
        return JsonResponse({"status": job.status, "finished": job.is_finished(), "step": job.step,
                             "total_steps": job.total_steps, "html": self._panel(job)})

    def cancel_view(self, request, job_id: int):
        if not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:training_job_changelist"))
        job = services.job_cancel(get_object_or_404(Job, pk=job_id))
        self.message_user(request, f"Job {job.pk}: cancel requested ({job.get_status_display()}).")
        return HttpResponseRedirect(reverse("admin:training_job_change", args=[job.pk]))

    def response_add(self, request, obj, post_url_continue=None):
        # After Launch, show the job's live page rather than the list.
        return HttpResponseRedirect(reverse("admin:training_job_change", args=[obj.pk]))

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "title": "Launch a fine-tune", "launch_form": True}
        return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = get_object_or_404(Job, pk=object_id)
        extra_context = {**(extra_context or {}), "progress_panel": self._panel(job), "job": job}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["__str__", "job", "lineage_text", "contestant", "created_at"]
    readonly_fields = ["job", "adapter_path", "base_model", "parent", "final_metrics", "served_model", "created_at",
                       "lineage_text", "contestant"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Lineage")
    def lineage_text(self, checkpoint):
        return " → ".join(checkpoint.lineage())

    @admin.display(description="In the arena")
    def contestant(self, checkpoint):
        model = checkpoint.served_model
        if model is None:
            return "not served"
        votes = model.battles_as_a.filter(vote__isnull=False).count() + model.battles_as_b.filter(vote__isnull=False).count()
        if not votes:
            return f"{model.public_name} (no votes yet)"
        return format_html('<a href="/leaderboard/#model-{}">{} ({} votes)</a>', model.public_name, model.public_name, votes)
