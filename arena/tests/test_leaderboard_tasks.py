"""The leaderboard refresh task: coalescing, skipping, broadcasting, never failing a vote."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import caches

from arena import services, tasks
from arena.leaderboard import services as leaderboard_services
from arena.models import RatingSnapshot
from arena.tests.test_leaderboard import cast
from tests.factories import make_finished_battle, make_model


@pytest.fixture(autouse=True)
def quick(settings):
    settings.ARENA_LEADERBOARD_ROUNDS = 10
    settings.ARENA_LEADERBOARD_STYLE_ROUNDS = 0
    settings.ARENA_LEADERBOARD_REFRESH_DELAY_S = 5.0


@pytest.fixture(autouse=True)
def no_pending_flag():
    caches["shared"].delete(leaderboard_services.PENDING_KEY)
    yield
    caches["shared"].delete(leaderboard_services.PENDING_KEY)


class Recorder:
    def __init__(self, fail: Exception | None = None):
        self.calls: list[dict] = []
        self.fail = fail

    def __call__(self, *args, **kwargs):
        self.calls.append({"args": args, **kwargs})
        if self.fail:
            raise self.fail


class TestRatingsRefreshSoon:
    def test_a_burst_of_votes_queues_one_refresh_after_the_delay(self, monkeypatch):
        recorder = Recorder()
        monkeypatch.setattr(leaderboard_services, "_publish", recorder)
        for _ in range(5):
            leaderboard_services.ratings_refresh_soon()
        assert recorder.calls == [{"args": (5.0,)}]

    def test_an_unreachable_broker_is_logged_and_the_next_vote_tries_again(self, monkeypatch, caplog):
        recorder = Recorder(fail=ConnectionRefusedError("broker down"))
        monkeypatch.setattr(leaderboard_services, "_publish", recorder)
        leaderboard_services.ratings_refresh_soon()  # must not raise
        assert "could not queue the leaderboard refresh" in caplog.text
        leaderboard_services.ratings_refresh_soon()
        assert len(recorder.calls) == 2  # the flag was cleared, so the next vote retried

    def test_a_dead_broker_fails_fast_instead_of_holding_up_the_vote(self, monkeypatch, caplog):
        # A real connection attempt to a port nobody listens on; Celery's defaults retry ~6 s.
        monkeypatch.setitem(tasks.ratings_refresh_task.app.conf, "broker_url", "redis://127.0.0.1:1/0")
        monkeypatch.setitem(tasks.ratings_refresh_task.app.conf, "broker_write_url", None)
        leaderboard_services.ratings_refresh_soon()
        assert "could not queue the leaderboard refresh" in caplog.text

    def test_a_broken_cache_still_queues(self, monkeypatch):
        recorder = Recorder()
        monkeypatch.setattr(leaderboard_services, "_publish", recorder)

        class Broken:
            def add(self, *args, **kwargs):
                raise OSError("cache down")

            delete = add

        monkeypatch.setattr(leaderboard_services, "_pending_cache", lambda: Broken())
        leaderboard_services.ratings_refresh_soon()
        assert len(recorder.calls) == 1

    @pytest.mark.django_db(transaction=True)
    def test_a_vote_never_fails_because_of_the_leaderboard(self, monkeypatch):
        monkeypatch.setattr(leaderboard_services, "_publish", Recorder(fail=RuntimeError("no broker")))
        battle = make_finished_battle(rater_id="me")
        vote = services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="tie")
        assert vote.pk is not None


@pytest.mark.django_db
class TestRatingsRefresh:
    def test_it_stores_a_snapshot_and_tells_the_leaderboard_group(self):
        cast(make_model(), make_model())
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
        cast(make_model(), make_model())
        first = tasks.ratings_refresh_task()
        assert tasks.ratings_refresh_task() is None
        assert tasks.ratings_refresh_task(force=True) > first

    def test_it_clears_the_pending_flag_so_later_votes_queue_again(self, monkeypatch):
        recorder = Recorder()
        monkeypatch.setattr(leaderboard_services, "_publish", recorder)
        leaderboard_services.ratings_refresh_soon()
        tasks.ratings_refresh_task()
        leaderboard_services.ratings_refresh_soon()
        assert len(recorder.calls) == 2

    def test_it_is_on_the_beat_schedule(self, settings):
        entry = settings.CELERY_BEAT_SCHEDULE["ratings-refresh"]
        assert entry["task"] == "arena.tasks.ratings_refresh" == tasks.ratings_refresh_task.name
