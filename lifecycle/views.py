"""The cost page and the retention runs pages.

Thin like every view: parse, call one service or selector, render. A run's page
polls its status with htmx every two seconds while a worker applies it; the
partial answers 286 once the run has finished, which stops the polling.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from catalog import permissions
from catalog.errors import NotFound
from catalog.views.errors import flash_error
from catalog.views.htmx import HtmxHttpRequest
from lifecycle.models import RetentionPolicy, RetentionRun
from lifecycle.selectors import retention_expiring
from lifecycle.services.costs import cost_report, timeline_svg
from lifecycle.services.retention import retention_approve, retention_cancel, retention_plan
from lifecycle.tasks import retention_apply


@login_required
def cost_page(request: HttpRequest) -> HttpResponse:
    """What the store holds and costs, and every version's retention status."""
    report = cost_report(user=request.user)
    return render(
        request,
        "lifecycle/cost.html",
        {
            "section": "cost",
            "report": report,
            "data": report.as_dict(),
            # Built by our own code from numbers and dates only: nothing user-typed.
            "chart": mark_safe(timeline_svg(report)),  # noqa: S308
            "policies": RetentionPolicy.objects.all(),
            "can_plan": permissions.is_admin(request.user),
        },
    )


@login_required
def retention_list(request: HttpRequest) -> HttpResponse:
    runs = list(RetentionRun.objects.all()[:50])
    return render(
        request,
        "lifecycle/retention_list.html",
        {"section": "cost", "runs": runs, "can_plan": permissions.is_admin(request.user)},
    )


def _run(run_id: int) -> RetentionRun:
    run = RetentionRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"there is no retention run {run_id}.")
    return run


@login_required
def retention_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = _run(run_id)
    expiring, expiring_hidden = retention_expiring(user=request.user, run=run)
    context = {
        "section": "cost",
        "run": run,
        "expiring": expiring,
        "expiring_hidden": expiring_hidden,
        "finished": run.state
        in (RetentionRun.State.DONE, RetentionRun.State.FAILED, RetentionRun.State.CANCELLED),
        "can_approve": run.state == RetentionRun.State.AWAITING
        and permissions.has_role(request.user, permissions.APPROVER),
    }
    if request.htmx:
        response = render(request, "lifecycle/_retention_status.html", context)
        if context["finished"]:
            response.status_code = 286  # htmx: stop polling
        return response
    return render(request, "lifecycle/retention_detail.html", context)


@login_required
@require_POST
def retention_new(request: HttpRequest) -> HttpResponse:
    """An admin asks for a run now (its dry-run report comes first)."""
    with flash_error(request):
        run = retention_plan(user=request.user)
        if run.state == RetentionRun.State.APPROVED:
            transaction.on_commit(lambda: retention_apply.delay(run.pk))
        return redirect("lifecycle:retention_detail", run_id=run.pk)
    return redirect("lifecycle:retention_list")


@login_required
@require_POST
def retention_decide(request: HttpRequest, run_id: int, decision: str) -> HttpResponse:
    run = _run(run_id)
    with flash_error(request):
        if decision == "approve":
            retention_approve(user=request.user, run=run)
            transaction.on_commit(lambda: retention_apply.delay(run.pk))
        else:
            retention_cancel(user=request.user, run=run)
    return redirect("lifecycle:retention_detail", run_id=run.pk)
