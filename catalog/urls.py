"""The dashboard's addresses. A version is named in them by its semantic version
(or its id); a file by its path inside the version."""

from django.urls import path

from cards import views as views_cards
from catalog.views import pages as views
from governance import views as views_rollback
from lifecycle import views as views_costs

app_name = "catalog"

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("new/", views.dataset_new, name="dataset_new"),
    path("datasets/<str:name>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<str:name>/edit/", views.dataset_edit, name="dataset_edit"),
    path("datasets/<str:name>/upload/", views.upload, name="upload"),
    path("datasets/<str:name>/compare/", views.compare, name="compare"),
    path("datasets/<str:name>/rollback/", views_rollback.rollback_new, name="rollback_new"),
    path("rollbacks/", views_rollback.rollback_list, name="rollback_list"),
    path("cost/", views_costs.cost_page, name="cost"),
    path("retention/", views_costs.retention_list, name="retention_list"),
    path("retention/new/", views_costs.retention_new, name="retention_new"),
    path("retention/<int:run_id>/", views_costs.retention_detail, name="retention_detail"),
    path(
        "retention/<int:run_id>/approve/",
        views_costs.retention_decide,
        {"decision": "approve"},
        name="retention_approve",
    ),
    path(
        "retention/<int:run_id>/cancel/",
        views_costs.retention_decide,
        {"decision": "cancel"},
        name="retention_cancel",
    ),
    path("rollbacks/<int:request_id>/", views_rollback.rollback_detail, name="rollback_detail"),
    path(
        "rollbacks/<int:request_id>/approve/",
        views_rollback.rollback_decide,
        {"decision": "approve"},
        name="rollback_approve",
    ),
    path(
        "rollbacks/<int:request_id>/reject/",
        views_rollback.rollback_decide,
        {"decision": "reject"},
        name="rollback_reject",
    ),
    path("datasets/<str:name>/versions/<str:version_id>/", views.version_detail, name="version_detail"),
    path("datasets/<str:name>/versions/<str:version_id>/download.tar", views.version_tar, name="version_tar"),
    path("datasets/<str:name>/card/edit/", views_cards.card_edit, name="card_edit"),
    path("datasets/<str:name>/card/import/", views_cards.card_upload, name="card_upload"),
    path("datasets/<str:name>/split/", views_cards.split_new, name="split_new"),
    path("datasets/<str:name>/versions/<str:version_id>/card/", views_cards.card_detail, name="card_detail"),
    path(
        "datasets/<str:name>/versions/<str:version_id>/card/README.md",
        views_cards.card_download,
        name="card_download",
    ),
    path(
        "datasets/<str:name>/versions/<str:version_id>/golden/",
        views_cards.version_golden,
        name="version_golden",
    ),
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
