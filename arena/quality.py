"""Vote quality: which stored votes stay out of the ratings, and why; staff decisions about raters.

Contract:

* :func:`vote_checks` runs when a vote is stored (inside its transaction) and returns the
  vote's ``exclusion`` (``Vote.Exclusion``; "" = counted), ``decision_s`` and ``prompt_hash``.
  Reasons, first match wins: a side stopped or empty (``side_incomplete``; an errored side is
  ``side_error`` as before), moderation flagged a prompt or either answer (``moderation``), the
  vote came less than ``ARENA_MIN_VOTE_SECONDS`` after the last answer ended (``too_fast``),
  the first prompt was already voted ``ARENA_PROMPT_REPEAT_CAP`` times (``repeated_prompt``,
  FastChat's dedup of the most frequent prompts), staff excluded the rater (``staff_excluded``).
* :func:`moderation_flagged` is called before that transaction (it may make an HTTP call):
  the word list ``ARENA_MODERATION_WORDS`` and, when set, an OpenAI-compatible moderation
  endpoint ``ARENA_MODERATION_URL``; both check every prompt and both sides' answers. An
  unreachable endpoint is logged and lets the vote count (fail open: an outage must not
  discard every vote).
* :func:`outliers_refresh` (before each refit) marks ``outlier_rater`` on the counted votes of
  raters, and of IP hashes, whose votes are outliers against the current board
  (arena/outliers.py), and clears the mark of those no longer outliers.
* :func:`rater_decide` records a staff decision (who, when, what) and re-applies it to the
  rater's votes; the decision rows are the audit log. Every change queues a refit.
* :func:`identity_words` is the identity list: ``ARENA_IDENTITY_WORDS`` plus every served
  model's public name, engine model id, organization and base family.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q

from arena import outliers, ratings
from arena.identity import model_identity_words
from arena.models import Battle, BoardChange, RaterDecision, Response, Vote
from serving.models import ServedModel

logger = logging.getLogger(__name__)

Exclusion = Vote.Exclusion
RATER_LEVEL = [Exclusion.OUTLIER_RATER, Exclusion.STAFF_EXCLUDED]


def identity_words() -> list[str]:
    words = {w.strip().lower() for w in settings.ARENA_IDENTITY_WORDS if w.strip()}
    for name, engine_id, org, parent_name in ServedModel.objects.values_list(
        "public_name", "engine_model_id", "organization", "parent__public_name"
    ):
        words |= model_identity_words([name, engine_id, parent_name or ""], org)
    return sorted(words)


def prompt_digest(text: str) -> str:
    """A digest of a prompt with case and spacing normalised (FastChat dedups on the text)."""
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:32]


def moderation_flagged(texts: list[str]) -> bool:
    """True when the word list or the moderation endpoint flags any of ``texts``."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        return False
    if settings.ARENA_MODERATION_WORDS:
        from arena.identity import find_identity_words

        if find_identity_words(texts, settings.ARENA_MODERATION_WORDS):
            return True
    if not settings.ARENA_MODERATION_URL:
        return False
    import openai

    client = openai.OpenAI(base_url=settings.ARENA_MODERATION_URL, api_key=settings.ARENA_MODERATION_API_KEY or "EMPTY",
                           timeout=10.0, max_retries=0)
    try:
        result = client.moderations.create(model=settings.ARENA_MODERATION_MODEL, input=texts)
    except openai.OpenAIError as exc:
        logger.warning("moderation endpoint failed; the vote counts: %s", exc.__class__.__name__)
        return False
    return any(item.flagged for item in result.results)


def battle_moderated(public_id) -> bool:
    """:func:`moderation_flagged` over a battle's prompts and both sides' answers (False when off)."""
    if not (settings.ARENA_MODERATION_WORDS or settings.ARENA_MODERATION_URL):
        return False
    return moderation_flagged(battle_texts(public_id))


def battle_texts(public_id) -> list[str]:
    """Every prompt and both sides' answers of a battle (what moderation checks); [] if unknown."""
    try:
        battle = Battle.objects.get(public_id=uuid.UUID(str(public_id)))
    except (ValueError, Battle.DoesNotExist):
        return []
    answers = Response.objects.filter(turn__battle=battle).values_list("content", flat=True)
    return [*battle.turns.values_list("prompt", flat=True), *answers]


def staff_excluded(rater_id: str, ip_hash: str) -> bool:
    keys = [k for k in (rater_id, ip_hash) if k]
    latest = {}
    for key, action in RaterDecision.objects.filter(rater_key__in=keys).values_list("rater_key", "action"):
        latest.setdefault(key, action)  # newest first
    return RaterDecision.Action.EXCLUDE in latest.values()


def vote_checks(
    *, battle: Battle, responses: list[Response], rater_id: str, ip_hash: str, moderated: bool, now: datetime
) -> dict:
    """``{"exclusion", "decision_s", "prompt_hash"}`` for a vote being stored (module contract)."""
    finished = [r.finished_at for r in responses if r.finished_at]
    decision_s = (now - max(finished)).total_seconds() if finished else None
    first = min(battle.turns.all(), key=lambda t: t.index, default=None)
    digest = prompt_digest(first.prompt) if first else ""
    reason = Exclusion.COUNTED
    if any(r.state == Response.State.CANCELLED or (r.state == Response.State.DONE and not r.content.strip())
           for r in responses):
        reason = Exclusion.SIDE_INCOMPLETE
    elif moderated:
        reason = Exclusion.MODERATION
    elif settings.ARENA_MIN_VOTE_SECONDS > 0 and decision_s is not None and decision_s < settings.ARENA_MIN_VOTE_SECONDS:
        reason = Exclusion.TOO_FAST
    elif (settings.ARENA_PROMPT_REPEAT_CAP > 0 and digest
          and Vote.objects.filter(prompt_hash=digest).count() >= settings.ARENA_PROMPT_REPEAT_CAP):
        reason = Exclusion.REPEATED_PROMPT
    elif staff_excluded(rater_id, ip_hash):
        reason = Exclusion.STAFF_EXCLUDED
    return {"exclusion": reason, "decision_s": decision_s, "prompt_hash": digest}


