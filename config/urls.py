from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cases.api.base import not_found as api_not_found
from cases.search import search_page

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="cases:list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("cases/", include("cases.urls")),
    path("search/", search_page, name="search"),
    path("api/", include("cases.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/", api_not_found),  # any other /api/ URL: a JSON 404
    path("admin/", admin.site.urls),
]
