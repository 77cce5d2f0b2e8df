"""Celery tasks of the catalog. Each takes ids, calls one service and records the
outcome where pages can read it."""

from __future__ import annotations

import logging

from config.celery import app

from .services.verify import store_verify

logger = logging.getLogger(__name__)


@app.task(acks_late=True)
def verify_store() -> dict[str, object]:
    """Re-hash every reachable chunk; log what is broken (scheduled nightly)."""
    report = store_verify()
    if report.ok:
        logger.info("verify: %s chunks in %s packs OK", report.chunks, report.packs)
    else:
        for problem in report.broken:
            logger.error("verify: %s", problem)
    return {"ok": report.ok, "broken": len(report.broken)}
