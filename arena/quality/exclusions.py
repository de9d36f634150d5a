"""Why a vote is left out of the ratings: the one list of reasons, in the order readers see them.

Two kinds. Facts of the vote or its battle, fixed when it is stored: ``identity_leak`` (an answer
named a model), ``named_mode`` (the rater chose the models), ``side_error`` (a side failed). And
the quality reason ``Vote.exclusion`` (its values are ``Vote.Exclusion``; the rules that set them
are :mod:`arena.quality.rules`). A vote can have one of each kind.

Every surface reads :func:`reasons`: the leaderboard's "Votes left out" table and the snapshot's
``excluded`` counts (``arena.leaderboard.services``), the API, the metrics (``arena.metrics``) and
the admin's audit page (the model's choices). Adding a quality reason: a ``Vote.Exclusion`` value
with its label (and its migration) plus its rule in ``arena.quality.rules``; every surface picks it up
from here (docs/extending.md walks through one).
"""

from __future__ import annotations

from django.db.models import Q

from arena.models import Battle, Vote

#: The facts that leave a vote out, with the words the leaderboard uses.
FLAGS: dict[str, str] = {
    "identity_leak": "An answer named a model (identity leak)",
    "named_mode": "Named mode (the voter chose the models)",
    "side_error": "A side failed to answer",
}


def reasons() -> list[tuple[str, str]]:
    """``[(key, label)]`` of every reason a vote can be left out for, flags first."""
    return [*FLAGS.items(), *((choice.value, choice.label) for choice in Vote.Exclusion if choice.value)]


def filters() -> dict[str, Q]:
    """``{key: Q}`` selecting the votes left out for each reason of :func:`reasons` (for counting in SQL)."""
    facts = {"identity_leak": Q(identity_leak=True), "named_mode": ~Q(battle__mode=Battle.Mode.ANONYMOUS),
             "side_error": Q(side_error=True)}
    return {key: facts.get(key, Q(exclusion=key)) for key, _ in reasons()}


def vote_reasons(vote: Vote) -> list[str]:
    """The reasons this stored vote is left out for (empty: it counts)."""
    found = [key for key, flagged in (("identity_leak", vote.identity_leak), ("side_error", vote.side_error)) if flagged]
    if vote.battle.mode != vote.battle.Mode.ANONYMOUS:
        found.append("named_mode")
    if vote.exclusion:
        found.append(vote.exclusion)
    return found
