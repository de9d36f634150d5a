"""The limits hold under simultaneous requests (arena/abuse/limits.py "Exactness under concurrency").

Eight real threads, each with its own database connection, start together on a barrier and
call the same service against a limit of 1: exactly one gets through, the seven others are
refused with ``rate_limited``, and the database holds exactly one counted row. Run on SQLite
(the default) and on PostgreSQL (``DATABASE_URL=postgres://…``): the locks differ per backend.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from arena import services
from arena.abuse import limits
from arena.errors import ArenaError
from arena.models import Battle, Response, Vote
from tests.factories import make_finished_battle, make_model

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def race(calls) -> Counter:
    """Run each call in its own thread, all released at once; count "ok" and each error code."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(call):
        try:
            barrier.wait(timeout=60)
            call()
            outcome = "ok"
        except ArenaError as exc:
            outcome = exc.code
        except Exception as exc:  # noqa: BLE001 - reported in the assertion below
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)  # hang guard
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return Counter(outcomes)


def test_eight_simultaneous_battles_against_a_limit_of_one_let_exactly_one_through(settings):
    settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 1
    make_model(), make_model()
    outcomes = race([lambda n=n: services.battle_create(rater_id=f"socket-{n}", ip_hash="ip-1")
                     for n in range(THREADS)])
    assert outcomes == Counter({"ok": 1, "rate_limited": THREADS - 1})
    assert Battle.objects.filter(ip_hash="ip-1").count() == 1


def test_eight_simultaneous_votes_against_a_limit_of_one_let_exactly_one_through(settings):
    settings.ARENA_LIMIT_VOTES_PER_HOUR = 1
    battles = [make_finished_battle(rater_id="rater-1") for _ in range(THREADS)]
    Battle.objects.update(ip_hash="ip-1")
    outcomes = race([lambda b=b: services.battle_vote(battle_id=b.public_id, rater_id="rater-1", winner="tie",
                                                      ip_hash="ip-1") for b in battles])
    assert outcomes == Counter({"ok": 1, "rate_limited": THREADS - 1})
    assert Vote.objects.count() == 1
    assert Battle.objects.filter(status=Battle.Status.VOTED).count() == 1


def test_eight_simultaneous_turns_against_one_concurrent_generation_let_exactly_one_start(settings):
    settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 0
    settings.ARENA_LIMIT_CONCURRENT_GENERATIONS = 1
    make_model(), make_model()
    battles = [services.battle_create(rater_id=f"socket-{n}", ip_hash="ip-1") for n in range(THREADS)]
    outcomes = race([lambda n=n, b=b: services.battle_turn_begin(battle_id=b.public_id, rater_id=f"socket-{n}",
                                                                 text="Hello there")
                     for n, b in enumerate(battles)])
    assert outcomes == Counter({"ok": 1, "rate_limited": THREADS - 1})
    assert Response.objects.filter(state=Response.State.PENDING).values("turn_id").distinct().count() == 1


def test_a_limit_check_outside_a_transaction_is_a_programming_error(settings):
    settings.ARENA_LIMIT_VOTES_PER_HOUR = 1
    with pytest.raises(RuntimeError, match="inside the transaction"):
        limits.check_vote("rater-1", "ip-1")
