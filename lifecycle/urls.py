"""The cost page's and the retention runs' addresses, under /cost/ and /retention/."""

from __future__ import annotations

from django.urls import path

from lifecycle import views

app_name = "lifecycle"

urlpatterns = [
    path("cost/", views.cost_page, name="cost"),
    path("retention/", views.retention_list, name="retention_list"),
    path("retention/new/", views.retention_new, name="retention_new"),
    path("retention/<int:run_id>/", views.retention_detail, name="retention_detail"),
    path(
        "retention/<int:run_id>/approve/",
        views.retention_decide,
        {"decision": "approve"},
        name="retention_approve",
    ),
    path(
        "retention/<int:run_id>/cancel/",
        views.retention_decide,
        {"decision": "cancel"},
        name="retention_cancel",
    ),
]
