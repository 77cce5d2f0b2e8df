"""The Django admin as Strata's back office.

Who gets in: Strata's admins — members of the "admin" role group, and superusers —
without needing Django's `is_staff` flag or per-model permissions, because roles are
Strata's single source of who may do what (`catalog.permissions`). The site itself,
which says who may enter, is `catalog.admin_site`.

What it changes: users and their roles (groups), keywords, and what is said about a
dataset — the latter through `dataset_update`, so the change is checked and written
to the audit log like any other. Content-addressed rows, versions, branches, tags and
the audit log itself are read-only here: they change only through services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from catalog import permissions
from catalog.domain.formatting import human_bytes
from catalog.errors import UserError
from catalog.models import (
    ApiToken,
    AuditEvent,
    Branch,
    Chunk,
    Dataset,
    FileManifest,
    IdempotencyKey,
    Keyword,
    Pack,
    Tag,
    Tree,
    Upload,
    UploadLease,
    UploadPart,
    Version,
)
from catalog.services.datasets import dataset_update
from catalog.services.tokens import token_revoke

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations  # a development requirement, for the types only


class _MemberCount(TypedDict):
    member_count: int


class _DatasetCount(TypedDict):
    dataset_count: int


class _VersionCount(TypedDict):
    version_count: int | None


class StrataAdmin(admin.ModelAdmin):
    """Admins by role may see and change what the admin offers for a model."""

    def _admin(self, request) -> bool:
        return permissions.is_admin(request.user)

    def has_module_permission(self, request) -> bool:
        return self._admin(request) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._admin(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return self._admin(request) or super().has_add_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._admin(request) or super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._admin(request) or super().has_delete_permission(request, obj)


class ReadOnlyAdmin(StrataAdmin):
    """Rows that only services write: look, never touch."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def visible_rows(queryset: QuerySet, user: permissions.User, paths: tuple[str, ...]) -> QuerySet:
    """Only the rows whose dataset, reached by each of `paths` (``"dataset"``,
    ``"version__dataset"``), the user may read; a row with no dataset stays."""
    if permissions.is_admin(user):
        return queryset
    visible = permissions.visible_datasets(user)
    for path in paths:
        queryset = queryset.filter(Q(**{f"{path}__isnull": True}) | Q(**{f"{path}__in": visible}))
    return queryset


class VisibleDatasetsOnly:
    """For the admins of rows that belong to a dataset: a restricted dataset the
    user cannot read does not exist for them here either — not in a list, a
    search, a change page or an action (`catalog.permissions`). Staff and
    approvers enter the admin without being able to read every dataset."""

    dataset_paths: tuple[str, ...] = ("dataset",)

    def get_queryset(self, request):
        return visible_rows(super().get_queryset(request), request.user, self.dataset_paths)  # type: ignore[misc]


class VisibleDatasetNamesOnly:
    """`VisibleDatasetsOnly` for rows that name their dataset rather than point at
    it (an upload, whose dataset may not exist yet), and the rows of those."""

    dataset_name_path = "dataset_name"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)  # type: ignore[misc]
        if permissions.is_admin(request.user):
            return queryset
        hidden = Dataset.objects.exclude(pk__in=permissions.visible_datasets(request.user))
        return queryset.exclude(**{f"{self.dataset_name_path}__in": hidden.values("name")})


def _size(value: int | None) -> str:
    return "—" if value is None else human_bytes(value)


