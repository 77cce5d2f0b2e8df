"""The ops app: no models, only wiring made at start-up."""

from __future__ import annotations

from django.apps import AppConfig

from catalog import hooks
from ops.metrics import store_transferred


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # The Celery signal handlers (request id into tasks, task context and
        # metrics) must be connected in every process that publishes or runs tasks;
        # the web reaches config.celery only lazily, so connect them here too.
        from ops import celery  # noqa: F401  # importing it connects them, a side effect for ready()

        # The store's bytes in and out are counted where the catalog moves them;
        # the catalog cannot import ops (it sits below), so ops listens.
        hooks.transferred.register(store_transferred)
