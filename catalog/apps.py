from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """Datasets, versions, branches, tags and the content-addressed store behind them."""

    name = "catalog"
