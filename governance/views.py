"""Rollback pages: ask, review, approve or reject, and follow the worker live.

Thin like every view: parse, call one service or selector, render. The request
page polls its status partial with htmx every two seconds and the partial answers
286 once the rollback has finished, which stops the polling.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog import permissions, selectors
from catalog.errors import NotFound, UserError
from catalog.models import Branch
from catalog.selectors import diff
from catalog.views.errors import flash_error, form_error
from catalog.views.htmx import HtmxHttpRequest
from catalog.views.pages import _dataset_for
from governance.models import RollbackRequest
from governance.services.rollback import rollback_approve, rollback_reject, rollback_request
from registry.models import ModelPin


def _trained_on(version_ids: list[str]):
    """Model versions trained or evaluated on these dataset versions."""
    return list(
        ModelPin.objects.filter(version_id__in=version_ids)
        .select_related("model", "version")
        .order_by("model__name")
    )


def _undone(head, target):
    undone = []
    for version in selectors.version_log(head, limit=10_000):
        if version.id == target.id:
            break
        undone.append(version)
    return undone


@login_required
def rollback_new(request: HttpRequest, name: str) -> HttpResponse:
    """Ask for a rollback: pick the target, see what would change, say why."""
    dataset = _dataset_for(request, name)
    branch_name = request.POST.get("branch") or request.GET.get("branch") or dataset.default_branch
    branch = Branch.objects.filter(dataset=dataset, name=branch_name).select_related("head").first()
    if branch is None:
        raise NotFound(f"{dataset.name} has no branch {branch_name}.")
    history = selectors.version_log(branch.head, limit=200)
    target_ref = request.POST.get("target") or request.GET.get("target") or ""
    target = next((v for v in history if target_ref in (v.id, v.semver)), None) if target_ref else None
    # The target is picked in the form: one that is not there is said beside it.
    with form_error(not_found=True) as refused:
        if request.method == "POST":
            if target is None:
                raise UserError("pick the version to roll back to from the branch's history.")
            made = rollback_request(
                user=request.user, dataset=dataset, branch=branch.name, target=target,
                reason=request.POST.get("reason", ""),
            )  # fmt: skip
            messages.success(request, "Rollback requested: an approver has been asked to review it.")
            return redirect("governance:rollback_detail", made.pk)
    changes = (
        diff.diff_versions(branch.head, target) if target is not None and target != branch.head else None
    )
    undone = _undone(branch.head, target) if target is not None else []
    context = {
        "dataset": dataset,
        "branch": branch,
        "history": history[1:],
        "target": target,
        "changes": changes,
        "undone": undone,
        "models": _trained_on([v.id for v in undone]),
        "can_request": permissions.has_role(request.user, permissions.STEWARD),
        "reason": request.POST.get("reason", ""),
        "error": refused.message,
    }
    return render(request, "governance/rollback_new.html", context, status=refused.status)


def _request_for(request: HttpRequest, request_id: int) -> RollbackRequest:
    rollback = RollbackRequest.objects.select_related("dataset", "target", "head", "result").filter(
        pk=request_id
    )
    found = rollback.first()
    if found is None or not permissions.can_read(request.user, found.dataset):
        raise NotFound("there is no such rollback request.")
    return found


def _detail_context(request: HttpRequest, rollback: RollbackRequest) -> dict:
    user = request.user
    return {
        "rollback": rollback,
        "dataset": rollback.dataset,
        "can_decide": rollback.state == RollbackRequest.State.REQUESTED
        and permissions.has_role(user, permissions.APPROVER)
        and rollback.requested_by_id != user.pk,
        "is_requester": rollback.requested_by_id == user.pk,
        "steps": _steps(rollback),
    }


def _steps(rollback: RollbackRequest) -> list[tuple[str, str]]:
    """Each step of the state machine with its status: done, current, todo or failed."""
    order = ["requested", "approved", "restoring", "verifying", "applying", "done"]
    if rollback.state == RollbackRequest.State.REJECTED:
        return [("requested", "done"), ("rejected", "failed")]
    if rollback.state == RollbackRequest.State.FAILED:
        return [("requested", "done"), ("approved", "done"), ("failed", "failed")]
    current = order.index(rollback.state)
    finished = rollback.state == RollbackRequest.State.DONE
    return [
        (name, "done" if index < current or finished else "current" if index == current else "todo")
        for index, name in enumerate(order)
    ]


@login_required
def rollback_detail(request: HtmxHttpRequest, request_id: int) -> HttpResponse:
    """A rollback request and where it stands; approvers decide here."""
    rollback = _request_for(request, request_id)
    context = _detail_context(request, rollback)
    if request.htmx:
        response = render(request, "governance/_rollback_status.html", context)
        # 286 tells htmx to stop polling: nothing will change any more.
        if rollback.finished:
            response.status_code = 286
        return response
    undone = _undone(rollback.head, rollback.target)
    context.update(
        changes=diff.diff_versions(rollback.head, rollback.target),
        undone=undone,
        models=_trained_on([v.id for v in undone]),
    )
    return render(request, "governance/rollback_detail.html", context)


@login_required
@require_POST
def rollback_decide(request: HttpRequest, request_id: int, decision: str) -> HttpResponse:
    rollback = _request_for(request, request_id)
    comment = request.POST.get("comment", "")
    with flash_error(request):
        if decision == "approve":
            rollback_approve(user=request.user, request_id=rollback.pk, comment=comment)
            messages.success(request, "Approved: a worker is applying the rollback now.")
        else:
            rollback_reject(user=request.user, request_id=rollback.pk, comment=comment)
            messages.info(request, "Rejected: the requester has been told why.")
    return redirect("governance:rollback_detail", rollback.pk)


@login_required
def rollback_list(request: HttpRequest) -> HttpResponse:
    """Every rollback the user may see, waiting ones first."""
    visible = permissions.visible_datasets(request.user)
    rows = RollbackRequest.objects.filter(dataset__in=visible).select_related("dataset", "target")
    waiting = list(rows.filter(state=RollbackRequest.State.REQUESTED).order_by("created"))
    recent = list(rows.exclude(state=RollbackRequest.State.REQUESTED).order_by("-created")[:50])
    return render(request, "governance/rollback_list.html", {"waiting": waiting, "recent": recent})
