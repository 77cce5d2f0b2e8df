from __future__ import annotations

from django.apps import AppConfig

from catalog import hooks


class LifecycleConfig(AppConfig):
    """Retention, storage tiers, garbage collection, restores from cold storage and the cost report."""

    name = "lifecycle"

    def ready(self) -> None:
        hooks.restore_requested.register(restore_requested)
        hooks.restored_packs.register(restored_packs)


def restore_requested(pack_id: str, state, requested_for: str) -> None:
    """Follow a restore the catalog asked for (a pull) until the pack is readable."""
    from lifecycle.services.retention import pack_restore_track  # models load after the app registry

    pack_restore_track(pack_id=pack_id, state=state, requested_for=requested_for)


def restored_packs(pack_ids: list[str]) -> set[str]:
    """The packs among `pack_ids` whose restore has finished."""
    from lifecycle.models import PackRestore  # models load after the app registry

    ready = PackRestore.objects.filter(pack_id__in=pack_ids, state=PackRestore.State.READY)
    return set(ready.values_list("pack_id", flat=True))
