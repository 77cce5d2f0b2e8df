from __future__ import annotations

from collections.abc import Iterator

from django.apps import AppConfig

from catalog import hooks
from catalog.hooks import Protection


class RegistryConfig(AppConfig):
    """Model versions, the dataset versions they trained on, lock files and reproduction."""

    name = "registry"

    def ready(self) -> None:
        hooks.protections.register(model_pins)
        # Model versions are nodes of the lineage graph, which imports nothing of
        # the registry: tell it how to draw, describe and make them.
        from registry import graph  # it imports the models, loaded after the app registry

        graph.register()


def model_pins() -> Iterator:
    """A dataset version a model version trained or was evaluated on is kept (invariant 5)."""
    from registry.models import ModelPin  # models load after the app registry

    for version_id, model_name, model_version in ModelPin.objects.values_list(
        "version_id", "model__name", "model__version"
    ):
        yield Protection(version_id, f"pinned by model {model_name} {model_version}")
