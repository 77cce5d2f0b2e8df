"""Celery tasks of the catalog. Each takes ids, calls one service and records the
outcome where pages can read it."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

from catalog.services.verify import store_verify
from config.celery import app

logger = logging.getLogger(__name__)


@app.task(acks_late=True)
def verify_store() -> dict[str, object]:
    """Re-hash every reachable chunk and file; log what is broken; remove the spool
    files older than a day that killed pushes left (scheduled nightly).

    Versions retention expired are skipped: their data is gone on purpose. Cold
    packs are listed, not read, so the nightly run never starts a restore."""
    report = store_verify()
    if report.ok:
        logger.info("verify: %s chunks in %s packs OK", report.chunks, report.packs)
    else:
        for problem in report.broken:
            logger.error("verify: %s", problem)
    if report.expired:
        logger.info("verify: %s expired versions not checked", len(report.expired))
    if report.cold_packs:
        logger.info("verify: %s cold packs not checked (restore to verify)", len(report.cold_packs))
    removed = [spool for spool in report.spool_files if spool.removed]
    if removed:
        logger.info(
            "verify: removed %s spool files (%s bytes) left by interrupted pushes",
            len(removed),
            sum(spool.size for spool in removed),
        )
    for spool in report.spool_files:
        if not spool.removed:
            logger.warning("verify: could not remove spool file %s", spool.path)
    return {
        "ok": report.ok,
        "broken": len(report.broken),
        "mismatched_files": len(report.mismatched_files),
        "expired": len(report.expired),
        "cold_packs": len(report.cold_packs),
        "spool_files_removed": len(removed),
    }


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def rollback_execute(self, request_id: int) -> str:
    """Advance an approved rollback to its end, step by step.

    Each step is recorded on the request row before the next begins, so running
    this twice, or after a worker died half-way, continues where it stopped. While
    cold packs are being restored it re-queues itself to look again later.
    """
    from governance.services.rollback import rollback_advance

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
    from governance.services.rollback import resume_stalled

    return resume_stalled()


@worker_ready.connect
def _resume_after_restart(sender=None, **kwargs) -> None:
    # A worker killed mid-rollback leaves the request in its last state: pick it up.
    rollback_resume.delay()


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def retention_apply(self, run_id: int) -> str:
    """Apply an approved retention run's plan. The run row records its phase, so a
    second delivery, or one after the worker died, continues where it stopped."""
    from lifecycle.services.retention import retention_advance

    run = retention_advance(run_id=run_id)
    logger.info("retention run %s: %s", run_id, run.state)
    return run.state


@app.task(acks_late=True)
def retention_scheduled() -> int:
    """Beat's daily run: plan, record the dry-run report, and apply it at once
    unless the sweep is large enough to wait for an approver. Also re-queues
    runs a dead worker left behind."""
    from django.db import transaction

    from lifecycle.services.retention import resume_stalled, retention_plan

    for stalled in resume_stalled():
        retention_apply.delay(stalled)
    run = retention_plan(trigger="schedule")
    if run.state == "approved":
        transaction.on_commit(lambda: retention_apply.delay(run.pk))
    return run.pk


@app.task(acks_late=True)
def retention_resume() -> int:
    """Queue every retention run left approved or applying (a worker that died)."""
    from lifecycle.services.retention import resume_stalled

    stalled = resume_stalled()
    for run_id in stalled:
        retention_apply.delay(run_id)
    return len(stalled)


@worker_ready.connect
def _resume_retention_after_restart(sender=None, **kwargs) -> None:
    # A worker killed mid-run leaves the run in its phase: the next worker re-applies it.
    retention_resume.delay()


@app.task(acks_late=True)
def restores_poll() -> int:
    """Mark cold-pack restores that have finished (scheduled every few minutes)."""
    from lifecycle.services.retention import restores_poll as poll

    return poll()


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def upload_verify(self, upload_id: str) -> str:
    """Verify a remote push's bytes and commit it (see
    ``catalog.services.remote.verification``). A store that cannot be read just
    now is retried with backoff; every other outcome is recorded on the upload."""
    from catalog.services.remote.verification import upload_verify as verify
    from strata_store.errors import StoreError

    try:
        return verify(upload_id=upload_id)
    except StoreError as error:
        raise self.retry(exc=error, countdown=min(300, 5 * 2**self.request.retries)) from None


@app.task(acks_late=True)
def uploads_resume() -> int:
    """Queue every upload left verifying (a worker that died, a lost message)."""
    from catalog.services.remote.verification import resume_stalled

    stalled = resume_stalled()
    for upload_id in stalled:
        upload_verify.delay(upload_id)
    return len(stalled)
