from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Model versions, the dataset versions they trained on, lock files and reproduction."""

    name = "registry"
