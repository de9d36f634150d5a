"""The admin's studio pages beside the training admin: export actions and the chat with one model.

* **Export** (an action on jobs and on checkpoints): a confirmation page (adapter or merged
  model), then one export per checkpoint queued for a training worker (``training.export_queue``:
  the weights are on the workers' machines, and a merge outlasts a request); each checkpoint's
  page lists its exports with their folder or failure. ``manage.py export_model`` exports on the
  machine it runs on, and pushes to a hub.
* **Chat** (``admin:training_chat``, ``/admin/training/checkpoint/chat/``): staff with the view
  permission on checkpoints chat with any served model or checkpoint, multi-turn, streamed
  (NDJSON lines) or whole; ``training.studio_chat`` does the work. Never a battle, never a vote.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from training.errors import TrainingError
from training.export_queue import export_request
from training.models import Checkpoint
from training.studio_chat import (
    ChatTarget,
    chat_answer,
    chat_choices,
    chat_max_tokens,
    chat_messages,
    chat_stream,
    chat_target,
)

# --- export -------------------------------------------------------------------


def _export_page(modeladmin, request, checkpoints: list[Checkpoint], missing: list[int]):
    return TemplateResponse(request, "admin/training/export.html", {
        **modeladmin.admin_site.each_context(request), "title": "Export models", "opts": modeladmin.model._meta,
        "checkpoints": checkpoints, "missing": missing, "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action": request.POST.get("action", ""), "exports_dir": settings.ARENA_DATA_DIR / "exports",
    })


def _export_run(modeladmin, request, checkpoints: list[Checkpoint]) -> None:
    merge = request.POST.get("merge") == "1"
    for checkpoint in checkpoints:
        try:
            export = export_request(checkpoint, merge=merge, created_by=request.user)
        except TrainingError as exc:
            modeladmin.message_user(request, f"Job {checkpoint.job_id}: {exc.message}", messages.ERROR)
        else:
            page = reverse("admin:training_checkpoint_change", args=[checkpoint.pk])
            modeladmin.message_user(request, format_html(
                'Job {}: export queued on the training queue, to be written to {} on the worker; '
                '<a href="{}#exports">its checkpoint\'s page</a> shows when it is done.', checkpoint.job_id,
                export.folder, page), messages.SUCCESS)


def _export(modeladmin, request, checkpoints: list[Checkpoint], missing: list[int]):
    if not modeladmin.has_view_permission(request):
        raise PermissionDenied
    if request.POST.get("confirm") == "1" and checkpoints:
        _export_run(modeladmin, request, checkpoints)
        return None  # back to the list, with the messages
    return _export_page(modeladmin, request, checkpoints, missing)


@admin.action(description="Export the model (adapter or merged, with its model card)")
def export_jobs(modeladmin, request, queryset):
    jobs = list(queryset.select_related("checkpoint"))
    checkpoints = [job.checkpoint for job in jobs if hasattr(job, "checkpoint")]
    return _export(modeladmin, request, checkpoints, [job.pk for job in jobs if not hasattr(job, "checkpoint")])


@admin.action(description="Export the model (adapter or merged, with its model card)")
def export_checkpoints(modeladmin, request, queryset):
    return _export(modeladmin, request, list(queryset.select_related("job", "served_model")), [])


# --- chat ---------------------------------------------------------------------


def chat_urls(modeladmin) -> list:
    """The chat's two URLs, for ``CheckpointAdmin.get_urls`` (staff only: ``admin_view``)."""
    site = modeladmin.admin_site
    return [
        path("chat/", site.admin_view(lambda request: chat_page(modeladmin, request)), name="training_chat"),
        path("chat/send/", site.admin_view(require_POST(lambda request: chat_send(modeladmin, request))),
             name="training_chat_send"),
    ]


def chat_page(modeladmin, request):
    if not modeladmin.has_view_permission(request):
        raise PermissionDenied
    return TemplateResponse(request, "admin/training/chat.html", {
        **modeladmin.admin_site.each_context(request), "title": "Chat with a model", "opts": modeladmin.model._meta,
        "choices": chat_choices(), "selected": request.GET.get("with", ""), "send_url": reverse("admin:training_chat_send"),
    })


def chat_send(modeladmin, request):
    """POST ``{"with", "messages", "stream", "max_tokens"}``: NDJSON lines when streaming, else one JSON answer."""
    if not modeladmin.has_view_permission(request):
        raise PermissionDenied
    try:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return JsonResponse({"error": "Send a JSON object."}, status=400)
    try:
        conversation = chat_messages(body.get("messages"))
        chat = chat_target(str(body.get("with", "")), max_tokens=chat_max_tokens(body.get("max_tokens", 256)))
    except TrainingError as exc:
        return JsonResponse({"error": exc.message}, status=400)
    if not body.get("stream"):
        return JsonResponse(chat_answer(chat, conversation))
    response = StreamingHttpResponse(_ndjson(chat, conversation), content_type="application/x-ndjson")
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each line on at once
    return response


async def _ndjson(chat: ChatTarget, conversation: list[dict]):
    async for event in chat_stream(chat, conversation):
        if event.text:
            yield json.dumps({"text": event.text}) + "\n"
        elif event.finish_reason:
            yield json.dumps({"done": True, "model": chat.label, "finish_reason": event.finish_reason,
                              "completion_tokens": event.completion_tokens}) + "\n"
