from django.urls import path

from arena.consumers import BattleConsumer, LeaderboardConsumer

websocket_urlpatterns = [
    path("ws/arena/", BattleConsumer.as_asgi()),
    path("ws/leaderboard/", LeaderboardConsumer.as_asgi()),
]
