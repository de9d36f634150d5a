"""The training admin: import datasets, launch, watch and cancel jobs, see checkpoints. The dataset
preview is ``training.admin_preview``'s; "launch again", the job's command and saved configurations
are ``training.admin_repeat``'s.

Its add pages write through the services (``dataset_import`` & co., ``job_launch``): the form only
validates, and a TrainingError is shown on the form with the user's input kept.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from training import services
from training.admin_preview import DatasetPreviewMixin
from training.admin_repeat import JobRepeatMixin
from training.admin_studio import chat_urls, export_checkpoints, export_jobs
from training.forms import DatasetImportForm, JobLaunchForm
from training.gate_agreement import gate_agreement
from training.models import Checkpoint, Dataset, Job
from training.plots import compare_chart, job_charts
from training.scorers import accuracy_text, scorer_score_pairs


class _AddThroughService:
    """A ModelAdmin whose add page's form only validates; ``create(request, form)`` writes through
    a service. The GET page and every change page are the admin's own."""

    add_form: type  # the validating form of the add page

    def create(self, request, form):
        raise NotImplementedError

    def get_form(self, request, obj=None, **kwargs):
        return self.add_form if obj is None else super().get_form(request, obj, **kwargs)

    def add_view(self, request, form_url="", extra_context=None):
        if request.method != "POST":
            return super().add_view(request, form_url, extra_context)
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = self.add_form(request.POST, request.FILES)
        if form.is_valid():
            try:
                obj = self.create(request, form)
            except services.TrainingError as exc:
                form.add_error(None, ValidationError([exc.message, *exc.problems[:50]]))
            else:
                self.log_addition(request, obj, self.construct_change_message(request, form, [], add=True))
                return self.response_add(request, obj)
        return self._add_page(request, form, form_url, extra_context)

    def _add_page(self, request, form, form_url, extra_context):
        """The add page again, with the form's errors and everything the user typed."""
        admin_form = helpers.AdminForm(form, list(self.get_fieldsets(request)), {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add {self.opts.verbose_name}",
            "subtitle": None,
            "adminform": admin_form,
            "object_id": None,
            "original": None,
            # as on the admin's own add page, a popup stays a popup
            "is_popup": IS_POPUP_VAR in request.POST or IS_POPUP_VAR in request.GET,
            "to_field": request.POST.get(TO_FIELD_VAR, request.GET.get(TO_FIELD_VAR)),
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        return self.render_change_form(request, context, add=True, form_url=form_url)


def _score_pair(post, checkpoint: Checkpoint) -> dict:
    """The scorer's verdict on one typed pair, for the checkpoint page."""
    item = {"prompt": post.get("score_prompt", ""), "a": post.get("score_a", ""), "b": post.get("score_b", "")}
    if not all(v.strip() for v in item.values()):
        return {**item, "error": "Type a prompt and two answers."}
    try:
        [(a, b)] = scorer_score_pairs(checkpoint, [item])
    except services.TrainingError as exc:
        return {**item, "error": exc.message}
    return {**item, "a_score": a, "b_score": b, "better": "A" if a > b else "B" if b > a else "neither"}


def _gate_runs(checkpoint: Checkpoint) -> list:
    """The checkpoint's gate runs in the order they ran: the parent comparison, then the leader's."""
    return list(checkpoint.gate_runs.select_related("opponent").order_by("created_at", "pk"))


def _run_label(job: Job) -> str:
    return f"job {job.pk} · {job.get_method_display()} · {job.dataset}"


@admin.register(Dataset)
class DatasetAdmin(DatasetPreviewMixin, _AddThroughService, admin.ModelAdmin):
    list_display = ["name", "kind", "format", "source", "row_count", "skipped_count", "license", "created_by",
                    "created_at"]
    list_filter = ["kind", "source"]
    search_fields = ["name", "description"]

    add_form = DatasetImportForm

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["import_from", "name", "data_format", "upload", "builtin", "server_path",
                                       "hub_id", "skip_invalid", "license", "description"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["name", "kind", "format", "source", "source_ref", "row_count", "skipped_count", "skipped_lines",
                "file", "commercial_use", "created_by", "created_at"]

    @admin.display(description="Skipped rows")
    def skipped_lines(self, dataset):
        return "\n".join(f"line {s['line']}: {s['reason']}" for s in dataset.skipped_rows) or "—"

    def create(self, request, form) -> Dataset:
        data, user = form.cleaned_data, request.user
        source, name, fmt = data["import_from"], data.get("name") or "", data.get("data_format") or ""
        if source == "builtin":
            return services.dataset_from_builtin(data["builtin"], name=name or None, created_by=user)
        if source == "arena":
            return services.dataset_from_arena_votes(name=name or "arena-votes", created_by=user)
        if source == "arena-prompts":
            return services.dataset_from_arena_prompts(name=name or "arena-hard-prompts", created_by=user)
        if source == "arena-kto":
            return services.dataset_from_arena_votes(name=name or "arena-votes-kto", created_by=user, unpaired=True)
        if source == "hub":
            return services.dataset_from_hub(data.get("hub_id", ""), name=name, fmt=fmt, created_by=user,
                                            skip_invalid=bool(data.get("skip_invalid")))
        extra = {"license": data.get("license", ""), "description": data.get("description", ""), "created_by": user,
                 "skip_invalid": bool(data.get("skip_invalid"))}
        if source == "upload":
            upload = data["upload"]
            return services.dataset_import(name=name, data=upload, fmt=fmt, source_ref=upload.name, **extra)
        return services.dataset_from_path(data.get("server_path", ""), name=name, fmt=fmt, **extra)


@admin.register(Job)
class JobAdmin(JobRepeatMixin, _AddThroughService, admin.ModelAdmin):
    list_display = ["id", "method", "base_model", "dataset", "preset", "status", "progress", "created_by", "created_at"]
    list_filter = ["status", "method"]
    actions = ["cancel_jobs", "compare_runs", export_jobs]
    change_form_template = "admin/training/job/change_form.html"
    add_form = JobLaunchForm

    def create(self, request, form) -> Job:
        data = form.cleaned_data
        job = services.job_launch(
            base_model=data["base_model"], method=data["method"], dataset=data["dataset"],
            preset_name=data.get("preset") or "", overrides=data["overrides"], created_by=request.user,
            init_checkpoint=data.get("init_checkpoint"), reward_model=data.get("reward_model"),
        )
        messages.info(request, f"Job {job.pk} queued on the training queue.")
        return job

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["base_model", "method", "dataset", "preset", "finetuning_type", "backend", "deepspeed", "overrides",
                    "init_checkpoint", "reward_model"]
        # Status, progress and errors are in the live panel above the form; only fixed facts here.
        return ["base_model", "method", "dataset", "preset", "init_checkpoint", "reward_model", "config", "created_by",
                "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        pass  # every field of a job page is read-only: jobs change through services and the worker

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

    @admin.action(description="Compare the loss curves of selected jobs")
    def compare_runs(self, request, queryset):
        jobs = list(queryset.select_related("dataset", "base_model").order_by("created_at")[:8])
        return TemplateResponse(request, "admin/training/job/compare.html", {
            **self.admin_site.each_context(request), "title": "Compare runs", "opts": self.model._meta,
            "jobs": jobs, "chart": compare_chart({_run_label(job): job.metrics or [] for job in jobs}),
        })

    def get_urls(self):
        return [
            path("<int:job_id>/progress/", self.admin_site.admin_view(self.progress_view), name="training_job_progress"),
            path("<int:job_id>/cancel/", self.admin_site.admin_view(require_POST(self.cancel_view)),
                 name="training_job_cancel"),
            *super().get_urls(),
        ]

    def _panel(self, job: Job) -> str:
        checkpoint = getattr(job, "checkpoint", None) if job.status == Job.Status.SUCCEEDED else None
        others = list(Job.objects.comparable_to(job))
        comparison = compare_chart({_run_label(run): run.metrics or [] for run in [job, *others]}) if others else ""
        return render_to_string("admin/training/job/progress_panel.html", {
            "job": job, "charts": job_charts(job.metrics or [], job.method), "checkpoint": checkpoint,
            "last": (job.metrics or [{}])[-1], "others": others, "comparison": comparison,
            "gate_runs": _gate_runs(checkpoint) if checkpoint else [],
            "gate_agreement": gate_agreement() if checkpoint else [],
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
        # One heading: the job's own description (the admin would add "View job" above its name).
        title = f"Job {job.pk}: {job.get_method_display()} of {job.base_model} on {job.dataset}"
        extra_context = {**(extra_context or {}), "progress_panel": self._panel(job), "job": job, "title": title,
                         "subtitle": None}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "finetuning_type", "job", "lineage_text", "contestant", "accuracy", "created_at"]
    list_filter = ["kind", "finetuning_type"]
    readonly_fields = ["kind", "finetuning_type", "job", "weights_dir", "adapter_sha256", "base_model", "parent", "final_metrics",
                       "served_model", "created_at", "lineage_text", "contestant", "accuracy"]
    change_form_template = "admin/training/checkpoint/change_form.html"
    actions = [export_checkpoints]

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        return [*chat_urls(self), *super().get_urls()]

    @admin.display(description="Held-out accuracy")
    def accuracy(self, checkpoint):
        value = checkpoint.heldout_accuracy()
        if checkpoint.kind != Checkpoint.Kind.SCORER or value is None:
            return "—"
        return accuracy_text(value, int((checkpoint.final_metrics or {}).get("heldout_rows") or 0))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        checkpoint = get_object_or_404(Checkpoint, pk=object_id)
        context = {**(extra_context or {}), "checkpoint": checkpoint, "gate_runs": _gate_runs(checkpoint),
                   "gate_agreement": gate_agreement(), "exports": checkpoint.exports.select_related("created_by")[:20]}
        if checkpoint.kind == Checkpoint.Kind.SCORER and request.method == "POST" and "score_a" in request.POST:
            if not self.has_view_permission(request, checkpoint):
                raise PermissionDenied
            context["score"] = _score_pair(request.POST, checkpoint)
            request.method = "GET"  # the page itself, read-only, around the result
        return super().change_view(request, object_id, form_url, context)

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
