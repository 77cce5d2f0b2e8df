"""The configuration of Django's admin app, as the project sets it (settings)."""

from django.contrib.admin.apps import AdminConfig


class StrataAdminConfig(AdminConfig):
    """Django's admin, whose default site (`admin.site`, where every app registers
    its models) is Strata's own: it says who may enter (`catalog.admin_site`)."""

    default_site = "catalog.admin_site.StrataAdminSite"
