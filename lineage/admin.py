"""The lineage tables in the Django admin, read-mostly: runs are recorded through
the services (API, CLI, OpenLineage, DVC), so the admin is for looking, not editing."""

from __future__ import annotations

from django.contrib import admin

from catalog.admin import ReadOnlyAdmin, VisibleDatasetsOnly
from lineage.models import Edge, IngestedEvent, Node, Run, Source


@admin.register(Node)
class NodeAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    list_display = ("id", "kind", "label", "created")
    list_filter = ("kind",)
    search_fields = ("label", "key")
    readonly_fields = ("kind", "key", "label", "version", "dataset", "created")


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("node_id", "name", "step", "status", "origin", "actor", "started", "ended")
    list_filter = ("step", "status", "origin")
    search_fields = ("name", "namespace", "external_id")
    raw_id_fields = ("node",)


@admin.register(Source)
class SourceAdmin(ReadOnlyAdmin):
    list_display = ("node_id", "uri", "version_tag", "owner")
    search_fields = ("uri", "name", "namespace")
    raw_id_fields = ("node",)


@admin.register(Edge)
class EdgeAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    list_display = ("id", "src", "dst", "created")
    dataset_paths = ("src__dataset", "dst__dataset")
    raw_id_fields = ("src", "dst")


@admin.register(IngestedEvent)
class IngestedEventAdmin(ReadOnlyAdmin):
    list_display = ("digest", "event_type", "event_time", "received")
    raw_id_fields = ("run",)
