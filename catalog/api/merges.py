"""Endpoints for merging one branch of a dataset into another.

A merge whose tables are small is worked out while the request waits: 201 with
the version it made, 200 for a dry run, 409 with every conflict when it cannot
merge (nothing is written). A larger one is queued for a worker: 202, and its
state, progress and outcome at ``GET .../merges/{id}``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Status

from catalog.api.common import readable_dataset, router, user_of, version_out
from catalog.api.schemas import ErrorOut, MergeIn, MergeOut
from catalog.errors import NotFound
from catalog.models import Merge
from catalog.services.merges import merge_request

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


def merge_out(merge: Merge) -> dict[str, Any]:
    return {
        "id": merge.id,
        "dataset": merge.dataset.name,
        "source": merge.source,
        "target": merge.target,
        "dry_run": merge.dry_run,
        "state": merge.state,
        "progress": merge.progress,
        "version": version_out(merge.version) if merge.version else None,
        "result": merge.result,
        "error": merge.error,
        "created": merge.created,
        "updated": merge.updated,
    }


@router.post(
    "/datasets/{name}/merges",
    response={200: MergeOut, 201: MergeOut, 202: MergeOut, 409: dict[str, Any], **ERRORS},
    tags=["refs"],
)
def create_merge(request: HttpRequest, name: str, payload: MergeIn):
    """Merge branch `source` into `into` (stewards; a dry run needs read access only).

    Rows of a table changed on both sides merge by its key column: `key` for every
    table, `keys` by path, else the `key_column` the dataset card declares."""
    keys = dict(payload.keys)
    if payload.key:
        keys[""] = payload.key
    merge = merge_request(
        user=user_of(request),
        dataset_name=name,
        source=payload.source,
        into=payload.into,
        strategy=payload.strategy,
        path_strategies=dict(payload.path_strategies),
        keys=keys,
        message=payload.message,
        dry_run=payload.dry_run,
    )
    body = merge_out(merge)
    if not merge.finished:
        return Status(202, body)
    if merge.state == Merge.State.CONFLICTS and not merge.dry_run:
        count = (merge.result or {}).get("conflict_count", 0)
        message = f"the merge has {count} conflicts; nothing was merged."
        return Status(409, {**body, "error": message, "merge_conflicts": True})
    if merge.state == Merge.State.FAILED:
        return Status(409, {**body, "error": merge.error})
    return Status(201 if merge.version_id else 200, body)


@router.get(
    "/datasets/{name}/merges/{merge_id}",
    response={200: MergeOut, 401: ErrorOut, 404: ErrorOut},
    tags=["refs"],
)
def merge_detail(request: HttpRequest, name: str, merge_id: str):
    """A merge's state, progress and outcome."""
    dataset = readable_dataset(request, name)
    merge = (
        Merge.objects.filter(id=merge_id[:32], dataset=dataset).select_related("dataset", "version").first()
    )
    if merge is None:
        raise NotFound(f"{dataset.name} has no merge {merge_id[:40]!r}.")
    return Status(200, merge_out(merge))
