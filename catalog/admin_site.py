"""The admin site: Strata's back office, and who may enter it.

`StrataAdminConfig` (settings) makes it Django's default site, `admin.site`, so
that every app registers its models on it as usual (`catalog.admin`).
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from catalog import permissions


class StrataAdminSite(admin.AdminSite):
    site_header = "Strata back office"
    site_title = "Strata admin"
    index_title = "Catalog, accounts and roles"
    site_url = "/"

    def has_permission(self, request: HttpRequest) -> bool:
        """Strata admins (by role), approvers (for rollback requests) and Django staff
        may open the admin; each model's admin decides what they see there."""
        user = request.user
        return bool(
            user.is_active
            and (
                user.is_staff
                or permissions.is_admin(user)
                or permissions.has_role(user, permissions.APPROVER)
            )
        )
