from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """Changes to data that need a second person: rollback with four-eyes approval."""

    name = "governance"
