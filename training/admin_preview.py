"""The dataset page's preview (the fine-tune studio), kept apart from ``training.admin``'s model admins:
``DatasetPreviewMixin`` shows the preview the worker computed (``training.previews``), requests it on
the first visit, shows "computing…" before (the page polls ``<id>/preview/``) and a failure's reason,
and computes it again for another base model on demand.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse

from serving.models import ServedModel
from training import previews
from training.errors import TrainingError
from training.models import Dataset, PreviewStatus
from training.plots import histogram_chart

_EFFECT_WORDS = (("cut", "cut (truncated to the limit)"), ("dropped", "dropped"),
                 ("packed", "split across packed blocks (nothing lost)"))
#: the order of a rendered row's parts (the stored JSON's key order is not kept by PostgreSQL's jsonb)
_PART_ORDER = ("prompt", "chosen", "rejected", "completion", "text")


def _row_parts(row: dict) -> dict:
    parts = [{"name": name, **row[name]} for name in _PART_ORDER if isinstance(row.get(name), dict)]
    return {"label": row.get("label"), "parts": parts}


def _waiting(dataset: Dataset) -> bool:
    """Whether the page should keep polling: computing, and not stalled."""
    return dataset.preview_status == PreviewStatus.COMPUTING and not previews.preview_stalled(dataset)


def preview_panel(dataset: Dataset) -> str:
    """The dataset page's preview panel: status, rendered rows, histogram, cuts per preset."""
    preview = dataset.preview or {}
    marks: dict[str, float] = {}
    for effect in preview.get("presets", []):
        marks.setdefault(f"{effect['preset']} {effect['limit']}", effect["limit"])
    chart = histogram_chart(preview.get("histogram") or [], marks=marks, title="Tokens per row")
    effects = [{**e, "percent": round(100 * e["share"], 1),
                "words": "; ".join(f"{e[key]} {words}" for key, words in _EFFECT_WORDS if e.get(key)) or "all fit"}
               for e in preview.get("presets", [])]
    return render_to_string("admin/training/dataset/preview_panel.html", {
        "dataset": dataset, "preview": preview, "chart": chart if preview.get("histogram") else "",
        "effects": effects, "rows": [_row_parts(row) for row in preview.get("rows", [])],
        "computing": _waiting(dataset),
        "stalled": previews.preview_stalled(dataset), "stalled_minutes": previews.PREVIEW_STALLED_S // 60,
    })


#: written by the worker only: never fields of the dataset's form (a save would overwrite a newer preview)
PREVIEW_FIELDS = ("preview_status", "preview_base", "preview", "preview_error", "preview_at")


class DatasetPreviewMixin:
    change_form_template = "admin/training/dataset/change_form.html"

    def get_exclude(self, request, obj=None):
        return [*(super().get_exclude(request, obj) or []), *PREVIEW_FIELDS]

    def get_urls(self):
        return [path("<int:dataset_id>/preview/", self.admin_site.admin_view(self.preview_view),
                     name="training_dataset_preview"), *super().get_urls()]

    def preview_view(self, request, dataset_id: int):
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        if not self.has_view_permission(request, dataset):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse({"status": dataset.preview_status, "html": preview_panel(dataset),
                             "finished": not _waiting(dataset)})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dataset = get_object_or_404(Dataset, pk=object_id)
        if request.method == "POST" and "_preview_compute" in request.POST:
            if not self.has_change_permission(request, dataset):
                return HttpResponseRedirect(reverse("admin:training_dataset_changelist"))
            base = ServedModel.objects.filter(pk=request.POST.get("preview_base") or None).first()
            try:
                previews.dataset_preview_request(dataset, base)
            except TrainingError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:training_dataset_change", args=[dataset.pk]))
        if request.method == "GET":
            dataset = previews.dataset_preview_ensure(dataset)
        context = {**(extra_context or {}), "preview_panel": preview_panel(dataset), "preview_dataset": dataset,
                   "preview_bases": list(previews.preview_bases()), "preview_waiting": _waiting(dataset)}
        return super().change_view(request, object_id, form_url, context)
