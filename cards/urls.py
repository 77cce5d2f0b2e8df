"""The dataset card pages' addresses, the split form's and golden marking's, under
a dataset (/datasets/<name>/...) and a version of it."""

from __future__ import annotations

from django.urls import path

from cards import views

app_name = "cards"

urlpatterns = [
    path("datasets/<str:name>/card/edit/", views.card_edit, name="card_edit"),
    path("datasets/<str:name>/card/import/", views.card_upload, name="card_upload"),
    path("datasets/<str:name>/split/", views.split_new, name="split_new"),
    path("datasets/<str:name>/versions/<str:version_id>/card/", views.card_detail, name="card_detail"),
    path(
        "datasets/<str:name>/versions/<str:version_id>/card/README.md",
        views.card_download,
        name="card_download",
    ),
    path(
        "datasets/<str:name>/versions/<str:version_id>/golden/",
        views.version_golden,
        name="version_golden",
    ),
]
