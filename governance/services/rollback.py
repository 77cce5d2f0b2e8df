"""Rollback with four eyes: a steward asks, another person approves, a worker applies.

Applying a rollback never rewrites history: it makes a new commit on the branch
whose tree is the target's ("Rollback to 1.2.0: <reason>"), marks the versions it
undoes as rolled back, and leaves every pinned consumer untouched. The worker's
steps — restore cold packs, verify every byte, move the branch — are a state
machine on the request row (see `RollbackRequest`), each step safe to repeat, and
the last one done in a single transaction with the state change, so a worker
killed anywhere ends with the rollback applied exactly once or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from catalog import failpoints, permissions
from catalog.errors import Forbidden, NotFound, UserError
from catalog.models import AuditEvent, Branch, Dataset, Pack, Version
from catalog.selectors import version_log
from catalog.services import notifications
from catalog.services.commits import CommitContent, commit_on_head, version_commit
from catalog.services.datasets import actor_name
from catalog.services.jobs import job_send
from catalog.services.verify import store_verify
from catalog.store import DatabaseChunkIndex, file_chunks, get_backend, walk_tree
from governance.models import RollbackRequest
from registry.services.training import flag_models_trained_on

logger = logging.getLogger(__name__)
State = RollbackRequest.State
# How often a restoring rollback looks again at its cold packs.
RESTORE_POLL_SECONDS = 30


def _audit(request: RollbackRequest, action: str, actor: str, user=None, before=None, after=None) -> None:
    AuditEvent.objects.create(
        user=user,
        actor=actor,
        action=action,
        dataset=request.dataset,
        object_type="rollback",
        object_id=str(request.pk),
        before=before,
        after=after,
    )


def rollback_request(
    *, user: permissions.User, dataset: Dataset, branch: str, target: Version, reason: str, actor: str = ""
) -> RollbackRequest:
    """Ask to roll `branch` back to `target`, an earlier version in its history."""
    permissions.require_write(user, dataset)
    reason = reason.strip()
    if not reason:
        raise UserError("say why the branch should be rolled back: a reason is required.")
    branch_row = Branch.objects.filter(dataset=dataset, name=branch).select_related("head").first()
    if branch_row is None:
        raise NotFound(f"{dataset.name} has no branch {branch!r}.")
    if target.dataset_id != dataset.pk:
        raise UserError(f"version {target.short_id} is not a version of {dataset.name}.")
    if target.pk == branch_row.head_id:
        raise UserError(f"{target.semver} is already the head of {branch}; there is nothing to roll back.")
    history = {version.id for version in version_log(branch_row.head, limit=100_000)}
    if target.id not in history:
        raise UserError(
            f"{target.semver} is not in the history of {branch}; roll back only to an earlier version."
        )
    with transaction.atomic():
        request = RollbackRequest.objects.create(
            dataset=dataset,
            branch=branch,
            target=target,
            head=branch_row.head,
            reason=reason,
            requested_by=user if user is not None and user.is_authenticated else None,
            requester_name=actor_name(user, actor),
        )
        _audit(
            request,
            "rollback.request",
            request.requester_name,
            user,
            after={"branch": branch, "head": branch_row.head_id, "target": target.id, "reason": reason},
        )
        transaction.on_commit(lambda: notify(request.pk, "requested"))
    return request


def _pending(request_id: int, *, lock: bool = False) -> RollbackRequest:
    rows = RollbackRequest.objects.select_related("dataset", "target", "head")
    request = (rows.select_for_update() if lock else rows).filter(pk=request_id).first()
    if request is None:
        raise NotFound(f"there is no rollback request {request_id}.")
    return request


def rollback_approve(
    *, user: permissions.User, request_id: int, comment: str = "", actor: str = ""
) -> RollbackRequest:
    """Approve a pending request (an approver who did not ask for it); the worker
    takes it from there."""
    with transaction.atomic():
        request = _pending(request_id, lock=True)
        _check_decider(user, request, "approve")
        request.state = State.APPROVED
        _decide(request, user, comment, actor)
        _audit(
            request,
            "rollback.approve",
            request.decider_name,
            user,
            before={"state": "requested"},
            after={"state": "approved", "comment": comment},
        )

        def approved() -> None:
            notify(request.pk, "approved")
            enqueue(request.pk)

        transaction.on_commit(approved)
    return request


def rollback_reject(
    *, user: permissions.User, request_id: int, comment: str, actor: str = ""
) -> RollbackRequest:
    """Reject a pending request, saying why."""
    comment = comment.strip()
    if not comment:
        raise UserError("say why the rollback is rejected: a comment is required.")
    with transaction.atomic():
        request = _pending(request_id, lock=True)
        _check_decider(user, request, "reject")
        request.state = State.REJECTED
        _decide(request, user, comment, actor)
        _audit(
            request,
            "rollback.reject",
            request.decider_name,
            user,
            before={"state": "requested"},
            after={"state": "rejected", "comment": comment},
        )
        transaction.on_commit(lambda: notify(request.pk, "rejected"))
    return request


def _check_decider(user: permissions.User, request: RollbackRequest, verb: str) -> None:
    permissions.require_read(user, request.dataset)
    permissions.require_role(user, permissions.APPROVER, f"{verb} rollbacks")
    if user is not None and request.requested_by_id == user.pk:
        raise Forbidden(f"you asked for this rollback; another approver must {verb} it.")
    if request.state != State.REQUESTED:
        raise UserError(f"this rollback is already {request.get_state_display()}; it cannot be {verb}d now.")


def _decide(request: RollbackRequest, user: permissions.User, comment: str, actor: str) -> None:
    now = timezone.now()
    request.decided_by = user if user is not None and user.is_authenticated else None
    request.decider_name = actor_name(user, actor)
    request.decided = now
    request.decision_comment = comment
    request.state_changed = now
    request.save()


# -- the worker's state machine ---------------------------------------------------------


@dataclass(frozen=True)
class Step:
    state: str
    retry_in: float | None = None  # seconds until the worker should look again


def _move(request: RollbackRequest, from_state: str, to_state: str, **fields) -> bool:
    """Compare-and-swap the request's state; False if someone else moved it first."""
    moved = RollbackRequest.objects.filter(pk=request.pk, state=from_state).update(
        state=to_state, state_changed=timezone.now(), **fields
    )
    if moved:
        _audit(
            request, f"rollback.{to_state}", "worker", before={"state": from_state}, after={"state": to_state}
        )
    return bool(moved)