# -- accounts and roles ---------------------------------------------------------------------


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class StrataUserAdmin(StrataAdmin, UserAdmin):
    """Users, with their roles in the list: a role is membership of its group."""

    list_display = ["username", "email", "roles", "is_active", "is_superuser", "last_login", "date_joined"]
    list_filter = ["groups", "is_active", "is_superuser", "is_staff"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles and groups")
    def roles(self, user: User) -> str:
        return ", ".join(sorted(group.name for group in user.groups.all())) or "—"


@admin.register(Group)
class StrataGroupAdmin(StrataAdmin, GroupAdmin):
    list_display = ["name", "is_role", "members"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("user"))

    @admin.display(boolean=True, description="role")
    def is_role(self, group: Group) -> bool:
        return group.name in permissions.ROLES

    @admin.display(ordering="member_count")
    def members(self, group: WithAnnotations[Group, _MemberCount]) -> int:
        return group.member_count


# -- datasets ------------------------------------------------------------------------------


@admin.register(Keyword)
class KeywordAdmin(StrataAdmin):
    list_display = ["name", "dataset_count"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(dataset_count=Count("datasets"))

    @admin.display(ordering="dataset_count", description="datasets")
    def dataset_count(self, keyword: WithAnnotations[Keyword, _DatasetCount]) -> int:
        return keyword.dataset_count


@admin.register(Dataset)
class DatasetAdmin(VisibleDatasetsOnly, StrataAdmin):
    """Datasets are made by their first push or upload, and never deleted here
    (their versions are protected); what is said about them is edited through
    `dataset_update`, which checks the role and writes the audit event."""

    list_display = ["name", "visibility", "owner_names", "keyword_names", "version_count", "updated"]
    list_filter = ["visibility", "keywords"]
    search_fields = ["name", "description", "keywords__name", "owners__username"]
    autocomplete_fields = ["owners", "groups", "keywords"]
    readonly_fields = ["name", "default_branch", "created", "updated"]
    fields = [
        "name",
        "description",
        "visibility",
        "owners",
        "groups",
        "keywords",
        "default_branch",
        "created",
        "updated",
    ]
    ordering = ["-updated"]
    show_full_result_count = False
    dataset_paths = ("pk",)

    def get_queryset(self, request):
        versions = (
            Version.objects.filter(dataset=OuterRef("pk"))
            .order_by()
            .values("dataset")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(version_count=Subquery(versions))
            .prefetch_related("owners", "keywords")
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="owners")
    def owner_names(self, dataset: Dataset) -> str:
        return ", ".join(owner.get_username() for owner in dataset.owners.all()) or "—"

    @admin.display(description="keywords")
    def keyword_names(self, dataset: Dataset) -> str:
        return ", ".join(keyword.name for keyword in dataset.keywords.all()) or "—"

    @admin.display(ordering="version_count", description="versions")
    def version_count(self, dataset: WithAnnotations[Dataset, _VersionCount]) -> int:
        return dataset.version_count or 0

    def save_model(self, request, obj, form, change) -> None:
        """Saved in `save_related`, together with owners, groups and keywords."""

    def save_related(self, request, form, formsets, change) -> None:
        data = form.cleaned_data
        try:
            dataset_update(
                user=request.user,
                dataset=Dataset.objects.get(pk=form.instance.pk),
                description=data["description"],
                visibility=data["visibility"],
                keywords=[keyword.name for keyword in data["keywords"]],
                owners=[owner.get_username() for owner in data["owners"]],
                groups=[group.name for group in data["groups"]],
            )
        except UserError as error:
            messages.error(request, f"Nothing was saved: {error}")


@admin.register(Version)
class VersionAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    list_display = [
        "dataset",
        "semver",
        "stage",
        "golden",
        "rolled_back",
        "author",
        "created",
        "file_count",
        "size",
        "short_id",
    ]
    list_filter = ["stage", "golden", "rolled_back", "created"]
    search_fields = ["=id", "dataset__name", "semver", "message", "author"]
    list_select_related = ["dataset"]
    date_hierarchy = "created"
    show_full_result_count = False

    @admin.display(ordering="logical_bytes")
    def size(self, version: Version) -> str:
        return _size(version.logical_bytes)


@admin.register(Branch)
class BranchAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    list_display = ["dataset", "name", "head_semver", "updated"]
    search_fields = ["dataset__name", "name"]
    list_select_related = ["dataset", "head"]

    @admin.display(description="head")
    def head_semver(self, branch: Branch) -> str:
        return branch.head.semver


@admin.register(Tag)
class TagAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    list_display = ["dataset", "name", "version_semver", "created", "created_by"]
    search_fields = ["dataset__name", "name", "created_by"]
    list_select_related = ["dataset", "version"]

    @admin.display(description="version")
    def version_semver(self, tag: Tag) -> str:
        return tag.version.semver


@admin.register(AuditEvent)
class AuditEventAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    list_display = ["created", "actor", "action", "dataset", "object_type", "object_id"]
    list_filter = ["action", "object_type", "created"]
    search_fields = ["actor", "object_id", "dataset__name", "action"]
    list_select_related = ["dataset"]
    date_hierarchy = "created"
    show_full_result_count = False


# -- the store -------------------------------------------------------------------------------


@admin.register(Pack)
class PackAdmin(ReadOnlyAdmin):
    list_display = ["id", "stored_size", "chunk_count", "tier", "created"]
    list_filter = ["tier", "created"]
    search_fields = ["=id"]
    show_full_result_count = False

    @admin.display(ordering="size", description="size")
    def stored_size(self, pack: Pack) -> str:
        return _size(pack.size)


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = ["id", "pack", "offset", "stored_length", "raw_length", "codec"]
    search_fields = ["=id", "=pack__id"]
    show_full_result_count = False


@admin.register(Tree)
class TreeAdmin(ReadOnlyAdmin):
    list_display = ["id", "entry_count"]
    search_fields = ["=id"]
    exclude = ["data"]
    show_full_result_count = False


@admin.register(FileManifest)
class FileManifestAdmin(ReadOnlyAdmin):
    list_display = ["digest", "file_size"]
    search_fields = ["=digest"]
    exclude = ["chunk_ids"]
    show_full_result_count = False

    @admin.display(ordering="size", description="size")
    def file_size(self, manifest: FileManifest) -> str:
        return _size(manifest.size)


# -- access and remote pushes --------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(StrataAdmin):
    """Tokens are made by their owners (the secret is shown once, to them); here
    they can be looked up and revoked."""

    list_display = ["user", "name", "prefix", "created", "expires", "last_used", "revoked"]
    list_filter = ["revoked", "expires"]
    search_fields = ["user__username", "name", "prefix"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "prefix", "created", "expires", "last_used", "revoked"]
    exclude = ["secret_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset:
            token_revoke(token_id=token.pk, actor=request.user)
        messages.success(request, f"Revoked {queryset.count()} token(s).")


@admin.register(Upload)
class UploadAdmin(VisibleDatasetNamesOnly, ReadOnlyAdmin):
    list_display = ["id", "dataset_name", "branch", "user", "created", "expires", "committed"]
    list_filter = ["created"]
    search_fields = ["=id", "dataset_name", "user__username"]
    list_select_related = ["user", "committed"]


@admin.register(UploadLease)
class UploadLeaseAdmin(VisibleDatasetNamesOnly, ReadOnlyAdmin):
    list_display = ["upload", "pack", "uploaded"]
    dataset_name_path = "upload__dataset_name"
    list_filter = ["uploaded"]
    search_fields = ["=upload__id", "=pack__id"]


@admin.register(UploadPart)
class UploadPartAdmin(VisibleDatasetNamesOnly, ReadOnlyAdmin):
    list_display = ["upload", "number", "entry_count"]
    dataset_name_path = "upload__dataset_name"
    search_fields = ["=upload__id"]
    exclude = ["data"]


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["user", "key", "status_code", "created"]
    list_filter = ["status_code", "created"]
    search_fields = ["user__username", "key"]
    list_select_related = ["user"]
