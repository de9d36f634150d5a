from django.urls import path

from arena import views

urlpatterns = [
    path("", views.battle_page, name="battle"),
    path("api/battles/<uuid:battle_id>", views.battle_detail_api, name="battle-detail-api"),
    path("api/prompts/suggestions", views.suggestions_api, name="suggestions-api"),
]
