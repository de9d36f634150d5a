"""Retiring and reinstating models, counting excluded votes again, and the public change log.

Every change here is an admin decision that changes what the board shows, so each one is
logged as an :class:`arena.models.BoardChange` (who, when, why) in the same transaction, and
the board is refitted after the commit:

* :func:`model_retire`: the model is never drawn into a battle again; its votes stay in the fit
  (the other ratings do not move when it leaves) and its row moves to the board's "Retired"
  section, with its last rating. Its history (battles, votes, earlier snapshots) is kept.
* :func:`model_reinstate`: undoes a retirement.
* :func:`votes_reinclude`: clears the exclusion flags (identity leak, failed side) of chosen
  votes, so they count from the next refit.

:func:`arena.leaderboard.selectors.retired_names` and :func:`~arena.leaderboard.selectors.changelog`
are the reads the board and the page need.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from arena.leaderboard.refresh import ratings_refresh_soon
from arena.models import BoardChange, Vote
from arena.pairing.contestants import contestant_of
from serving.models import ServedModel

__all__ = ["RetirementError", "model_reinstate", "model_retire", "votes_reinclude"]


class RetirementError(ValueError):
    """A refused change, with a message safe to show to the admin."""


def _clean(actor: str, reason: str) -> tuple[str, str]:
    reason = (reason or "").strip()
    if not reason:
        raise RetirementError("Say why: a reason is required, and it is shown in the public change log.")
    if not (actor or "").strip():
        raise RetirementError("The change needs the name of the staff member making it.")
    return actor.strip()[:150], reason


@transaction.atomic
def model_retire(model: ServedModel, *, actor: str, reason: str) -> BoardChange:
    """Retire ``model`` (see the module docstring); refuses a model already retired."""
    actor, reason = _clean(actor, reason)
    contestant = contestant_of(model)
    if contestant.retired_at is not None:
        raise RetirementError(f"{model.public_name} is already retired (since {contestant.retired_at:%Y-%m-%d}).")
    contestant.retired_at, contestant.retired_by, contestant.retired_reason = timezone.now(), actor, reason
    contestant.save()
    if model.kind in (ServedModel.Kind.LORA, ServedModel.Kind.FULL):
        # A paused adapter frees its --max-loras slot: serving's reconciliation unloads inactive
        # adapters and no longer re-loads this one (serving.adapters.adapters_unload_inactive);
        # a full fine-tune's engine is stopped by the engine supervisor (serving.supervisor).
        ServedModel.objects.filter(pk=model.pk).update(active=False)
    change = BoardChange.objects.create(kind=BoardChange.Kind.RETIRED, model_name=model.public_name, actor=actor,
                                        reason=reason)
    transaction.on_commit(ratings_refresh_soon)
    return change


@transaction.atomic
def model_reinstate(model: ServedModel, *, actor: str, reason: str) -> BoardChange:
    """Bring a retired ``model`` back into battles and the main board."""
    actor, reason = _clean(actor, reason)
    contestant = contestant_of(model)
    if contestant.retired_at is None:
        raise RetirementError(f"{model.public_name} is not retired.")
    contestant.retired_at, contestant.retired_by, contestant.retired_reason = None, "", ""
    contestant.save()
    if model.kind in (ServedModel.Kind.LORA, ServedModel.Kind.FULL):
        ServedModel.objects.filter(pk=model.pk).update(active=True)  # reconciliation loads it (or its engine) again
    change = BoardChange.objects.create(kind=BoardChange.Kind.REINSTATED, model_name=model.public_name,
                                        actor=actor, reason=reason)
    transaction.on_commit(ratings_refresh_soon)
    return change


@transaction.atomic
def votes_reinclude(votes: QuerySet[Vote], *, actor: str, reason: str) -> BoardChange:
    """Count the given votes again (clear their identity-leak and failed-side flags and any
    quality exclusion, see :mod:`arena.quality.rules`).

    Only excluded votes change; the log records how many. Named-mode votes stay out: the voter
    chose the models, which no review can undo.
    """
    actor, reason = _clean(actor, reason)
    flagged = votes.filter(Q(identity_leak=True) | Q(side_error=True) | ~Q(exclusion=""))
    changed = Vote.objects.filter(pk__in=list(flagged.values_list("pk", flat=True))).update(
        identity_leak=False, side_error=False, exclusion="")
    if not changed:
        raise RetirementError("None of these votes is excluded.")
    change = BoardChange.objects.create(kind=BoardChange.Kind.VOTES_REINCLUDED, votes=changed, actor=actor,
                                        reason=reason)
    transaction.on_commit(ratings_refresh_soon)
    return change
