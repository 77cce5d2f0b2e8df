"""Change request endpoints of the REST API (mounted at /api/v1/).

A CI system reports what it found about a change's head with
``POST /changes/{id}/checks`` and a steward's token; the rest is the change
request's life: open, read, approve, merge, close, and the protection rules of
a dataset's branches. Errors are the API's: ``{"error": "one sentence"}``.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from catalog.api.common import readable_dataset, user_of
from changes.models import BranchProtection, ChangeRequest, Check
from changes.services import protection, requests

router = Router(tags=["changes"])


class ChangeIn(Schema):
    source: str = Field(min_length=1, max_length=200)
    into: str | None = Field(None, min_length=1, max_length=200)
    title: str = Field("", max_length=200)
    description: str = Field("", max_length=50_000)
    code_repo: str = Field(
        "", max_length=500, description="the git repository of the code this change goes with"
    )
    code_ref: str = Field("", max_length=200, description="its commit or branch")


class CheckIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    state: Literal["pending", "running", "passed", "failed"]
    summary: str = Field("", max_length=10_000)
    metrics: dict[str, Any] = Field(default_factory=dict, description="metric name → number")
    url: str = Field("", max_length=1000)
    head: str | None = Field(
        None, min_length=7, max_length=64, description="the version id (or a prefix) the check ran on"
    )
    model: str | None = Field(None, max_length=100, description="the model these metrics are of")


class ApprovalIn(Schema):
    comment: str = Field("", max_length=10_000)


class ProtectionIn(Schema):
    refuse_direct: bool = True
    required_checks: list[str] = Field(default_factory=list)
    required_approvals: int = Field(1, ge=0, le=10)
    regression: Literal["approve", "block"] = "approve"


def check_out(check: Check) -> dict[str, Any]:
    return {
        "name": check.name,
        "state": check.state,
        "builtin": check.builtin,
        "summary": check.summary,
        "metrics": check.metrics,
        "model": check.model,
        "url": check.url,
        "head": check.head_id,
        "reporter": check.reporter,
        "updated": check.updated,
    }


def change_out(change: ChangeRequest, *, detail: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": change.pk,
        "dataset": change.dataset.name,
        "source": change.source,
        "target": change.target,
        "title": change.title,
        "description": change.description,
        "author": change.author_name,
        "code_repo": change.code_repo,
        "code_ref": change.code_ref,
        "state": change.state,
        "head": change.head_id,
        "target_head": change.target_head_id,
        "merged_version": change.merged_version_id,
        "error": change.error,
        "created": change.created,
        "updated": change.updated,
    }
    if detail:
        standing = requests.change_standing(change)
        body |= {
            "mergeable": standing.mergeable,
            "blockers": standing.blockers,
            "checks": [check_out(check) for check in standing.checks],
            "approvals": [
                {"user": a.user.get_username(), "comment": a.comment, "created": a.created}
                for a in standing.approvals
            ],
            "stale_approvals": standing.stale_approvals,
            "dry_run": change.dry_run.result if change.dry_run is not None else None,
        }
    return body


def protection_out(row: BranchProtection) -> dict[str, Any]:
    return {
        "pattern": row.pattern,
        "refuse_direct": row.refuse_direct,
        "required_checks": row.required_checks,
        "required_approvals": row.required_approvals,
        "regression": row.regression,
    }


ERRORS = {400: dict, 401: dict, 403: dict, 404: dict, 409: dict, 422: dict}


@router.post("/datasets/{name}/changes", response={201: dict, **ERRORS})
def open_change(request: HttpRequest, name: str, payload: ChangeIn):
    """Propose merging branch `source` into `into` (stewards); its checks start at once."""
    change = requests.change_open(
        user=user_of(request),
        dataset_name=name,
        source=payload.source,
        into=payload.into,
        title=payload.title,
        description=payload.description,
        code_repo=payload.code_repo,
        code_ref=payload.code_ref,
    )
    return Status(201, change_out(change, detail=True))


@router.get("/datasets/{name}/changes", response={200: list[dict], **ERRORS})
def list_changes(request: HttpRequest, name: str, state: str = Query("open", max_length=16)):
    """A dataset's change requests in one state (open, merging, merged, closed, or all)."""
    dataset = readable_dataset(request, name)
    rows = ChangeRequest.objects.filter(dataset=dataset).select_related("dataset")
    if state != "all":
        rows = rows.filter(state=state)
    return Status(200, [change_out(change) for change in rows[:500]])


@router.get("/changes/{number}", response={200: dict, **ERRORS})
def get_change(request: HttpRequest, number: int):
    """A change request with its checks, approvals, dry run and whether it may merge."""
    return Status(200, change_out(requests.change_by_id(user=user_of(request), number=number), detail=True))


@router.post("/changes/{number}/checks", response={201: dict, **ERRORS})
def report_check(request: HttpRequest, number: int, payload: CheckIn):
    """Report a check on the change's head (a CI system, with a steward's token)."""
    user = user_of(request)
    change = requests.change_by_id(user=user, number=number)
    check = requests.check_report(
        user=user,
        change=change,
        name=payload.name,
        state=payload.state,
        summary=payload.summary,
        metrics=payload.metrics,
        url=payload.url,
        head=payload.head,
        model=payload.model,
    )
    return Status(201, check_out(check))


@router.post("/changes/{number}/approvals", response={201: dict, **ERRORS})
def approve_change(request: HttpRequest, number: int, payload: ApprovalIn):
    """Approve the change's current head (approvers; never the author)."""
    user = user_of(request)
    change = requests.change_by_id(user=user, number=number)
    requests.change_approve(user=user, change=change, comment=payload.comment)
    return Status(201, change_out(change, detail=True))


@router.post("/changes/{number}/merge", response={202: dict, **ERRORS})
def merge_change(request: HttpRequest, number: int):
    """Ask a worker to merge the change (stewards), once its checks and approvals allow."""
    user = user_of(request)
    change = requests.change_merge(user=user, change=requests.change_by_id(user=user, number=number))
    return Status(202, change_out(change, detail=True))


@router.post("/changes/{number}/close", response={200: dict, **ERRORS})
def close_change(request: HttpRequest, number: int):
    """Close the change request without merging (stewards)."""
    user = user_of(request)
    change = requests.change_close(user=user, change=requests.change_by_id(user=user, number=number))
    return Status(200, change_out(change))


@router.get("/datasets/{name}/protections", response={200: list[dict], **ERRORS})
def list_protections(request: HttpRequest, name: str):
    """The protection rules of a dataset's branches."""
    dataset = readable_dataset(request, name)
    return Status(200, [protection_out(row) for row in BranchProtection.objects.filter(dataset=dataset)])


@router.put("/datasets/{name}/protections/{path:pattern}", response={200: dict, **ERRORS})
def set_protection(request: HttpRequest, name: str, pattern: str, payload: ProtectionIn):
    """Protect the branches matching `pattern` (a name or a shell pattern; stewards)."""
    dataset = readable_dataset(request, name)
    row = protection.protection_set(
        user=user_of(request),
        dataset=dataset,
        pattern=pattern,
        refuse_direct=payload.refuse_direct,
        required_checks=payload.required_checks,
        required_approvals=payload.required_approvals,
        regression=payload.regression,
    )
    return Status(200, protection_out(row))


@router.delete("/datasets/{name}/protections/{path:pattern}", response={204: None, **ERRORS})
def delete_protection(request: HttpRequest, name: str, pattern: str):
    """Remove a protection rule (stewards)."""
    dataset = readable_dataset(request, name)
    protection.protection_delete(user=user_of(request), dataset=dataset, pattern=pattern)
    return Status(204, None)
