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
]
