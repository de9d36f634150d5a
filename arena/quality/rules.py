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
  raters, and of IP hashes, whose votes are outliers against a board fitted without them
  (leave-one-key-out), and ``key_share`` on the votes beyond one key's share of a model's
  votes (``ARENA_KEY_SHARE_CAP``, the key's earliest votes kept); both rules look at the votes
  that would count without them, and a mark no longer deserved is cleared (arena/quality/outliers.py).
  A key staff re-included is exempt from both.
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
from django.db.models import Q

from arena import ratings
from arena.leaderboard.refresh import ratings_refresh_soon
from arena.models import Battle, BoardChange, RaterDecision, Response, Vote
from arena.quality import outliers
from arena.quality.identity import find_identity_words, model_identity_words
from serving.models import ServedModel

logger = logging.getLogger(__name__)

Exclusion = Vote.Exclusion
KEY_LEVEL = [Exclusion.OUTLIER_RATER, Exclusion.KEY_SHARE]  # recomputed before each refit
RATER_LEVEL = [*KEY_LEVEL, Exclusion.STAFF_EXCLUDED]


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
    transaction.on_commit(ratings_refresh_soon)


@transaction.atomic
def rater_decide(*, rater_key: str, action: str, user=None, note: str = "") -> RaterDecision:
    """Record a staff decision about a rater id or IP hash and apply it to its votes."""
    if action not in RaterDecision.Action.values or not rater_key:
        raise ValueError(f"unknown action {action!r} or empty rater")
    decision = RaterDecision.objects.create(rater_key=rater_key, action=action, made_by=user, note=note[:300])
    votes = Vote.objects.filter(Q(rater_id=rater_key) | Q(ip_hash=rater_key))
    if action == RaterDecision.Action.EXCLUDE:
        changed = votes.filter(exclusion__in=[Exclusion.COUNTED, *KEY_LEVEL]).update(
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


def _key_column(values: list[str], exempt: set[str]) -> tuple[np.ndarray, list[str]]:
    """Key index per vote (-1: no key or staff re-included) and the labels."""
    labels = sorted({v for v in values if v and v not in exempt})
    index = {k: i for i, k in enumerate(labels)}
    return np.array([index.get(v, -1) for v in values], dtype=np.int64), labels


def key_marks() -> tuple[set[str], set[int]]:
    """``(outlier keys, capped vote ids)``: the rater ids and IP hashes the leave-one-key-out test
    flags, and the votes beyond a key's share of a model (arena/quality/outliers.py), among the votes that
    would count without these two rules. Keys staff re-included are exempt from both."""
    rows = list(
        Vote.objects.filter(battle__mode=Battle.Mode.ANONYMOUS, identity_leak=False, side_error=False,
                            exclusion__in=[Exclusion.COUNTED, *KEY_LEVEL])
        .order_by("created_at", "pk")
        .values_list("pk", "rater_id", "ip_hash", "winner", "battle__model_a_id", "battle__model_b_id")
    )
    if not rows:
        return set(), set()
    model_ids = sorted({r[4] for r in rows} | {r[5] for r in rows})
    index = {pk: i for i, pk in enumerate(model_ids)}
    exempt = _included_keys()
    columns = [_key_column([r[1] for r in rows], exempt), _key_column([r[2] for r in rows], exempt)]
    marks = outliers.vote_marks(
        len(model_ids), np.array([index[r[4]] for r in rows]), np.array([index[r[5]] for r in rows]),
        np.array([ratings.WINNERS.index(r[3]) for r in rows]), [key for key, _ in columns],
        threshold=settings.ARENA_OUTLIER_Z, min_votes=settings.ARENA_OUTLIER_MIN_VOTES,
        share=settings.ARENA_KEY_SHARE_CAP, floor=settings.ARENA_KEY_SHARE_MIN_VOTES)
    flagged = {labels[i] for (_, labels), hits in zip(columns, marks.flagged, strict=True) for i in hits}
    return flagged, {rows[i][0] for i in np.flatnonzero(marks.capped)}


def outliers_refresh() -> int:
    """Mark ``outlier_rater`` on the outlier keys' votes and ``key_share`` on the capped votes, and
    clear the marks no longer deserved; returns how many votes changed."""
    keys, capped = key_marks()
    match = Q(rater_id__in=keys) | Q(ip_hash__in=keys)
    with transaction.atomic():
        candidates = Vote.objects.filter(exclusion__in=[Exclusion.COUNTED, *KEY_LEVEL])
        changed = {
            "outlier": candidates.filter(match).exclude(exclusion=Exclusion.OUTLIER_RATER).update(
                exclusion=Exclusion.OUTLIER_RATER),
            "capped": candidates.exclude(match).filter(pk__in=capped).exclude(exclusion=Exclusion.KEY_SHARE).update(
                exclusion=Exclusion.KEY_SHARE),
            "cleared": candidates.exclude(match).exclude(pk__in=capped).exclude(exclusion=Exclusion.COUNTED).update(
                exclusion=Exclusion.COUNTED),
        }
    if any(changed.values()):
        logger.info("key rules: %s outlier keys; votes changed %s", len(keys), changed)
    return sum(changed.values())
