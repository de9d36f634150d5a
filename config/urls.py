from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from config.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's): answer, don't 404.
    # Lazy: in production the hashed name comes from collectstatic's manifest, read at the first request.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("arena/favicon.svg"), permanent=True)),
    path("", include("serving.urls")),
    path("", include("arena.urls")),
]
