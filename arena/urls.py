from django.urls import path

from arena import views

urlpatterns = [
    path("", views.battle_page, name="battle"),
    path("api/battles/<uuid:battle_id>", views.battle_detail_api, name="battle-detail-api"),
    path("api/prompts/suggestions", views.suggestions_api, name="suggestions-api"),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("leaderboard/model/<path:public_name>/", views.model_page, name="model_page"),
    path("leaderboard.csv", views.leaderboard_csv, name="leaderboard-csv"),
    path("api/leaderboard", views.leaderboard_api, name="leaderboard-api"),
]
