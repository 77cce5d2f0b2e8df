from __future__ import annotations

from collections.abc import Iterator

from django.apps import AppConfig

from catalog import hooks
from catalog.hooks import Protection


class LineageConfig(AppConfig):
    """Sources, runs and the lineage graph between them and dataset versions."""

    name = "lineage"

    def ready(self) -> None:
        hooks.protections.register(consumed_versions)


def consumed_versions() -> Iterator:
    """A dataset version a recorded run consumed is kept: the run must stay reproducible."""
    from lineage.models import Edge, Node  # models load after the app registry

    consumed = Edge.objects.filter(src__kind=Node.Kind.VERSION, dst__kind=Node.Kind.RUN).values_list(
        "src__version_id", "dst__label"
    )
    for version_id, run_label in consumed:
        yield Protection(version_id, f"consumed by run {run_label}")
