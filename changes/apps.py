from __future__ import annotations

from django.apps import AppConfig

from catalog import hooks


class ChangesConfig(AppConfig):
    """Change requests: a branch proposed for merging, checked, approved and merged
    by a worker; and the protection rules that make a branch take changes only so."""

    name = "changes"

    def ready(self) -> None:
        # Services load after the app registry.
        from changes.services.protection import commit_guard
        from changes.services.requests import branch_committed, closed_branches

        hooks.commit_guards.register(commit_guard)
        hooks.committed.register(branch_committed)
        hooks.experiment_branches.register(closed_branches)
