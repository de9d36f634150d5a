"""Holds: why a healthy served model sits out of pairing right now (a step before sampling).

Fed by serving facts: a spent daily budget (``arena.battle.costs.budget_holds``), a high
recent error rate (``arena.serving_stats.error_holds``), and an engine whose
``--max-loras`` slots are all held by adapters in concurrent battles
(``lora_slot_holds``). An open battle touched in the last ``ARENA_LORA_BUSY_WINDOW_S``
holds its adapters' slots; another adapter of that engine waits until one frees.
With one slot left, both sides of a new battle may still be new adapters of the
same engine: the engine then holds one adapter more than its slots for that battle,
and vLLM swaps adapters per request (slower, still correct on the vLLM the README
requires). ``ARENA_ACCOUNTING=0`` turns all holds off.

The floor: error holds never leave fewer than ``PAIRING_FLOOR`` (two) of the given models in
pairing. When they would, the models with the lowest error rates stay in (``PairingState.kept``
says why, the admin's served-model page shows it) and the log says so at WARNING (once per
model per ``FLOOR_LOG_EVERY_S`` per process): a failing arena is the admin's to fix, and an
empty one is what an attacker who can make models fail wants. Budget and adapter-slot holds
are not lifted (money, and the engine's own limit).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from arena.battle.costs import budget_holds
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


logger = logging.getLogger(__name__)

#: Battle-ready models error holds never go below.
PAIRING_FLOOR = 2
FLOOR_LOG_EVERY_S = 300.0
_floor_logged: dict[int, float] = {}


@dataclass(frozen=True)
class PairingState:
    """``holds``: out of pairing now, and why; ``kept``: an error hold not applied because of the floor, and why."""

    holds: dict[int, str] = field(default_factory=dict)
    kept: dict[int, str] = field(default_factory=dict)


def pairing_state(models: list[ServedModel]) -> PairingState:
    """The holds over ``models`` (every healthy contestant, for the floor to mean anything), floor applied."""
    if not settings.ARENA_ACCOUNTING or not models:
        return PairingState()
    holds = lora_slot_holds(models)
    holds.update(budget_holds(models))
    errors = error_holds([m for m in models if m.pk not in holds])  # highest error rate first
    room = max(0, len(models) - len(holds) - PAIRING_FLOOR)
    held = list(errors)[:room]
    holds.update({model_id: errors[model_id] for model_id in held})
    kept = {model_id: f"in pairing despite {reason}: holding it would leave fewer than {PAIRING_FLOOR} "
                      f"battle-ready models" for model_id, reason in errors.items() if model_id not in holds}
    _log_kept(kept, models)
    return PairingState(holds, kept)


def _log_kept(kept: dict[int, str], models: list[ServedModel]) -> None:
    now = time.monotonic()
    names = {m.pk: m.public_name for m in models}
    for model_id, reason in kept.items():
        if now - _floor_logged.get(model_id, -FLOOR_LOG_EVERY_S) >= FLOOR_LOG_EVERY_S:
            _floor_logged[model_id] = now
            logger.warning("pairing floor: %s stays %s", names[model_id], reason)


def pairing_holds(models: list[ServedModel]) -> dict[int, str]:
    """``{model id: reason}`` for the models that sit out of pairing now (empty when accounting is off)."""
    return pairing_state(models).holds
