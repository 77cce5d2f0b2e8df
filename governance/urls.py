"""The rollback pages' addresses: asking from a dataset, and the requests under
/rollbacks/."""

from __future__ import annotations

from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [
    path("datasets/<str:name>/rollback/", views.rollback_new, name="rollback_new"),
    path("rollbacks/", views.rollback_list, name="rollback_list"),
    path("rollbacks/<int:request_id>/", views.rollback_detail, name="rollback_detail"),
    path(
        "rollbacks/<int:request_id>/approve/",
        views.rollback_decide,
        {"decision": "approve"},
        name="rollback_approve",
    ),
    path(
        "rollbacks/<int:request_id>/reject/",
        views.rollback_decide,
        {"decision": "reject"},
        name="rollback_reject",
    ),
]
