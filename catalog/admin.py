"""The Django admin as a back office for the catalog. Content-addressed rows and
versions are read-only here: they change only through services."""

from __future__ import annotations

from django.contrib import admin

from .models import ApiToken, AuditEvent, Branch, Chunk, Dataset, Keyword, Pack, Tag, Version


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "visibility", "default_branch", "created", "updated"]
    list_filter = ["visibility"]
    search_fields = ["name", "description"]
    filter_horizontal = ["owners", "groups", "keywords"]
    readonly_fields = ["name", "created", "updated"]


@admin.register(Version)
class VersionAdmin(ReadOnlyAdmin):
    list_display = [
        "dataset",
        "semver",
        "stage",
        "author",
        "created",
        "file_count",
        "logical_bytes",
        "short_id",
    ]
    list_filter = ["stage", "dataset"]
    search_fields = ["id", "dataset__name", "message", "author", "semver"]
    list_select_related = ["dataset"]
    date_hierarchy = "created"


@admin.register(Branch)
class BranchAdmin(ReadOnlyAdmin):
    list_display = ["dataset", "name", "head", "updated"]
    search_fields = ["dataset__name", "name"]
    list_select_related = ["dataset", "head__dataset"]


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    list_display = ["dataset", "name", "version", "created", "created_by"]
    search_fields = ["dataset__name", "name"]
    list_select_related = ["dataset", "version__dataset"]


@admin.register(Pack)
class PackAdmin(ReadOnlyAdmin):
    list_display = ["id", "size", "chunk_count", "tier", "created"]
    list_filter = ["tier"]
    search_fields = ["id"]


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = ["id", "pack", "offset", "stored_length", "raw_length", "codec"]
    search_fields = ["id", "pack__id"]
    show_full_result_count = False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created", "actor", "action", "dataset", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor", "object_id", "dataset__name"]
    date_hierarchy = "created"


@admin.register(Keyword)
class KeywordAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created", "expires", "last_used", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["prefix", "secret_hash", "created", "last_used"]
