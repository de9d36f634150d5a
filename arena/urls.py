from django.contrib.auth import views as auth_views
from django.urls import path

from arena import views

urlpatterns = [
    path("", views.battle_page, name="battle"),
    # Rater sign-in for ARENA_REQUIRE_LOGIN (Django accounts; docs/abuse-and-privacy.md).
    path("accounts/login/", auth_views.LoginView.as_view(template_name="arena/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/battles/<uuid:battle_id>", views.battle_detail_api, name="battle-detail-api"),
    path("api/prompts/suggestions", views.suggestions_api, name="suggestions-api"),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("leaderboard/model/<path:public_name>/", views.model_page, name="model_page"),
    path("leaderboard.csv", views.leaderboard_csv, name="leaderboard-csv"),
    path("api/leaderboard", views.leaderboard_api, name="leaderboard-api"),
]
