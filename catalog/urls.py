"""The dashboard's addresses. A version is named in them by its semantic version
(or its id); a file by its path inside the version."""

from __future__ import annotations

from django.urls import path

from catalog.views import merges
from catalog.views import pages as views

app_name = "catalog"

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("new/", views.dataset_new, name="dataset_new"),
    path("datasets/<str:name>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<str:name>/edit/", views.dataset_edit, name="dataset_edit"),
    path("datasets/<str:name>/upload/", views.upload, name="upload"),
    path("datasets/<str:name>/compare/", views.compare, name="compare"),
    path("datasets/<str:name>/merge/", merges.merge_new, name="merge_new"),
    path("datasets/<str:name>/merges/<str:merge_id>/", merges.merge_detail, name="merge_detail"),
    path("datasets/<str:name>/versions/<str:version_id>/", views.version_detail, name="version_detail"),
    path("datasets/<str:name>/versions/<str:version_id>/download.tar", views.version_tar, name="version_tar"),
    path(
        "datasets/<str:name>/versions/<str:version_id>/files/<path:file_path>",
        views.file_detail,
        name="file_detail",
    ),
    path(
        "datasets/<str:name>/versions/<str:version_id>/raw/<path:file_path>",
        views.file_download,
        name="file_download",
    ),
    path(
        "datasets/<str:name>/versions/<str:version_id>/thumbnail/<path:file_path>",
        views.file_thumbnail,
        name="file_thumbnail",
    ),
]
