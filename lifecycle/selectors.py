"""Reads of the lifecycle: what a retention run expires, as a given user may see it."""

from __future__ import annotations

from catalog import permissions
from catalog.models import Version
from lifecycle.models import RetentionRun


def retention_expiring(*, user: permissions.User, run: RetentionRun) -> tuple[list[dict], int]:
    """The versions a retention run expires that `user` may see, and how many others.

    A restricted dataset the user cannot read does not exist for them, so its
    versions are counted, not named (admins see all). Two queries at most."""
    items = run.report.get("expiring", [])
    if not items or permissions.is_admin(user):
        return items, 0
    readable = set(
        Version.objects.filter(
            id__in=[item.get("version") for item in items],
            dataset__in=permissions.visible_datasets(user),
        ).values_list("id", flat=True)
    )
    visible = [item for item in items if item.get("version") in readable]
    return visible, len(items) - len(visible)
