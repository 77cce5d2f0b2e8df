"""Celery tasks of the lifecycle: apply retention runs, plan the daily one, pick up
runs a dead worker left behind, and follow restores from cold storage. Each takes
ids, calls one service and records the outcome on its row, where pages read it."""

from __future__ import annotations

import logging

from celery.signals import worker_ready
from django.db import transaction

from config.celery import app
from lifecycle.services.retention import restores_poll as restores_mark_ready
from lifecycle.services.retention import resume_stalled, retention_advance, retention_plan

logger = logging.getLogger(__name__)


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def retention_apply(self, run_id: int) -> str:
    """Apply an approved retention run's plan. The run row records its phase, so a
    second delivery, or one after the worker died, continues where it stopped."""
    run = retention_advance(run_id=run_id)
    logger.info("retention run %s: %s", run_id, run.state)
    return run.state


@app.task(acks_late=True)
def retention_scheduled() -> int:
    """Beat's daily run: plan, record the dry-run report, and apply it at once
    unless the sweep is large enough to wait for an approver. Also re-queues
    runs a dead worker left behind."""
    for stalled in resume_stalled():
        retention_apply.delay(stalled)
    run = retention_plan(trigger="schedule")
    if run.state == "approved":
        transaction.on_commit(lambda: retention_apply.delay(run.pk))
    return run.pk


@app.task(acks_late=True)
def retention_resume() -> int:
    """Queue every retention run left approved or applying (a worker that died)."""
    stalled = resume_stalled()
    for run_id in stalled:
        retention_apply.delay(run_id)
    return len(stalled)


@worker_ready.connect
def _resume_retention_after_restart(sender: object = None, **kwargs: object) -> None:
    # A worker killed mid-run leaves the run in its phase: the next worker re-applies it.
    retention_resume.delay()


@app.task(acks_late=True)
def restores_poll() -> int:
    """Mark cold-pack restores that have finished (scheduled every few minutes)."""
    return restores_mark_ready()