def _fail(request: RollbackRequest, from_state: str, error: str) -> Step:
    if _move(request, from_state, State.FAILED, error=error):
        transaction.on_commit(lambda: notify(request.pk, "failed"))
    return Step(State.FAILED)


def rollback_advance(*, request_id: int) -> Step:
    """Take one step of an approved rollback. Safe to call again at any time: a
    step already taken is not taken twice."""
    request = _pending(request_id)
    state = request.state
    if state == State.APPROVED:
        _move(request, State.APPROVED, State.RESTORING)
        return Step(State.RESTORING)
    if state == State.RESTORING:
        failpoints.hit("rollback.restoring")
        return _restore(request)
    if state == State.VERIFYING:
        failpoints.hit("rollback.verifying")
        report = store_verify(versions=[request.target], list_unreferenced=False)
        if not report.ok:
            return _fail(request, State.VERIFYING, f"the target does not verify: {report.broken[0]}")
        _move(request, State.VERIFYING, State.APPLYING)
        return Step(State.APPLYING)
    if state == State.APPLYING:
        failpoints.hit("rollback.applying")
        return _apply(request_id)
    return Step(state)


def _target_packs(version: Version) -> set[str]:
    files = [item.entry.digest for item in walk_tree(version.tree_id) if item.entry.is_file]
    chunk_ids = [chunk for chunks in file_chunks(files).values() for chunk in chunks]
    return {location.pack_id for location in DatabaseChunkIndex().locate(chunk_ids).values()}


