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
        hooks.merged.register(merge_recorded)


def consumed_versions() -> Iterator:
    """A dataset version a recorded run consumed is kept: the run must stay reproducible."""
    from lineage.models import Edge, Node  # models load after the app registry

    consumed = Edge.objects.filter(src__kind=Node.Kind.VERSION, dst__kind=Node.Kind.RUN).values_list(
        "src__version_id", "dst__label"
    )
    for version_id, run_label in consumed:
        yield Protection(version_id, f"consumed by run {run_label}")


def merge_recorded(version, target_head, source_head, user, actor: str) -> None:
    """A merge is a run of the graph: both heads in, the merge version out."""
    from lineage.services.runs import merge_record  # services load after the app registry

    merge_record(version=version, target_head=target_head, source_head=source_head, user=user, actor=actor)
