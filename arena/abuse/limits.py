"""Rate limits of the rater's loop: battles, concurrent generations and votes.

Contract: each ``check_*`` function raises ``ArenaError("rate_limited", message)`` with a
``retry_after`` (seconds, rounded up) when the rater *or* the IP hash is over a limit, and
stores nothing; the caller then changes nothing either. Limits are counted from the database
rows the arena stores anyway (battles, pending responses, votes), over sliding windows, so
they are exact, shared by every web process in every mode (SQLite or PostgreSQL), survive
restarts, and cannot be escaped by reconnecting without a cookie (a fresh rater id keeps its
IP hash). A limit set to 0 is off.

Exactness under concurrency: every ``check_*`` must run inside the ``transaction.atomic`` block
that then stores the counted row, and takes a lock per subject first (:func:`_serialise`), so
of N simultaneous requests against a limit of 1 exactly one gets through, and the lock is
released only when the row is committed. PostgreSQL: a transaction-scoped advisory lock
(``pg_advisory_xact_lock``) on a 64-bit hash of the limit's kind and subject, taken in sorted
order (no deadlock between two keys). SQLite: ``config/settings.py`` opens every transaction
with ``BEGIN IMMEDIATE``, which holds the database's write lock from the start. Settings (docs/abuse-and-privacy.md):
``ARENA_LIMIT_BATTLES_PER_MINUTE``, ``ARENA_LIMIT_CONCURRENT_GENERATIONS``,
``ARENA_LIMIT_VOTES_PER_HOUR``, ``ARENA_LIMIT_VOTES_PER_DAY``.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from arena.errors import ArenaError
from arena.models import Battle, Response, Vote


class RateLimited(ArenaError):
    def __init__(self, what: str, retry_after: float):
        retry = max(1, math.ceil(retry_after))
        super().__init__("rate_limited", f"Too many {what}; try again in {retry} s.", retry_after=retry)


def _subjects(rater_id: str, ip_hash: str, prefix: str = "") -> list[Q]:
    """One filter per subject the limit applies to: the rater, and its IP hash when known."""
    subjects = [Q(**{f"{prefix}rater_id": rater_id})]
    if ip_hash:
        subjects.append(Q(**{f"{prefix}ip_hash": ip_hash}))
    return subjects


def _lock_key(kind: str, subject: str) -> int:
    """A signed 64-bit advisory-lock key for one (kind, subject)."""
    digest = hashlib.sha256(f"arena-limit:{kind}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _serialise(kind: str, rater_id: str, ip_hash: str) -> None:
    """Hold each subject's lock of this limit until the caller's transaction ends (see the contract)."""
    if not connection.in_atomic_block:
        raise RuntimeError("limit checks must run inside the transaction that stores the counted row")
    if connection.vendor == "postgresql":
        keys = sorted({_lock_key(kind, f"rater:{rater_id}")} | ({_lock_key(kind, f"ip:{ip_hash}")} if ip_hash else set()))
        with connection.cursor() as cursor:
            for key in keys:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    elif connection.vendor == "sqlite" and getattr(connection, "transaction_mode", None) != "IMMEDIATE":
        raise RuntimeError("SQLite needs OPTIONS transaction_mode=IMMEDIATE for exact limits (config/settings.py)")


def _window(queryset, subjects: list[Q], limit: int, seconds: float, what: str) -> None:
    """Refuse when a subject has ``limit`` or more rows created in the last ``seconds``."""
    if limit <= 0:
        return
    now = timezone.now()
    since = now - timedelta(seconds=seconds)
    for subject in subjects:
        recent = queryset.filter(subject, created_at__gt=since)
        if recent.count() >= limit:
            # Retry when enough of the window's rows have aged out to make room for one more.
            oldest = recent.order_by("-created_at").values_list("created_at", flat=True)[limit - 1]
            raise RateLimited(what, (oldest + timedelta(seconds=seconds) - now).total_seconds())


def check_battle(rater_id: str, ip_hash: str) -> None:
    """Before a battle is created: at most N battles per minute."""
    if settings.ARENA_LIMIT_BATTLES_PER_MINUTE > 0:
        _serialise("battle", rater_id, ip_hash)
    _window(Battle.objects.all(), _subjects(rater_id, ip_hash), settings.ARENA_LIMIT_BATTLES_PER_MINUTE, 60,
            "new battles")


def check_generation(rater_id: str, ip_hash: str) -> None:
    """Before a turn starts: at most N turns generating at once (a stale pending turn, older
    than the generation timeout, no longer counts)."""
    limit = settings.ARENA_LIMIT_CONCURRENT_GENERATIONS
    if limit <= 0:
        return
    _serialise("generation", rater_id, ip_hash)
    since = timezone.now() - timedelta(seconds=settings.ARENA_GENERATION_TIMEOUT_S)
    pending = Response.objects.filter(state=Response.State.PENDING, started_at__gt=since)
    for subject in _subjects(rater_id, ip_hash, "turn__battle__"):
        if pending.filter(subject).values("turn_id").distinct().count() >= limit:
            raise RateLimited("answers generating at once", settings.ARENA_GENERATION_TIMEOUT_S / 10)


def check_vote(rater_id: str, ip_hash: str) -> None:
    """Before a vote is stored: at most N votes per hour and M per day."""
    subjects = _subjects(rater_id, ip_hash)
    if settings.ARENA_LIMIT_VOTES_PER_HOUR > 0 or settings.ARENA_LIMIT_VOTES_PER_DAY > 0:
        _serialise("vote", rater_id, ip_hash)
    _window(Vote.objects.all(), subjects, settings.ARENA_LIMIT_VOTES_PER_HOUR, 3600, "votes this hour")
    _window(Vote.objects.all(), subjects, settings.ARENA_LIMIT_VOTES_PER_DAY, 86400, "votes today")
