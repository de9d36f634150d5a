"""The leaderboard refresh task: coalescing, skipping, broadcasting, never failing a vote."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import caches
from django.utils import timezone

from arena import services, tasks
from arena.leaderboard import refresh as leaderboard_refresh
from arena.leaderboard import services as leaderboard_services
from arena.models import RatingSnapshot, Vote
from tests.factories import make_finished_battle, make_model, make_vote
from tests.helpers import DEAD_REDIS_URL, dead_broker


@pytest.fixture(autouse=True)
def quick(settings):
    settings.ARENA_LEADERBOARD_ROUNDS = 10
    settings.ARENA_LEADERBOARD_STYLE_ROUNDS = 0
    settings.ARENA_LEADERBOARD_REFRESH_DELAY_S = 5.0


@pytest.fixture(autouse=True)
def no_pending_flag():
    caches["shared"].delete(leaderboard_refresh.PENDING_KEY)
    yield
    caches["shared"].delete(leaderboard_refresh.PENDING_KEY)


class TestRatingsRefreshSoon:
    """On the real broker (files in the embedded mode, Redis under REDIS_URL); a broker outage is a
    real refused connection (``dead_broker``), a cache outage a real cache on a dead Redis port."""

    def test_a_burst_of_votes_queues_one_refresh_after_the_delay(self, broker_queue):
        before = timezone.now()
        for _ in range(5):
            leaderboard_refresh.ratings_refresh_soon()
        after = timezone.now()
        [message] = broker_queue("default")
        assert message["task"] == "arena.tasks.ratings_refresh" and message["args"] == []
        eta = dt.datetime.fromisoformat(message["eta"])
        assert before + dt.timedelta(seconds=5) <= eta <= after + dt.timedelta(seconds=5)

    def test_an_unreachable_broker_is_logged_and_the_next_vote_tries_again(self, broker_queue, caplog):
        with dead_broker():
            leaderboard_refresh.ratings_refresh_soon()  # must not raise
            leaderboard_refresh.ratings_refresh_soon()
        # Logged twice: the failure cleared the pending flag, so the second vote tried again.
        assert caplog.text.count("could not queue the leaderboard refresh") == 2
        leaderboard_refresh.ratings_refresh_soon()
        assert [m["task"] for m in broker_queue("default")] == ["arena.tasks.ratings_refresh"]

    def test_a_broken_cache_still_queues(self, broker_queue, settings, caplog):
        settings.CACHES = {**settings.CACHES, "shared": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": DEAD_REDIS_URL}}
        leaderboard_refresh.ratings_refresh_soon()
        assert "leaderboard refresh flag unavailable" in caplog.text
        assert [m["task"] for m in broker_queue("default")] == ["arena.tasks.ratings_refresh"]

    @pytest.mark.django_db(transaction=True)
    def test_a_vote_never_fails_because_of_the_leaderboard(self, caplog):
        battle = make_finished_battle(rater_id="me")
        with dead_broker():
            vote = services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="tie")
        assert Vote.objects.get(battle=battle).pk == vote.pk
        assert "could not queue the leaderboard refresh" in caplog.text


@pytest.mark.django_db
class TestRatingsRefresh:
    def test_it_stores_a_snapshot_and_tells_the_leaderboard_group(self):
        make_vote(make_model(), make_model())
        layer = get_channel_layer()
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(leaderboard_services.GROUP, channel)
        try:
            snapshot_id = tasks.ratings_refresh_task()
            message = async_to_sync(layer.receive)(channel)
        finally:
            async_to_sync(layer.group_discard)(leaderboard_services.GROUP, channel)
        assert snapshot_id == RatingSnapshot.objects.get().pk
        assert message == {"type": "leaderboard.update", "snapshot_id": snapshot_id}

    def test_it_skips_when_nothing_changed_unless_forced(self):
        make_vote(make_model(), make_model())
        first = tasks.ratings_refresh_task()
        assert tasks.ratings_refresh_task() is None
        assert tasks.ratings_refresh_task(force=True) > first

    def test_a_refresh_clears_the_pending_flag_so_later_votes_queue_again(self, broker_queue):
        leaderboard_refresh.ratings_refresh_soon()
        tasks.ratings_refresh_task()
        leaderboard_refresh.ratings_refresh_soon()
        assert len(broker_queue("default")) == 2

    def test_it_is_on_the_beat_schedule(self, settings):
        entry = settings.CELERY_BEAT_SCHEDULE["ratings-refresh"]
        assert entry["task"] == "arena.tasks.ratings_refresh" == tasks.ratings_refresh_task.name
