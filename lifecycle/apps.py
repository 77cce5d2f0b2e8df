from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """Retention, storage tiers, garbage collection, restores from cold storage and the cost report."""

    name = "lifecycle"
