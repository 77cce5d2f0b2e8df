"""The model pages' addresses, under /models/."""

from __future__ import annotations

from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("models/", views.model_list, name="models"),
    path("models/compare/", views.model_compare, name="model_compare"),
    path("models/<str:name>/", views.model_detail, name="model"),
    path("models/<str:name>/versions/<str:version>/", views.model_version, name="model_version"),
    path(
        "models/<str:name>/versions/<str:version>/strata.lock",
        views.model_version_lock,
        name="model_version_lock",
    ),
]
