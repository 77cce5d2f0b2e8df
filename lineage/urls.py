from django.urls import path

from lineage import views

app_name = "lineage"

urlpatterns = [
    path("lineage/", views.index, name="index"),
    path("lineage/nodes/<int:node_id>/", views.node_page, name="node"),
    path("lineage/nodes/<int:node_id>/graph.svg", views.node_export, {"fmt": "svg"}, name="export_svg"),
    path("lineage/nodes/<int:node_id>/graph.json", views.node_export, {"fmt": "json"}, name="export_json"),
    path("lineage/versions/<str:version_id>/", views.version_page, name="version"),
    path("lineage/runs/new/", views.run_new, name="run_new"),
    path("lineage/compare/", views.compare, name="compare"),
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