def _refit_soon() -> None:
    from arena.leaderboard.refresh import ratings_refresh_soon

    transaction.on_commit(ratings_refresh_soon)


@transaction.atomic
def rater_decide(*, rater_key: str, action: str, user=None, note: str = "") -> RaterDecision:
    """Record a staff decision about a rater id or IP hash and apply it to its votes."""
    if action not in RaterDecision.Action.values or not rater_key:
        raise ValueError(f"unknown action {action!r} or empty rater")
    decision = RaterDecision.objects.create(rater_key=rater_key, action=action, made_by=user, note=note[:300])
    votes = Vote.objects.filter(Q(rater_id=rater_key) | Q(ip_hash=rater_key))
    if action == RaterDecision.Action.EXCLUDE:
        changed = votes.filter(exclusion__in=[Exclusion.COUNTED, Exclusion.OUTLIER_RATER]).update(
            exclusion=Exclusion.STAFF_EXCLUDED)
    else:
        changed = votes.filter(exclusion__in=RATER_LEVEL).update(exclusion=Exclusion.COUNTED)
        if changed:  # the public change log lists every re-inclusion of excluded votes
            BoardChange.objects.create(kind=BoardChange.Kind.VOTES_REINCLUDED, votes=changed,
                                       actor=getattr(user, "username", "") or "staff",
                                       reason=note or "A rater's votes were re-included after review.")
    logger.info("rater %s: %s by %s (%s votes changed)", rater_key[:12], action, getattr(user, "username", "-"), changed)
    _refit_soon()
    return decision


def _included_keys() -> set[str]:
    latest: dict[str, str] = {}
    for key, action in RaterDecision.objects.values_list("rater_key", "action"):
        latest.setdefault(key, action)
    return {key for key, action in latest.items() if action == RaterDecision.Action.INCLUDE}


def outlier_keys() -> set[str]:
    """Rater ids and IP hashes whose decisive votes are outliers against a board fitted on the
    votes that would count without the outlier rule."""
    rows = list(
        Vote.objects.filter(battle__mode=Battle.Mode.ANONYMOUS, identity_leak=False, side_error=False,
                            exclusion__in=[Exclusion.COUNTED, Exclusion.OUTLIER_RATER])
        .values_list("rater_id", "ip_hash", "winner", "battle__model_a_id", "battle__model_b_id")
    )
    if not rows:
        return set()
    model_ids = sorted({r[3] for r in rows} | {r[4] for r in rows})
    index = {pk: i for i, pk in enumerate(model_ids)}
    a = np.array([index[r[3]] for r in rows])
    b = np.array([index[r[4]] for r in rows])
    outcome = np.array([ratings.WINNERS.index(r[2]) for r in rows])
    board = ratings.compute_board(ratings.PairCounts.from_arrays([str(m) for m in model_ids], a, b, outcome), rounds=0)
    position = np.array([board.models.index(str(m)) for m in model_ids])
    p_a = board.predicted_win_rate[position[a], position[b]]
    decisive = outcome <= ratings.B_WINS
    flagged: set[str] = set()
    for column in (0, 1):  # per rater id, then per IP hash
        keys = [r[column] for r in rows]
        labels = sorted({k for k in keys if k})
        if not labels:
            continue
        label_index = {k: i for i, k in enumerate(labels)}
        keep = decisive & np.array([bool(k) for k in keys])
        group = np.array([label_index.get(k, 0) for k in keys])[keep]
        hits = outliers.outliers(group, p_a[keep], outcome[keep] == ratings.A_WINS,
                                 threshold=settings.ARENA_OUTLIER_Z, min_votes=settings.ARENA_OUTLIER_MIN_VOTES)
        flagged |= {labels[i] for i in hits}
    return flagged - _included_keys()


def outliers_refresh() -> int:
    """Mark the outlier raters' counted votes and clear marks no longer deserved; returns changes."""
    keys = outlier_keys() if settings.ARENA_OUTLIER_Z > 0 else set()
    match = Q(rater_id__in=keys) | Q(ip_hash__in=keys)
    with transaction.atomic():
        marked = Vote.objects.filter(match, exclusion=Exclusion.COUNTED).update(exclusion=Exclusion.OUTLIER_RATER)
        cleared = Vote.objects.filter(exclusion=Exclusion.OUTLIER_RATER).exclude(match).update(
            exclusion=Exclusion.COUNTED)
    if marked or cleared:
        logger.info("outlier raters: %s keys, %s votes marked, %s cleared", len(keys), marked, cleared)
    return marked + cleared


def excluded_counts(last_vote_id: int) -> dict[str, int]:
    """Votes up to ``last_vote_id`` left out per quality reason (for the leaderboard's About text)."""
    reasons = [choice for choice in Exclusion.values if choice]
    counts = Vote.objects.filter(pk__lte=last_vote_id).aggregate(
        **{reason: Count("pk", filter=Q(exclusion=reason)) for reason in reasons})
    return {reason: int(counts[reason]) for reason in reasons}
