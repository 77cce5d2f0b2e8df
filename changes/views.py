"""Change request pages: a dataset's change requests and the form to open one; a
request's page — what it waits for, its checks and the metric gate, its approvals,
the merge dry run and the models it affects — with approve, merge and close; and
the protection rules of a dataset's branches, shown on the dataset page.

Thin like every view: parse, call the services of ``changes.services``, render.
Who may do what is decided there; a refusal rises to the error pages, or is shown
beside the form with its status (``form_error``). A request's page polls its live
part with htmx while a worker checks a new head or merges, and the partial answers
286 once nothing is left to follow, which stops the polling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, Count, Q, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from catalog import permissions, selectors
from catalog.errors import UserError
from catalog.models import Branch, Dataset
from catalog.selectors.merges import MergeOverview, merge_overview
from catalog.views.errors import Refusal, form_error
from catalog.views.htmx import HtmxHttpRequest
from catalog.views.pages import _dataset_for
from changes.checks import BUILTIN_CHECKS
from changes.models import BranchProtection, ChangeRequest, Check
from changes.services import requests
from changes.services.cards import card_change
from changes.services.gate import GATE_CHECK, models_trained_on
from changes.services.protection import protection_delete, protection_set
from registry.models import ModelPin, ModelVersion

# Longer input than this is not a branch, a title or a reference anyone typed;
# the services refuse what is still too long, in a sentence.
_NAME_CHARS = 200
_TEXT_CHARS = 50_000
# Change requests listed on a dataset's page of them, newest first within a state.
LIST_SIZE = 200
# How often a request's page asks again: while a worker checks or merges, and
# while a CI system's check says it is still pending or running.
POLL_WORKER = "2s"
POLL_CI = "10s"

STATE_FILTERS = ("open", "merged", "closed", "all")


# -- the change requests of a dataset -----------------------------------------------------


@dataclass(slots=True)
class OpenForm:
    """What a steward typed to open a change request (posted, or the defaults)."""

    source: str = ""
    into: str = ""
    title: str = ""
    description: str = ""
    code_repo: str = ""
    code_ref: str = ""

    @classmethod
    def posted(cls, request: HttpRequest) -> OpenForm:
        def text(name: str, limit: int = _NAME_CHARS + 1) -> str:
            return request.POST.get(name, "").strip()[:limit]

        return cls(
            source=text("source"),
            into=text("into"),
            title=text("title"),
            description=request.POST.get("description", "")[: _TEXT_CHARS + 1],
            code_repo=text("code_repo", 501),
            code_ref=text("code_ref"),
        )


@login_required
@require_http_methods(["GET", "POST"])
def change_list(request: HttpRequest, name: str) -> HttpResponse:
    """A dataset's change requests, open ones first, filtered by state; stewards
    open one here (the request's page follows, its checks queued)."""
    dataset = _dataset_for(request, name)
    branches = selectors.upload_choices(dataset)
    others = [branch for branch in branches if branch != dataset.default_branch]
    form = OpenForm(source=others[0] if others else "", into=dataset.default_branch)
    refused = Refusal()
    if request.method == "POST":
        form = OpenForm.posted(request)
        # The branches are picked in the form: one that is not there is its mistake.
        with form_error(not_found=True) as refused:
            change = requests.change_open(
                user=request.user,
                dataset_name=dataset.name,
                source=form.source,
                into=form.into or None,
                title=form.title,
                description=form.description,
                code_repo=form.code_repo,
                code_ref=form.code_ref,
            )
            messages.success(request, f"Opened change request #{change.pk}.")
            return redirect("changes:change_detail", number=change.pk)
    state = request.GET.get("state", "")
    state = state if state in STATE_FILTERS else ""
    rows = ChangeRequest.objects.filter(dataset=dataset)
    counts = rows.aggregate(
        open=Count("pk", filter=Q(state__in=requests.OPEN_STATES)),
        merged=Count("pk", filter=Q(state=ChangeRequest.State.MERGED)),
        closed=Count("pk", filter=Q(state=ChangeRequest.State.CLOSED)),
        all=Count("pk"),
    )
    if state == "open":
        rows = rows.filter(state__in=requests.OPEN_STATES)
    elif state in ("merged", "closed"):
        rows = rows.filter(state=state)
    # Open and merging first, then the rest; newest first within each.
    waiting = Case(When(state__in=requests.OPEN_STATES, then=Value(0)), default=Value(1))
    changes = list(
        rows.annotate(waiting=waiting)
        .select_related("head", "target_head", "merged_version")
        .order_by("waiting", "-created")[:LIST_SIZE]
    )
    shown = counts[state or "all"]
    context = {
        "dataset": dataset,
        "changes": changes,
        "counts": counts,
        "state": state,
        "filters": [("", "All", counts["all"])]
        + [(value, value.capitalize(), counts[value]) for value in STATE_FILTERS[:-1]],
        "unlisted": max(shown - len(changes), 0),
        "can_open": selectors.can_write(request.user, dataset),
        "branches": branches,
        "form": form,
        "error": refused.message,
    }
    return render(request, "changes/change_list.html", context, status=refused.status)


# -- a change request -----------------------------------------------------------------------


@dataclass(slots=True)
class GateRow:
    """One metric of one model as the metric gate compared it: the model version's
    own value and the value CI measured on the change's head."""

    model: str
    version: str
    metric: str
    before: float
    after: float
    tolerance: float | None
    regressed: bool
    check: str

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(slots=True)
class AffectedModel:
    """A model trained on the dataset, in its newest version, and the versions of
    the dataset it trained on."""

    model: ModelVersion
    trained_on: list[ModelPin] = field(default_factory=list)


def _gate_rows(checks: list[Check]) -> list[GateRow]:
    gate = next((check for check in checks if check.builtin and check.name == GATE_CHECK), None)
    rows: list[GateRow] = []
    for key, compared in ((gate.metrics or {}) if gate is not None else {}).items():
        if not isinstance(compared, dict):
            continue
        spec, _, metric = str(key).partition(" ")
        model, _, version = spec.partition("@")
        tolerance = compared.get("tolerance")
        rows.append(
            GateRow(
                model=model,
                version=version,
                metric=metric,
                before=float(compared.get("before") or 0),
                after=float(compared.get("after") or 0),
                tolerance=float(tolerance) if tolerance is not None else None,
                regressed=bool(compared.get("regressed")),
                check=str(compared.get("check") or ""),
            )
        )
    # Regressions first: they are what an approver must look at.
    return sorted(rows, key=lambda row: (not row.regressed, row.model, row.metric))


def _in_order(checks: list[Check]) -> list[Check]:
    """The built-in checks in the order they matter (the merge first), then CI's by
    name; the metric gate has its own section."""
    order = {name: index for index, name in enumerate(BUILTIN_CHECKS)}
    shown = [check for check in checks if not (check.builtin and check.name == GATE_CHECK)]
    return sorted(shown, key=lambda check: (not check.builtin, order.get(check.name, len(order)), check.name))


def _affected_models(dataset: Dataset) -> list[AffectedModel]:
    models = models_trained_on(dataset)
    if not models:
        return []
    affected = {model.pk: AffectedModel(model) for model in models}
    pins = ModelPin.objects.filter(
        model__in=list(affected), version__dataset=dataset, evaluation=False
    ).select_related("version")
    for pin in pins:
        affected[pin.model_id].trained_on.append(pin)
    return list(affected.values())


def _change_context(request: HttpRequest, change: ChangeRequest) -> dict[str, Any]:
    """Everything a change request's page shows, in a fixed number of queries
    whatever its number of checks, approvals and files."""
    user = request.user
    dataset = change.dataset
    standing = requests.change_standing(change)
    live = {
        name: (head_id, semver)
        for name, head_id, semver in Branch.objects.filter(
            dataset=dataset, name__in=[change.source, change.target]
        ).values_list("name", "head_id", "head__semver")
    }
    dry_run: MergeOverview | None = None
    if change.dry_run_id is not None:
        dry_run = merge_overview(user=user, name=dataset.name, merge_id=change.dry_run_id)
    is_open = change.state == ChangeRequest.State.OPEN
    # Checked: the worker has worked out the dry run and the built-in checks for the
    # heads the branches are at now. A branch gone is said, not waited for.
    branches_there = change.source in live and change.target in live
    checked = (
        change.dry_run is not None
        and change.dry_run.source_head_id == change.head_id
        and change.dry_run.target_head_id == change.target_head_id
        and live.get(change.source, ("",))[0] == change.head_id
        and live.get(change.target, ("",))[0] == change.target_head_id
    )
    ci_waiting = any(
        check.state in (Check.State.PENDING, Check.State.RUNNING) and not check.builtin
        for check in standing.checks
    )
    if change.state == ChangeRequest.State.MERGING or (is_open and branches_there and not checked):
        poll = POLL_WORKER
    elif is_open and ci_waiting:
        poll = POLL_CI
    else:
        poll = ""
    account_id = user.pk if user.is_authenticated else None
    approved_by_me = any(approval.user_id == account_id for approval in standing.approvals)
    can_write = selectors.can_write(user, dataset)
    is_approver = permissions.has_role(user, permissions.APPROVER)
    return {
        "change": change,
        "dataset": dataset,
        "standing": standing,
        "rule": standing.rule,
        "checks": _in_order(standing.checks),
        "gate": next((check for check in standing.checks if check.name == GATE_CHECK), None),
        "gate_rows": _gate_rows(standing.checks),
        "dry_run": dry_run,
        "models": _affected_models(dataset),
        "card": card_change(change.head, change.target_head),
        "source_now": live.get(change.source, (None, None))[1],
        "target_now": live.get(change.target, (None, None))[1],
        "checked": checked,
        "poll": poll,
        "is_author": account_id is not None and change.author_id == account_id,
        "approved_by_me": approved_by_me,
        "is_approver": is_approver,
        "can_approve": is_open
        and is_approver
        and not approved_by_me
        and account_id is not None
        and change.author_id != account_id,
        "can_merge": is_open and can_write and standing.mergeable,
        "can_close": is_open and can_write,
        "can_write": can_write,
        "comment": "",
        "error": "",
    }


def _change_page(
    request: HttpRequest, change: ChangeRequest, refused: Refusal | None = None, comment: str = ""
) -> HttpResponse:
    context = _change_context(request, change)
    if refused:
        context.update(error=refused.message, comment=comment)
    return render(request, "changes/change_detail.html", context, status=refused.status if refused else 200)


@login_required
@require_http_methods(["GET"])
def change_detail(request: HtmxHttpRequest, number: int) -> HttpResponse:
    """A change request and where it stands. An htmx request gets its live part
    alone, with 286 once there is nothing left to follow."""
    change = requests.change_by_id(user=request.user, number=number)
    if request.htmx:
        context = _change_context(request, change)
        response = render(request, "changes/_change_live.html", context)
        if not context["poll"]:
            response.status_code = 286  # htmx: stop polling, nothing will change by itself
        return response
    return _change_page(request, change)


@login_required
@require_POST
def change_approve(request: HttpRequest, number: int) -> HttpResponse:
    """An approver's yes to the change's current head, with a comment."""
    change = requests.change_by_id(user=request.user, number=number)
    comment = request.POST.get("comment", "")[: _TEXT_CHARS + 1]
    with form_error() as refused:
        requests.change_approve(user=request.user, change=change, comment=comment.strip())
        messages.success(request, f"Approved {change.source} at {change.head.semver}.")
        return redirect("changes:change_detail", number=change.pk)
    return _change_page(request, change, refused, comment)


@login_required
@require_POST
def change_merge(request: HttpRequest, number: int) -> HttpResponse:
    """Ask a worker to merge (stewards, once nothing blocks it); the page follows."""
    change = requests.change_by_id(user=request.user, number=number)
    with form_error() as refused:
        requests.change_merge(user=request.user, change=change)
        return redirect("changes:change_detail", number=change.pk)
    return _change_page(request, change, refused)


@login_required
@require_POST
def change_close(request: HttpRequest, number: int) -> HttpResponse:
    """Close without merging (stewards); the source branch stays."""
    change = requests.change_by_id(user=request.user, number=number)
    with form_error() as refused:
        requests.change_close(user=request.user, change=change)
        messages.info(request, f"Closed change request #{change.pk} without merging; {change.source} stays.")
        return redirect("changes:change_detail", number=change.pk)
    return _change_page(request, change, refused)


# -- branch protection, on the dataset page ---------------------------------------------------


@dataclass(slots=True)
class ProtectionForm:
    """A protection rule as a steward typed it, or as it stands."""

    pattern: str = ""
    refuse_direct: bool = True
    required_checks: list[str] = field(default_factory=list)
    required_approvals: str = "1"
    regression: str = BranchProtection.Regression.APPROVE

    @classmethod
    def of(cls, rule: BranchProtection) -> ProtectionForm:
        return cls(
            pattern=rule.pattern,
            refuse_direct=rule.refuse_direct,
            required_checks=list(rule.required_checks or []),
            required_approvals=str(rule.required_approvals),
            regression=rule.regression,
        )

    @classmethod
    def posted(cls, request: HttpRequest) -> ProtectionForm:
        checks = [name.strip()[:_NAME_CHARS] for name in request.POST.getlist("required_checks")]
        # Checks of a CI system are typed, comma-separated, beside the built-in ones.
        checks += [name.strip()[:_NAME_CHARS] for name in request.POST.get("other_checks", "").split(",")]
        return cls(
            pattern=request.POST.get("pattern", "").strip()[:_NAME_CHARS],
            refuse_direct=request.POST.get("refuse_direct") == "on",
            required_checks=[name for name in dict.fromkeys(checks) if name],
            required_approvals=request.POST.get("required_approvals", "").strip()[:8],
            regression=request.POST.get("regression", "").strip()[:16],
        )

    @property
    def builtin_checks(self) -> list[tuple[str, bool]]:
        return [(name, name in self.required_checks) for name in (*BUILTIN_CHECKS, GATE_CHECK)]

    @property
    def other_checks(self) -> str:
        builtin = {*BUILTIN_CHECKS, GATE_CHECK}
        return ", ".join(name for name in self.required_checks if name not in builtin)

    def approvals(self) -> int:
        try:
            return int(self.required_approvals)
        except ValueError:
            raise UserError("required approvals must be a whole number from 0 to 10.") from None


@login_required
@require_POST
def protection_save(request: HttpRequest, name: str) -> HttpResponse:
    """Protect the branches a pattern matches, or change the rule it has (stewards).
    A refusal shows the dataset page again with the sentence beside the form."""
    dataset = _dataset_for(request, name)
    form = ProtectionForm.posted(request)
    with form_error() as refused:
        if not form.pattern:
            raise UserError("name the branch to protect, or a pattern such as release/*.")
        rule = protection_set(
            user=request.user,
            dataset=dataset,
            pattern=form.pattern,
            refuse_direct=form.refuse_direct,
            required_checks=form.required_checks,
            required_approvals=form.approvals(),
            regression=form.regression,
        )
        messages.success(request, f"Saved the protection of {rule.pattern}.")
        return redirect(_protections_url(dataset))
    return _dataset_page(request, dataset, refused, form)


@login_required
@require_POST
def protection_remove(request: HttpRequest, name: str) -> HttpResponse:
    """Remove a protection rule (stewards): its branches take direct changes again."""
    dataset = _dataset_for(request, name)
    pattern = request.POST.get("pattern", "").strip()[:_NAME_CHARS]
    with form_error() as refused:
        protection_delete(user=request.user, dataset=dataset, pattern=pattern)
        messages.success(request, f"Removed the protection of {pattern}.")
        return redirect(_protections_url(dataset))
    return _dataset_page(request, dataset, refused, ProtectionForm(pattern=pattern))


def _protections_url(dataset: Dataset) -> str:
    return reverse("catalog:dataset_detail", args=[dataset.name]) + "#protected-branches"


def _dataset_page(
    request: HttpRequest, dataset: Dataset, refused: Refusal, form: ProtectionForm
) -> HttpResponse:
    """The dataset page again, with the refused rule and its sentence in the
    protection section (``changes.templatetags.changes.protection_section``)."""
    overview = selectors.dataset_overview(user=request.user, name=dataset.name)
    context = {
        "o": overview,
        "dataset": overview.dataset,
        "protection_error": refused.message,
        "protection_form": form,
    }
    return render(request, "catalog/dataset_detail.html", context, status=refused.status)
