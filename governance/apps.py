from __future__ import annotations

from collections.abc import Iterator

from django.apps import AppConfig

from catalog import hooks
from catalog.hooks import Protection


class GovernanceConfig(AppConfig):
    """Changes to data that need a second person: rollback with four-eyes approval."""

    name = "governance"

    def ready(self) -> None:
        hooks.protections.register(rollback_targets)


def rollback_targets() -> Iterator:
    """A pending rollback's target is kept, and readable, until the rollback ends (invariant 5)."""
    from governance.models import RollbackRequest  # models load after the app registry

    pending = RollbackRequest.objects.exclude(state__in=RollbackRequest.FINISHED).values_list(
        "target_id", "pk"
    )
    for version_id, request_id in pending:
        yield Protection(version_id, f"target of pending rollback #{request_id}", stay_readable=True)
