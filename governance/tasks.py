"""Celery tasks of governance: apply an approved rollback, and pick up rollbacks a
dead worker left in progress. Each takes ids, calls one service and records the
outcome on the request row, where pages read it."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

from config.celery import app
from governance.services.rollback import resume_stalled, rollback_advance

logger = logging.getLogger(__name__)


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def rollback_execute(self, request_id: int) -> str:
    """Advance an approved rollback to its end, step by step.

    Each step is recorded on the request row before the next begins, so running
    this twice, or after a worker died half-way, continues where it stopped. While
    cold packs are being restored it re-queues itself to look again later.
    """
    while True:
        step = rollback_advance(request_id=request_id)
        if step.state in ("done", "failed", "rejected", "requested"):
            logger.info("rollback %s: %s", request_id, step.state)
            return step.state
        if step.retry_in is not None:
            raise self.retry(countdown=step.retry_in)


@app.task(acks_late=True)
def rollback_resume() -> int:
    """Queue every rollback left in progress (a worker that died, a lost message)."""
    return resume_stalled()


@worker_ready.connect
def _resume_after_restart(sender: object = None, **kwargs: object) -> None:
    # A worker killed mid-rollback leaves the request in its last state: pick it up.
    rollback_resume.delay()
