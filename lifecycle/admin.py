"""Retention in the Django admin: admins edit the policies (each save audited),
approvers approve a waiting sweep, and everyone allowed in sees the restores from
cold storage that pulls asked for."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from catalog import permissions
from catalog.admin import ReadOnlyAdmin, StrataAdmin
from catalog.errors import UserError
from catalog.models import AuditEvent
from lifecycle.models import PackRestore, RetentionPolicy, RetentionRun
from lifecycle.services.retention import retention_approve
from lifecycle.tasks import retention_apply


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(StrataAdmin):
    """Retention policies: admins edit them (each save is audited)."""

    list_display = (
        "pattern",
        "position",
        "keep_forever",
        "expire_after_days",
        "warm_after_days",
        "cold_after_days",
    )
    list_editable = ("position",)
    ordering = ("position", "pattern")
    readonly_fields = ("updated",)

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: Any, change: bool) -> None:
        assert request.user.is_authenticated  # the admin lets no one else in
        before = None
        if change and obj.pk:
            old = RetentionPolicy.objects.filter(pk=obj.pk).values().first()
            before = {k: v for k, v in (old or {}).items() if k != "updated"}
        obj.updated = timezone.now()
        super().save_model(request, obj, form, change)
        AuditEvent.objects.create(
            actor=request.user.get_username(),
            user=request.user,
            action="retention_policy.change" if change else "retention_policy.create",
            object_type="retention_policy",
            object_id=obj.pattern,
            before=before,
            after={
                "keep_forever": obj.keep_forever,
                "expire_after_days": obj.expire_after_days,
                "warm_after_days": obj.warm_after_days,
                "cold_after_days": obj.cold_after_days,
            },
        )


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyAdmin):
    """Retention runs, read-only; approvers approve a waiting sweep from here."""

    list_display = ("pk", "created", "state", "trigger", "sweep_bytes", "approver_name")
    list_filter = ("state", "trigger")
    actions = ["approve"]

    def _approver(self, request: HttpRequest) -> bool:
        return permissions.has_role(request.user, permissions.APPROVER)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._approver(request) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: RetentionRun | None = None) -> bool:
        return self._approver(request) or super().has_view_permission(request, obj)

    @admin.action(description="Approve the selected retention runs")
    def approve(self, request: HttpRequest, queryset: QuerySet[RetentionRun]) -> None:
        for run in queryset:
            try:
                retention_approve(user=request.user, run=run)
                transaction.on_commit(partial(retention_apply.delay, run.pk))
                self.message_user(request, f"Retention run {run.pk} approved.", messages.SUCCESS)
            except UserError as refused:
                self.message_user(request, f"Run {run.pk}: {refused}", messages.ERROR)


@admin.register(PackRestore)
class PackRestoreAdmin(ReadOnlyAdmin):
    """Restores from cold storage asked for by pulls, and whether they are done."""

    list_display = ("pack", "requested", "requested_for", "state", "expected_ready", "ready")
    list_filter = ("state",)
