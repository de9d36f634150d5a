"""Holds: why a healthy served model sits out of pairing right now (a step before sampling).

Fed by serving facts: a spent daily budget (``arena.costs.budget_holds``), a high
recent error rate (``arena.serving_stats.error_holds``), and an engine whose
``--max-loras`` slots are all held by adapters in concurrent battles
(``lora_slot_holds``). An open battle touched in the last ``ARENA_LORA_BUSY_WINDOW_S``
holds its adapters' slots; another adapter of that engine waits until one frees.
With one slot left, both sides of a new battle may still be new adapters of the
same engine: the engine then holds one adapter more than its slots for that battle,
and vLLM swaps adapters per request (slower, still correct on the vLLM the README
requires). ``ARENA_ACCOUNTING=0`` turns all holds off.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from arena.costs import budget_holds
from arena.models import Battle
from arena.serving_stats import error_holds
from serving.models import ServedModel


def lora_slot_holds(models: list[ServedModel]) -> dict[int, str]:
    """Adapters not in a concurrent battle on engines whose adapter slots are all busy."""
    slots = {m.endpoint_id: m.endpoint.lora_slots() for m in models
             if m.kind == ServedModel.Kind.LORA and m.endpoint.supports_lora()}
    slots = {endpoint_id: n for endpoint_id, n in slots.items() if n}
    if not slots:
        return {}
    since = timezone.now() - timedelta(seconds=settings.ARENA_LORA_BUSY_WINDOW_S)
    pairs = Battle.objects.filter(status=Battle.Status.OPEN, updated_at__gte=since).values_list("model_a", "model_b")
    busy = {model_id for pair in pairs for model_id in pair}
    busy_adapters = ServedModel.objects.filter(pk__in=busy, kind=ServedModel.Kind.LORA, endpoint_id__in=slots)
    in_use = Counter(busy_adapters.values_list("endpoint_id", flat=True))
    return {
        m.pk: f"all {slots[m.endpoint_id]} adapter slots of {m.endpoint.name} are in concurrent battles"
        for m in models
        if m.endpoint_id in slots and m.kind == ServedModel.Kind.LORA and m.pk not in busy
        and in_use[m.endpoint_id] >= slots[m.endpoint_id]
    }


def pairing_holds(models: list[ServedModel]) -> dict[int, str]:
    """``{model id: reason}`` for the models that sit out of pairing now (empty when accounting is off)."""
    if not settings.ARENA_ACCOUNTING or not models:
        return {}
    holds = lora_slot_holds(models)
    holds.update(error_holds(models))
    holds.update(budget_holds(models))
    return holds
