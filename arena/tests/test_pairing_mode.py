"""ARENA_PAIRING: weighted and active pairing through the real battle service (SQLite/PostgreSQL)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from arena import services
from arena.leaderboard import services as leaderboard_services
from arena.models import Battle
from arena.pairing import mode as pairing_mode
from tests.factories import make_model, make_vote


@pytest.fixture
def arena_with_a_newcomer(db):
    old = [make_model(public_name=name) for name in ("ant", "bee", "cat", "dog")]
    for k in range(40):
        a, b = old[k % 4], old[(k + 1 + k // 4) % 4]
        if a != b:
            make_vote(a, b, "model_a" if k % 3 else "tie")
    leaderboard_services.snapshot_create()
    new = make_model(public_name="newcomer")
    pairing_mode._state["at"] = float("-inf")  # another test's counts must not leak in
    return old, new


@pytest.mark.django_db
def test_active_pairing_sends_most_battles_to_the_uncertain_newcomer(arena_with_a_newcomer, settings):
    _, new = arena_with_a_newcomer
    settings.ARENA_PAIRING, settings.ARENA_PAIRING_FLOOR = "active", 0.0
    before = Battle.objects.count()
    rng = random.Random(7)
    battles = [services.battle_create(rater_id="r", rng=rng) for _ in range(12)]
    with_new = sum(new.pk in (b.model_a_id, b.model_b_id) for b in battles)
    assert with_new >= 10 and Battle.objects.count() == before + 12
    # Consecutive picks spread over the newcomer's opponents (pending battles count as information).
    assert len({b.model_a_id if b.model_b_id == new.pk else b.model_b_id for b in battles
                if new.pk in (b.model_a_id, b.model_b_id)}) >= 2
    assert 0 < sum(b.model_a_id == new.pk for b in battles) < with_new  # random sides


@pytest.mark.django_db
def test_weighted_pairing_is_the_default_and_the_floor_keeps_every_pair(arena_with_a_newcomer, settings):
    old, new = arena_with_a_newcomer
    assert settings.ARENA_PAIRING == "weighted"
    settings.ARENA_PAIRING, settings.ARENA_PAIRING_FLOOR = "active", 1.0
    rng = random.Random(3)
    seen = Counter(frozenset(pairing_mode.pair_for([m.pk for m in [*old, new]], [1.0] * 5, rng)) for _ in range(300))
    assert len(seen) == 10  # every one of the 10 pairs came up


@pytest.mark.django_db
def test_active_pairing_needs_two_models(db, settings):
    settings.ARENA_PAIRING = "active"
    only = make_model()
    with pytest.raises(services.ArenaError):
        services.battle_create(rater_id="r")
    with pytest.raises(pairing_mode.PairingError):
        pairing_mode.pair_for([only.pk, only.pk], [1.0, 1.0])
