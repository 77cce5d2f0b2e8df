"""Strata's URLs."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from catalog.views.tokens import account_tokens
from config.api import api
from ops import views as ops_views

urlpatterns = [
    # Probes and the scrape, without a trailing slash as probes and Prometheus ask.
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("", include("catalog.urls")),
    path("", include("lineage.urls")),
    path("", include("cards.urls")),
    path("", include("lifecycle.urls")),
    path("", include("registry.urls")),
    path("", include("governance.urls")),
    path("", include("changes.urls")),
    path("api/v1/", api.urls),
    path("account/tokens/", account_tokens, name="account_tokens"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

# Error pages in the site's style, with the reason when there is one to give.
handler403 = "catalog.views.pages.permission_denied"
handler404 = "catalog.views.pages.page_not_found"
handler500 = "catalog.views.pages.server_error"
