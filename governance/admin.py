"""Rollback requests in the Django admin. Approvers decide here as on the
dashboard, through the same services, so the four-eyes rule holds here too."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog import permissions
from catalog.admin import ReadOnlyAdmin, VisibleDatasetsOnly
from catalog.errors import UserError
from governance.models import RollbackRequest
from governance.services.rollback import rollback_approve, rollback_reject


@admin.register(RollbackRequest)
class RollbackRequestAdmin(VisibleDatasetsOnly, ReadOnlyAdmin):
    """Approvers decide here as on the dashboard, through the same services (so the
    four-eyes rule holds here too)."""

    list_display = ["id", "dataset", "branch", "target", "state", "requester_name", "decider_name", "created"]
    list_filter = ["state", "created"]
    search_fields = ["dataset__name", "branch", "reason", "requester_name"]
    list_select_related = ["dataset", "target"]
    readonly_fields = [field.name for field in RollbackRequest._meta.fields]
    actions = ["approve", "reject"]

    def _approver(self, request: HttpRequest) -> bool:
        return permissions.has_role(request.user, permissions.APPROVER)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._approver(request) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: RollbackRequest | None = None) -> bool:
        return self._approver(request) or super().has_view_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return super().get_actions(request) if self._approver(request) else {}

    def _decide(self, request: HttpRequest, queryset: QuerySet[RollbackRequest], verb: str) -> None:
        done = 0
        for rollback in queryset:
            try:
                if verb == "approve":
                    rollback_approve(
                        user=request.user, request_id=rollback.pk, comment="approved in the admin"
                    )
                else:
                    rollback_reject(
                        user=request.user, request_id=rollback.pk, comment="rejected in the admin"
                    )
                done += 1
            except UserError as refused:
                self.message_user(request, f"Request {rollback.pk}: {refused}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} rollback request(s) {verb}d.", messages.SUCCESS)

    @admin.action(description="Approve the selected rollback requests")
    def approve(self, request: HttpRequest, queryset: QuerySet[RollbackRequest]) -> None:
        self._decide(request, queryset, "approve")

    @admin.action(description="Reject the selected rollback requests")
    def reject(self, request: HttpRequest, queryset: QuerySet[RollbackRequest]) -> None:
        self._decide(request, queryset, "reject")
