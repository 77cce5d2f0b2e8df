from django.apps import AppConfig


class LineageConfig(AppConfig):
    """Sources, runs, model versions and the lineage graph (built in the lineage issue)."""

    name = "lineage"
