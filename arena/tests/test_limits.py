"""Rate limits per rater and per IP hash (arena/abuse/limits.py), through the services that apply them."""

import datetime as dt

import pytest
from django.utils import timezone

from arena import services
from arena.models import Battle, Response, Vote
from tests.factories import make_finished_battle, make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair():
    return make_model(), make_model()


def refused(call) -> services.ArenaError:
    with pytest.raises(services.ArenaError) as err:
        call()
    assert err.value.code == "rate_limited" and err.value.details["retry_after"] >= 1
    assert "try again in" in err.value.message
    return err.value


class TestBattlesPerMinute:
    def test_a_rater_over_the_limit_is_refused_with_a_retry_time_and_nothing_is_stored(self, settings, pair):
        settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 3
        for _ in range(3):
            services.battle_create(rater_id="r1", ip_hash="")
        error = refused(lambda: services.battle_create(rater_id="r1", ip_hash=""))
        assert error.details["retry_after"] <= 60
        assert Battle.objects.count() == 3

    def test_fresh_rater_ids_from_one_address_do_not_escape_it(self, settings, pair):
        # A script without cookies gets a new rater id on every connection; its IP hash stays.
        settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 3
        for n in range(3):
            services.battle_create(rater_id=f"fresh-{n}", ip_hash="ip-1")
        refused(lambda: services.battle_create(rater_id="fresh-99", ip_hash="ip-1"))
        services.battle_create(rater_id="fresh-100", ip_hash="ip-2")  # another address is not affected
        assert Battle.objects.count() == 4

    def test_battles_older_than_the_window_no_longer_count(self, settings, pair):
        settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 2
        for _ in range(2):
            services.battle_create(rater_id="r1", ip_hash="ip-1")
        refused(lambda: services.battle_create(rater_id="r1", ip_hash="ip-1"))
        Battle.objects.update(created_at=timezone.now() - dt.timedelta(seconds=61))
        services.battle_create(rater_id="r1", ip_hash="ip-1")
        services.battle_create(rater_id="r1", ip_hash="ip-1")  # the window is empty again: room for 2
        refused(lambda: services.battle_create(rater_id="r1", ip_hash="ip-1"))
        assert Battle.objects.count() == 4

    def test_zero_turns_the_limit_off(self, settings, pair):
        settings.ARENA_LIMIT_BATTLES_PER_MINUTE = 0
        for _ in range(10):
            services.battle_create(rater_id="r1", ip_hash="ip-1")
        assert Battle.objects.count() == 10


class TestConcurrentGenerations:
    def test_a_turn_is_refused_while_the_address_has_too_many_generating(self, settings, pair):
        settings.ARENA_LIMIT_CONCURRENT_GENERATIONS = 1
        first = services.battle_create(rater_id="conn-1", ip_hash="ip-1")
        second = services.battle_create(rater_id="conn-2", ip_hash="ip-1")
        services.battle_turn_begin(battle_id=first.public_id, rater_id="conn-1", text="Hi")
        refused(lambda: services.battle_turn_begin(battle_id=second.public_id, rater_id="conn-2", text="Hi"))
        assert Battle.objects.get(pk=second.pk).turn_total == 0 and not Response.objects.filter(
            turn__battle=second).exists()
        # Once the first turn's answers are in, the next one may start.
        for response in Response.objects.filter(turn__battle=first):
            services.battle_side_finish(response_id=response.pk, state="done", content="Hello")
        services.battle_turn_begin(battle_id=second.public_id, rater_id="conn-2", text="Hi")

    def test_a_stale_pending_turn_stops_counting_after_the_generation_timeout(self, settings, pair):
        settings.ARENA_LIMIT_CONCURRENT_GENERATIONS = 1
        first = services.battle_create(rater_id="r", ip_hash="ip-1")
        second = services.battle_create(rater_id="r", ip_hash="ip-1")
        services.battle_turn_begin(battle_id=first.public_id, rater_id="r", text="Hi")
        refused(lambda: services.battle_turn_begin(battle_id=second.public_id, rater_id="r", text="Hi"))
        Response.objects.update(started_at=timezone.now() - dt.timedelta(seconds=settings.ARENA_GENERATION_TIMEOUT_S + 1))
        services.battle_turn_begin(battle_id=second.public_id, rater_id="r", text="Hi")
        assert Battle.objects.get(pk=second.pk).turn_total == 1


class TestVotesPerHourAndDay:
    def vote(self, rater: str, ip: str) -> Vote:
        battle = make_finished_battle(rater_id=rater)
        Battle.objects.filter(pk=battle.pk).update(ip_hash=ip)
        return services.battle_vote(battle_id=battle.public_id, rater_id=rater, winner="tie", ip_hash=ip)

    def test_votes_over_the_hourly_limit_are_refused_and_not_stored(self, settings):
        settings.ARENA_LIMIT_VOTES_PER_HOUR = 2
        self.vote("a", "ip-1")
        self.vote("b", "ip-1")
        refused(lambda: self.vote("c", "ip-1"))
        assert Vote.objects.count() == 2
        assert Battle.objects.filter(status=Battle.Status.OPEN).count() == 1, "the refused battle stays open"
        self.vote("d", "ip-2")

    def test_the_daily_limit_counts_a_whole_day(self, settings):
        settings.ARENA_LIMIT_VOTES_PER_DAY = 2
        self.vote("a", "ip-1")
        self.vote("a", "ip-1")
        Vote.objects.update(created_at=timezone.now() - dt.timedelta(hours=5))
        error = refused(lambda: self.vote("a", "ip-1"))
        assert 18 * 3600 < error.details["retry_after"] <= 19 * 3600 + 1
        Vote.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
        self.vote("a", "ip-1")
