"""Change requests and branch protection in the Django admin.

Protection rules are edited here through the same services as on the dataset
page (`protection_set`, `protection_delete`), so every change is checked and
audited. Change requests, their checks and approvals are read here; a change
request is closed through `change_close`, and approved and merged on its page.
A restricted dataset's rows are out of sight of whoever cannot read it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from catalog.admin import ReadOnlyAdmin, StrataAdmin, VisibleDatasetsOnly
from catalog.errors import UserError
from changes.models import Approval, BranchProtection, ChangeRequest, Check
from changes.services.protection import protection_delete, protection_set
from changes.services.requests import change_close


@admin.register(BranchProtection)
class BranchProtectionAdmin(VisibleDatasetsOnly, StrataAdmin):
    """Protection rules, saved and removed through the services (each audited). A
    rule's dataset and pattern are fixed once made: protect another pattern instead."""

    list_display = ["dataset", "pattern", "refuse_direct", "required_approvals", "checks", "regression"]
    list_filter = ["refuse_direct", "regression"]
    search_fields = ["dataset__name", "pattern"]
    list_select_related = ["dataset"]
    autocomplete_fields = ["dataset"]
    fields = ["dataset", "pattern", "refuse_direct", "required_approvals", "required_checks", "regression"]

    def get_readonly_fields(self, request: HttpRequest, obj: BranchProtection | None = None) -> list[str]:
        return ["dataset", "pattern", "created"] if obj is not None else ["created"]

    @admin.display(description="required checks")
    def checks(self, rule: BranchProtection) -> str:
        return ", ".join(rule.required_checks or []) or "—"

    # A refusal rises: the error pages answer it with its sentence, nothing saved.
    def save_model(self, request: HttpRequest, obj: BranchProtection, form: Any, change: bool) -> None:
        saved = protection_set(
            user=request.user,
            dataset=obj.dataset,
            pattern=obj.pattern,
            refuse_direct=obj.refuse_direct,
            required_checks=list(obj.required_checks or []),
            required_approvals=obj.required_approvals,
            regression=obj.regression,
        )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: BranchProtection) -> None:
        protection_delete(user=request.user, dataset=obj.dataset, pattern=obj.pattern)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[BranchProtection]) -> None:
        for rule in queryset.select_related("dataset"):
            self.delete_model(request, rule)


@admin.register(ChangeRequest)
class ChangeRequestAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    """Change requests, read-only but for closing (through `change_close`); they are
    opened, approved and merged on their pages, the API and the command line."""

    list_display = ["id", "dataset", "title", "source", "target", "state", "author_name", "created", "page"]
    list_filter = ["state", "created"]
    search_fields = ["=id", "dataset__name", "title", "source", "target", "author_name"]
    list_select_related = ["dataset"]
    readonly_fields = [field.name for field in ChangeRequest._meta.fields]
    date_hierarchy = "created"
    show_full_result_count = False
    actions = ["close"]

    @admin.display(description="page")
    def page(self, change: ChangeRequest) -> str:
        return format_html('<a href="{}">open</a>', reverse("changes:change_detail", args=[change.pk]))

    @admin.action(description="Close the selected change requests without merging")
    def close(self, request: HttpRequest, queryset: QuerySet[ChangeRequest]) -> None:
        closed = 0
        for change in queryset.select_related("dataset"):
            try:
                change_close(user=request.user, change=change)
                closed += 1
            except UserError as refused:
                self.message_user(request, f"#{change.pk}: {refused}", messages.ERROR)
        if closed:
            self.message_user(request, f"Closed {closed} change request(s).", messages.SUCCESS)


@admin.register(Check)
class CheckAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    """What the worker and CI systems said about each head of a change request."""

    dataset_paths = ("change__dataset",)
    list_display = ["change", "name", "state", "builtin", "reporter", "head_short", "updated"]
    list_filter = ["state", "builtin", "name"]
    search_fields = ["=change__id", "change__dataset__name", "name", "reporter"]
    list_select_related = ["change", "change__dataset"]
    readonly_fields = [field.name for field in Check._meta.fields]
    show_full_result_count = False

    @admin.display(description="head", ordering="head")
    def head_short(self, check: Check) -> str:
        return check.head_id[:12]


@admin.register(Approval)
class ApprovalAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    """Approvers' yeses, each to one head of a change request."""

    dataset_paths = ("change__dataset",)
    list_display = ["change", "user", "head_short", "created"]
    search_fields = ["=change__id", "change__dataset__name", "user__username"]
    list_select_related = ["change", "user"]
    readonly_fields = [field.name for field in Approval._meta.fields]

    @admin.display(description="head", ordering="head")
    def head_short(self, approval: Approval) -> str:
        return approval.head_id[:12]
