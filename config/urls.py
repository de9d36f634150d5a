from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's): answer, don't 404.
    path("favicon.ico", RedirectView.as_view(url=static("arena/favicon.svg"), permanent=True)),
    path("", include("serving.urls")),
    path("", include("arena.urls")),
]
