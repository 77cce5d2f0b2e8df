"""Model versions in the Django admin, read-only: a model version is registered
through the service (client, API, CLI, DVC import) and never changes."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from catalog import permissions
from catalog.admin import ReadOnlyAdmin, VisibleDatasetsOnly
from registry.models import ModelPin, ModelVersion


class ModelPinInline(VisibleDatasetsOnly, admin.TabularInline):
    model = ModelPin
    dataset_paths = ("version__dataset",)
    extra = 0
    can_delete = False
    raw_id_fields = ("version", "run")
    readonly_fields = ("role", "version", "requested", "run", "evaluation")

    def has_view_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return permissions.is_admin(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """Model versions are registered through the service (client, API, CLI,
    DVC import) and never change: the admin shows them."""

    list_display = ("node_id", "name", "version", "created", "origin", "actor", "flagged")
    list_filter = ("origin",)
    search_fields = ("name", "version", "code_commit")
    raw_id_fields = ("node", "predecessor")
    inlines = [ModelPinInline]

    @admin.display(boolean=True, description="regression")
    def flagged(self, obj: ModelVersion) -> bool:
        return obj.flagged
