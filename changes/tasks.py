"""Celery tasks of change requests: checking a pair of heads, and merging."""

from __future__ import annotations

from changes.services import requests
from config.celery import app


@app.task(acks_late=True, reject_on_worker_lost=True)
def change_check(change_id: int) -> None:
    """Work out a change request's dry run and built-in checks for its branches' heads."""
    requests.change_check(change_id)


@app.task(acks_late=True, reject_on_worker_lost=True)
def change_merge_run(change_id: int, actor: str) -> None:
    """Merge a change request a steward asked to merge, on the heads that were checked."""
    requests.change_merge_run(change_id, actor)
