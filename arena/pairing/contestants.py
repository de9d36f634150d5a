"""Which served models battle, and how often: the arena's side of a served model.

Serving offers healthy models; the arena decides their sampling weight and the
boost a new contestant gets for its first votes (``ARENA_NEW_MODEL_BOOST*``).
A healthy served model without a ``Contestant`` row battles on the defaults.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import F

from arena.models import Contestant, Vote
from arena.pairing.holds import PairingState, pairing_holds, pairing_state
from serving.models import ServedModel


def contestant_of(model: ServedModel) -> Contestant:
    """The model's contestant row, or an unsaved one holding the defaults when it has none."""
    try:
        return model.contestant
    except Contestant.DoesNotExist:
        return Contestant(served_model=model)


def _candidates() -> list[ServedModel]:
    """Every healthy served model that is not retired."""
    return list(ServedModel.objects.healthy().filter(contestant__retired_at__isnull=True)
                .select_related("contestant"))


def contestants_pairing_state() -> PairingState:
    """The holds over every healthy contestant, and the error holds the two-model floor keeps from applying."""
    return pairing_state(_candidates())


def contestants_battle_ready() -> list[tuple[ServedModel, float]]:
    """Every healthy served model that is not retired nor on hold (``arena.pairing.holds``), with its
    effective sampling weight (0: drawn only when no other can be)."""
    models = _candidates()
    holds = pairing_holds(models)
    return [(model, contestant_of(model).effective_weight()) for model in models if model.pk not in holds]


def _inherited_weight(model: ServedModel) -> float:
    """An adapter battles as often as its base (1 for a base model, or a parent held at weight 0)."""
    return (contestant_of(model.parent).sampling_weight if model.parent_id else 1.0) or 1.0


def contestant_enter(model: ServedModel, *, boost: bool = True) -> Contestant:
    """Make a served model a contestant (idempotent: an existing row is returned unchanged).

    It inherits its parent's sampling weight (an adapter battles as often as its base);
    with ``boost`` it is drawn ``ARENA_NEW_MODEL_BOOST`` times as often for its first
    ``ARENA_NEW_MODEL_BOOST_VOTES`` votes.
    """
    contestant, _ = Contestant.objects.get_or_create(
        served_model=model,
        defaults={
            "sampling_weight": _inherited_weight(model),
            "boost_weight": settings.ARENA_NEW_MODEL_BOOST if boost else 1.0,
            "boost_votes_left": settings.ARENA_NEW_MODEL_BOOST_VOTES if boost else 0,
        },
    )
    return contestant


def contestants_count_vote(vote: Vote) -> None:
    """One vote spent of the boost of each boosted model of the vote's battle, when the vote counts
    (``Vote.objects.counted()``); call inside the vote's transaction, after storing it.

    A vote left out (too fast, an identity leak, a failed side, …) spends nothing: otherwise
    a script could burn a new rival's boost with votes that never reach the board. Marks set
    later by the key rules (``arena.quality.rules.outliers_refresh``) do not give spent votes back.
    """
    if not Vote.objects.counted().filter(pk=vote.pk).exists():
        return
    model_ids = [vote.battle.model_a_id, vote.battle.model_b_id]
    # Rows locked in one order first: concurrent votes on the same pair then wait, never deadlock (PostgreSQL).
    boosted = list(Contestant.objects.select_for_update().filter(served_model_id__in=model_ids, boost_votes_left__gt=0)
                   .order_by("pk").values_list("pk", flat=True))
    Contestant.objects.filter(pk__in=boosted).update(boost_votes_left=F("boost_votes_left") - 1)


def contestant_hold(model: ServedModel) -> Contestant:
    """Enter a new model held back: sampling weight 0 (drawn only when no other model can be)
    until ``contestant_admit``; the training gate holds a model until it has been evaluated."""
    contestant = contestant_enter(model)
    Contestant.objects.filter(pk=contestant.pk).update(sampling_weight=0.0)
    contestant.refresh_from_db()
    return contestant


def contestant_admit(model: ServedModel) -> Contestant:
    """Give a held model its normal weight (its parent's); a model never held is entered as usual."""
    contestant = contestant_enter(model)
    if contestant.sampling_weight == 0.0:
        Contestant.objects.filter(pk=contestant.pk).update(sampling_weight=_inherited_weight(model))
        contestant.refresh_from_db()
    return contestant
