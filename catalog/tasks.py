"""Celery tasks of the catalog: the nightly store verification and the verification
of remote pushes. Each takes ids, calls one service and records the outcome where
pages can read it."""

from __future__ import annotations

import logging

from catalog.services import merges
from catalog.services.remote import verification
from catalog.services.verify import store_verify
from config.celery import app
from strata_store.errors import StoreError

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


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def upload_verify(self, upload_id: str) -> str:
    """Verify a remote push's bytes and commit it (see
    ``catalog.services.remote.verification``). A store that cannot be read just
    now is retried with backoff; every other outcome is recorded on the upload."""
    try:
        return verification.upload_verify(upload_id=upload_id)
    except StoreError as error:
        raise self.retry(exc=error, countdown=min(300, 5 * 2**self.request.retries)) from None


@app.task(acks_late=True)
def uploads_resume() -> int:
    """Queue every upload left verifying (a worker that died, a lost message)."""
    stalled = verification.resume_stalled()
    for upload_id in stalled:
        upload_verify.delay(upload_id)
    return len(stalled)


@app.task(acks_late=True, reject_on_worker_lost=True)
def merge_run(merge_id: str) -> None:
    """Work out a merge too large to wait for (``catalog.services.merges``); its
    progress and outcome are recorded on the merge for its page."""
    merges.merge_run(merge_id)


@app.task(acks_late=True)
def merges_resume() -> int:
    """Queue every merge left queued or running (a worker that died, a lost message)."""
    stalled = merges.merges_stalled()
    for merge_id in stalled:
        merge_run.delay(merge_id)
    return len(stalled)