def _restore(request: RollbackRequest) -> Step:
    """Ask for every cold pack of the target to be restored; move on once all read."""
    cold = list(Pack.objects.filter(id__in=_target_packs(request.target)).exclude(tier=Pack.Tier.HOT))
    backend = get_backend()
    waiting, longest = 0, 0.0
    for pack in cold:
        state = backend.restore_state(pack.id)
        if not state.readable:
            state = backend.request_restore(pack.id)
        if not state.readable:
            waiting += 1
            longest = max(longest, state.ready_in_seconds or RESTORE_POLL_SECONDS)
    if waiting:
        minutes = int(longest // 60) + 1
        RollbackRequest.objects.filter(pk=request.pk).update(
            progress=f"restoring {waiting} of {len(cold)} packs from cold storage; ready in about {minutes} min"
        )
        return Step(State.RESTORING, retry_in=min(max(longest, 0.5), RESTORE_POLL_SECONDS))
    _move(
        request, State.RESTORING, State.VERIFYING, progress=f"{len(cold)} cold packs readable" if cold else ""
    )
    return Step(State.VERIFYING)


def _apply(request_id: int) -> Step:
    """Commit the target's tree on the branch and mark what it undoes, all in one
    transaction with the state change: done exactly once."""

    with transaction.atomic():
        request = _pending(request_id, lock=True)
        if request.state != State.APPLYING:
            return Step(request.state)
        branch = (
            Branch.objects.select_for_update().filter(dataset=request.dataset, name=request.branch).first()
        )
        if branch is None or branch.head_id != request.head_id:
            return _fail(request, State.APPLYING, "branch moved since approval; ask again.")
        target = request.target
        undone = []
        for version in version_log(request.head, limit=100_000):
            if version.id == target.id:
                break
            undone.append(version)
        author = f"{request.requester_name} (approved by {request.decider_name})"
        commit = commit_on_head(
            user=None,
            dataset=request.dataset,
            branch_name=request.branch,
            head=request.head,
            author=author,
            message=f"Rollback to {target.semver}: {request.reason}",
        )
        commit.stage = target.stage
        commit.via = "rollback"  # approved by a second person: not a direct change
        commit.content = CommitContent.tree_of(target)
        result = version_commit(commit)
        Version.objects.filter(id__in=[v.id for v in undone]).update(
            rolled_back=True, rolled_back_reason=f"rolled back to {target.semver}: {request.reason}"
        )
        flagged = _flag_models(undone, request)
        # Dying here rolls the whole transaction back: nothing of the rollback stays.
        failpoints.hit("rollback.committing")
        RollbackRequest.objects.filter(pk=request.pk).update(
            state=State.DONE, state_changed=timezone.now(), result=result, progress=""
        )
        _audit(
            request,
            "rollback.done",
            "worker",
            before={"state": "applying", "head": request.head_id},
            after={
                "state": "done",
                "head": result.id,
                "rolled_back": [v.id for v in undone],
                "models_flagged": flagged,
            },
        )
        transaction.on_commit(lambda: notify(request.pk, "done"))
    return Step(State.DONE)


def _flag_models(undone: list[Version], request: RollbackRequest) -> list[str]:
    """Flag the model versions trained on data this rollback undoes."""
    return flag_models_trained_on(
        version_ids=[v.id for v in undone], reason=f"trained on data rolled back: {request.reason}"
    )


def enqueue(request_id: int) -> None:
    job_send("governance.tasks.rollback_execute", request_id)


def resume_stalled() -> int:
    """Queue every rollback that was in progress (after a worker restart)."""
    ids = list(
        RollbackRequest.objects.filter(state__in=RollbackRequest.IN_PROGRESS).values_list("pk", flat=True)
    )
    for request_id in ids:
        enqueue(request_id)
    return len(ids)


# -- notifications ----------------------------------------------------------------------


def notify(request_id: int, event: str) -> None:
    """Tell the approvers and the requester by e-mail, and the webhook if one is
    configured (``catalog.services.notifications``); never stops a rollback."""
    request = RollbackRequest.objects.select_related("dataset", "target").filter(pk=request_id).first()
    if request is None:
        return
    subject = (
        f"[Strata] rollback of {request.dataset.name}@{request.branch} to {request.target.semver}: {event}"
    )
    body = (
        f"{request.requester_name} asked to roll {request.dataset.name}@{request.branch} back to "
        f"{request.target.semver}.\nReason: {request.reason}\nState: {request.get_state_display()}\n"
        + (f"Decided by {request.decider_name}: {request.decision_comment}\n" if request.decider_name else "")
        + (f"Error: {request.error}\n" if request.error else "")
    )
    notifications.notify(
        what=f"rollback {request_id}",
        recipients=notifications.approvers_and(request.dataset, [request.requested_by]),
        subject=subject,
        body=body,
        payload={
            "event": f"rollback.{event}",
            "request": request.pk,
            "dataset": request.dataset.name,
            "branch": request.branch,
            "target": request.target.id,
            "state": request.state,
        },
    )
