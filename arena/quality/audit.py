"""The admin's "Vote audit" page: excluded votes by reason, per rater and per model; staff decisions.

Contract: :func:`audit_context` only reads (counts grouped in SQL); its reasons, and what counts
as excluded, are those of :mod:`arena.quality.exclusions` (the one list). :func:`audit_view` shows it
and, on POST, records a staff decision through ``quality.rater_decide`` (logged with the
staff user, then a refit). Raters appear as their rater id and IP hash, never a raw address
(none is stored).
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from django import forms
from django.contrib import messages
from django.db.models import Count, F
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from arena.models import RaterDecision, Vote
from arena.quality import rules as quality
from arena.quality.exclusions import filters, reasons

TOP = 50


class RaterDecisionForm(forms.Form):
    rater_key = forms.CharField(max_length=64, label="Rater id or IP hash")
    action = forms.ChoiceField(choices=RaterDecision.Action.choices)
    note = forms.CharField(max_length=300, required=False)


def audit_context() -> dict:
    where = filters()
    by_reason = [{"reason": label, "votes": Vote.objects.filter(where[key]).count()} for key, label in reasons()]
    left_out = reduce(or_, where.values())  # for any reason
    per_rater = (
        Vote.objects.values("rater_id", "ip_hash")
        .annotate(votes=Count("pk"), excluded=Count("pk", filter=left_out))
        .order_by("-excluded", "-votes")[:TOP]
    )
    per_ip = (
        Vote.objects.exclude(ip_hash="").values("ip_hash")
        .annotate(votes=Count("pk"), raters=Count("rater_id", distinct=True), excluded=Count("pk", filter=left_out))
        .order_by("-excluded", "-votes")[:TOP]
    )
    per_model = []
    for side in ("a", "b"):
        rows = Vote.objects.values(name=F(f"battle__model_{side}__public_name")).annotate(
            votes=Count("pk"), excluded=Count("pk", filter=left_out))
        per_model.extend(rows)
    merged: dict[str, dict] = {}
    for row in per_model:
        entry = merged.setdefault(row["name"], {"name": row["name"], "votes": 0, "excluded": 0})
        entry["votes"] += row["votes"]
        entry["excluded"] += row["excluded"]
    excluded_votes = (
        Vote.objects.filter(left_out).select_related("battle__model_a", "battle__model_b").order_by("-created_at")[:TOP]
    )
    return {
        "by_reason": by_reason,
        "per_rater": list(per_rater),
        "per_ip": list(per_ip),
        "per_model": sorted(merged.values(), key=lambda r: -r["excluded"]),
        "excluded_votes": list(excluded_votes),
        "decisions": RaterDecision.objects.select_related("made_by")[:TOP],
    }


def audit_view(request, admin_site):
    form = RaterDecisionForm(request.POST or None)
    if request.method == "POST":
        if not request.user.has_perm("arena.add_raterdecision"):
            messages.error(request, "You may not change raters.")
        elif form.is_valid():
            data = form.cleaned_data
            quality.rater_decide(rater_key=data["rater_key"].strip(), action=data["action"], user=request.user,
                                 note=data["note"])
            messages.success(request, f"Rater {data['rater_key'][:12]}…: {data['action']} recorded; the board refits.")
            return redirect(request.path)
    context = {**admin_site.each_context(request), "title": "Vote audit", "form": form, **audit_context()}
    return TemplateResponse(request, "admin/arena/vote_audit.html", context)
