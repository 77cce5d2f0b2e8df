"""Change requests: open, follow the branches, check, approve, merge, close.

A change request proposes merging a source branch of a dataset into a target
branch. Its view of the change — the merge dry run — and its built-in checks are
worked out by a worker once per pair of heads (``change_check``); a new push to
either branch queues that again (``catalog.hooks.committed``). Approvals and
checks belong to one source head: a new head makes them stale. The merge itself
runs in a worker through the merge service, on exactly the heads that were
checked and approved, or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog import permissions
from catalog.errors import ConflictError, Forbidden, IntegrityFailure, NotFound, UserError
from catalog.models import AuditEvent, Branch, Dataset, Version
from catalog.selectors import dataset_get
from catalog.services.jobs import job_enqueue
from catalog.services.merges import merge_branches, merge_request
from catalog.services.validation import check_ref_name
from changes import checks as builtin
from changes.models import Approval, ChangeRequest, Check
from changes.services.gate import GATE_CHECK, metric_gate
from changes.services.notify import change_notify
from changes.services.protection import CHANGE_REQUEST, Rule, rule_for
from registry.domain.metrics import check_metrics

logger = logging.getLogger(__name__)

OPEN_STATES = (ChangeRequest.State.OPEN, ChangeRequest.State.MERGING)


def _account(user: permissions.User) -> Any:
    return user if user is not None and user.is_authenticated else None


def _audit(change: ChangeRequest, action: str, user: permissions.User, actor: str, **after: Any) -> None:
    AuditEvent.objects.create(
        user=_account(user),
        actor=actor,
        action=action,
        dataset=change.dataset,
        object_type="change",
        object_id=str(change.pk),
        after=after,
    )


def _actor(user: permissions.User, fallback: str) -> str:
    account = _account(user)
    return account.get_username() if account is not None else fallback


def _head_of(dataset: Dataset, branch: str) -> Version:
    row = Branch.objects.filter(dataset=dataset, name=branch).select_related("head").first()
    if row is None:
        raise NotFound(f"dataset {dataset.name} has no branch {branch}.")
    return row.head


# -- opening and closing ----------------------------------------------------------------


def change_open(
    *,
    user: permissions.User,
    dataset_name: str,
    source: str,
    into: str | None = None,
    title: str = "",
    description: str = "",
    code_repo: str = "",
    code_ref: str = "",
    author: str = "",
) -> ChangeRequest:
    """Propose merging `source` into `into` (the default branch). Stewards open
    change requests; the checks are queued for a worker at once."""
    dataset = dataset_get(dataset_name, user)
    permissions.require_write(user, dataset)
    target = into or dataset.default_branch
    for name in (source, target):
        check_ref_name(name)
    if source == target:
        raise UserError(f"a change request needs two branches: {source} cannot merge into itself.")
    title = (title or f"Merge {source} into {target}").strip()
    if len(title) > 200:
        raise UserError("the title is longer than 200 characters.")
    if len(description) > 50_000 or len(code_repo) > 500 or len(code_ref) > 200:
        raise UserError("the description, code repository or code reference is too long.")
    head, target_head = _head_of(dataset, source), _head_of(dataset, target)
    already = ChangeRequest.objects.filter(
        dataset=dataset, source=source, target=target, state__in=OPEN_STATES
    ).first()
    if already is not None:
        raise UserError(f"change request #{already.pk} already proposes merging {source} into {target}.")
    actor = _actor(user, author)
    if not actor:
        raise UserError("a change request needs an author.")
    with transaction.atomic():
        change = ChangeRequest.objects.create(
            dataset=dataset,
            source=source,
            target=target,
            title=title,
            description=description,
            author=_account(user),
            author_name=actor,
            code_repo=code_repo.strip(),
            code_ref=code_ref.strip(),
            head=head,
            target_head=target_head,
        )
        _audit(change, "change.open", user, actor, source=source, target=target, head=head.id)
        job_enqueue("changes.tasks.change_check", change.pk)
        change_notify(change.pk, "opened", change.description[:2000])
    return change


def change_get(*, user: permissions.User, dataset_name: str, number: int) -> ChangeRequest:
    """A change request of a dataset the user may read (NotFound otherwise)."""
    dataset = dataset_get(dataset_name, user)
    change = (
        ChangeRequest.objects.filter(dataset=dataset, pk=number)
        .select_related("dataset", "head", "target_head", "dry_run", "merge", "merged_version", "author")
        .first()
    )
    if change is None:
        raise NotFound(f"{dataset.name} has no change request #{number}.")
    return change


def change_by_id(*, user: permissions.User, number: int) -> ChangeRequest:
    """A change request by its number, if the user may read its dataset (NotFound
    otherwise: a restricted dataset's requests look like none)."""
    change = (
        ChangeRequest.objects.filter(pk=number)
        .select_related("dataset", "head", "target_head", "dry_run", "merge", "merged_version", "author")
        .first()
    )
    if change is None or not permissions.can_read(user, change.dataset):
        raise NotFound(f"there is no change request #{number}.")
    return change


def change_close(*, user: permissions.User, change: ChangeRequest, author: str = "") -> ChangeRequest:
    """Close without merging (stewards). Its source branch stays, under retention."""
    permissions.require_write(user, change.dataset)
    closed = ChangeRequest.objects.filter(pk=change.pk, state=ChangeRequest.State.OPEN).update(
        state=ChangeRequest.State.CLOSED, closed=timezone.now(), updated=timezone.now()
    )
    if not closed:
        raise ConflictError(f"change request #{change.pk} is {change.state}: only an open one can be closed.")
    _audit(change, "change.close", user, _actor(user, author))
    change.refresh_from_db()
    return change


def closed_branches() -> list[tuple[str, str]]:
    """``catalog.hooks.experiment_branches``: the source branches of change requests
    closed without merging, unless an open or merged request still uses them."""
    closed = set(
        ChangeRequest.objects.filter(state=ChangeRequest.State.CLOSED).values_list("dataset__name", "source")
    )
    in_use = set(
        ChangeRequest.objects.exclude(state=ChangeRequest.State.CLOSED).values_list("dataset__name", "source")
    )
    return sorted(closed - in_use)


# -- following the branches ---------------------------------------------------------------


def branch_committed(version: Version, branch: str) -> None:
    """``catalog.hooks.committed``: a new head on a branch an open change request
    merges (from or into) queues its checks again, once the commit is in."""
    changes = ChangeRequest.objects.filter(dataset_id=version.dataset_id, state=ChangeRequest.State.OPEN)
    for pk in changes.filter(source=branch).values_list("pk", flat=True):
        job_enqueue("changes.tasks.change_check", pk)
    for pk in changes.filter(target=branch).values_list("pk", flat=True):
        job_enqueue("changes.tasks.change_check", pk)


def change_check(change_id: int) -> None:
    """Bring a change request up to its branches' heads: its dry run and its
    built-in checks for the current pair of heads (the worker's task body)."""
    change = ChangeRequest.objects.select_related("dataset", "head", "target_head").get(pk=change_id)
    if change.state != ChangeRequest.State.OPEN:
        return
    try:
        head, target_head = _head_of(change.dataset, change.source), _head_of(change.dataset, change.target)
    except NotFound as error:
        ChangeRequest.objects.filter(pk=change.pk).update(error=str(error), updated=timezone.now())
        return
    ChangeRequest.objects.filter(pk=change.pk).update(
        head=head, target_head=target_head, updated=timezone.now()
    )
    change.head, change.target_head = head, target_head
    try:
        dry_run = merge_request(
            user=None,
            dataset_name=change.dataset.name,
            source=change.source,
            into=change.target,
            dry_run=True,
            expect_heads=(target_head.id, head.id),
            inline=True,
        )
    except ConflictError:
        return  # a branch moved meanwhile: its commit queued this check again
    results = builtin.builtin_checks(
        dataset=change.dataset, head=head, target_head=target_head, dry_run=dry_run.result
    )
    now = timezone.now()
    failed = [result for result in results if result.state == Check.State.FAILED]
    # The dry run and every check of these heads appear together: a page that
    # sees the dry run for the current heads sees all of their checks.
    with transaction.atomic():
        for result in results:
            Check.objects.update_or_create(
                change=change,
                head=head,
                name=result.name,
                defaults={
                    "builtin": True,
                    "state": result.state,
                    "summary": result.summary,
                    "metrics": result.metrics,
                    "reporter": "strata",
                    "updated": now,
                },
            )
        _gate_update(change)
        ChangeRequest.objects.filter(pk=change.pk).update(dry_run=dry_run, error="", updated=timezone.now())
        if failed:
            change_notify(change.pk, "check failed", "; ".join(f"{r.name}: {r.summary}" for r in failed))


# -- checks from CI ---------------------------------------------------------------------


def check_report(
    *,
    user: permissions.User,
    change: ChangeRequest,
    name: str,
    state: str,
    summary: str = "",
    metrics: Any = None,
    url: str = "",
    head: str | None = None,
    model: str | None = None,
) -> Check:
    """Record what a CI system found about the change's head (stewards' tokens).

    `head` is the version the CI ran on: a report about another head than the
    current one is refused, so a slow pipeline never passes a newer push."""
    permissions.require_write(user, change.dataset)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise UserError("a check needs a name of 1 to 100 characters.")
    if name in builtin.BUILTIN_CHECKS or name == GATE_CHECK:
        raise UserError(f"{name!r} is a built-in check: report under another name.")
    reported_states = (Check.State.PENDING, Check.State.RUNNING, Check.State.PASSED, Check.State.FAILED)
    if state not in reported_states:
        raise UserError(f"{state!r} is not a check state: use one of {', '.join(reported_states)}.")
    try:
        checked_metrics = check_metrics(metrics)
    except ValueError as error:
        raise UserError(str(error)) from None
    if change.state != ChangeRequest.State.OPEN:
        raise ConflictError(f"change request #{change.pk} is {change.state}: it takes no more checks.")
    current = _head_of(change.dataset, change.source)
    if head is not None and (len(head) < 7 or not current.id.startswith(head)):
        raise ConflictError(
            f"the check ran on {head[:12] if head else 'no version'}, but the head of {change.source}"
            f" is now {current.semver} ({current.id[:12]}): run it again on the new head."
        )
    if len(summary) > 10_000 or len(url) > 1000:
        raise UserError("the summary or the link is too long.")
    if url and not url.startswith(("https://", "http://")):
        raise UserError("the link must be an http(s) address.")
    if model is not None and len(model) > 100:
        raise UserError("the model name is longer than 100 characters.")
    reporter = _actor(user, "ci")
    check, _ = Check.objects.update_or_create(
        change=change,
        head=current,
        name=name,
        defaults={
            "builtin": False,
            "state": state,
            "summary": summary,
            "metrics": checked_metrics,
            "model": model or "",
            "url": url,
            "reporter": reporter,
            "updated": timezone.now(),
        },
    )
    _audit(change, "change.check", user, reporter, name=name, state=state, head=current.id)
    if state == Check.State.FAILED:
        change_notify(change.pk, "check failed", f"{name}: {summary}")
    _gate_update(change)
    return check


def _gate_update(change: ChangeRequest) -> None:
    """The metric gate, from every metric reported on the current head."""
    rule = rule_for(change.dataset, change.target)
    reported = list(Check.objects.filter(change=change, head=change.head, builtin=False))
    result = metric_gate(dataset=change.dataset, target_head=change.target_head, reported=reported, rule=rule)
    if result is None:
        Check.objects.filter(change=change, head=change.head, name=GATE_CHECK).delete()
        return
    Check.objects.update_or_create(
        change=change,
        head=change.head,
        name=GATE_CHECK,
        defaults={
            "builtin": True,
            "state": result.state,
            "summary": result.summary,
            "metrics": result.metrics,
            "reporter": "strata",
            "updated": timezone.now(),
        },
    )


# -- where a request stands -------------------------------------------------------------


@dataclass(slots=True)
class Standing:
    """Whether a change request may merge now, and in words why not."""

    rule: Rule
    checks: list[Check]
    approvals: list[Approval]
    stale_approvals: int
    blockers: list[str] = field(default_factory=list)

    @property
    def mergeable(self) -> bool:
        return not self.blockers


def change_standing(change: ChangeRequest) -> Standing:
    """What the current heads' checks and approvals say (no writes)."""
    rule = rule_for(change.dataset, change.target)
    checks = list(Check.objects.filter(change=change, head=change.head).order_by("-builtin", "name"))
    approvals = list(
        Approval.objects.filter(change=change, head=change.head).select_related("user").order_by("created")
    )
    stale = Approval.objects.filter(change=change).exclude(head=change.head).count()
    standing = Standing(rule, checks, approvals, stale)
    blockers = standing.blockers
    if change.state != ChangeRequest.State.OPEN:
        blockers.append(f"the change request is {change.state}.")
        return standing
    by_name = {check.name: check for check in checks}
    heads = Branch.objects.filter(dataset=change.dataset, name__in=[change.source, change.target])
    live = dict(heads.values_list("name", "head_id"))
    if live.get(change.source) != change.head_id or live.get(change.target) != change.target_head_id:
        blockers.append("a branch moved since its checks ran: they run again on the new heads.")
    elif change.dry_run is None or (change.dry_run.source_head_id, change.dry_run.target_head_id) != (
        change.head_id,
        change.target_head_id,
    ):
        blockers.append("its checks are not yet done for the newest head.")
    needed_approvals = rule.required_approvals if rule.protected else 0
    for check in checks:
        if check.state == Check.State.FAILED:
            blockers.append(f"check {check.name} failed: {check.summary}")
        elif check.state == Check.State.NEEDS_APPROVAL:
            needed_approvals = max(needed_approvals, 1)
        elif check.state in (Check.State.PENDING, Check.State.RUNNING):
            blockers.append(f"check {check.name} is {check.state}.")
    for name in rule.required_checks:
        if name not in by_name:
            blockers.append(f"the required check {name} has not reported on this head.")
    if len(approvals) < needed_approvals:
        blockers.append(
            f"it needs {needed_approvals} approval{'s' if needed_approvals != 1 else ''} on this head,"
            f" and has {len(approvals)}."
        )
    return standing


# -- approving and merging --------------------------------------------------------------


def change_approve(*, user: permissions.User, change: ChangeRequest, comment: str = "") -> Approval:
    """An approver's yes to the current head. Never the author's own."""
    permissions.require_read(user, change.dataset)
    account = _account(user)
    if account is None:
        raise Forbidden("sign in to approve a change request.")
    if change.author_id == account.pk:
        raise Forbidden("the author of a change request cannot approve it: ask another approver.")
    permissions.require_role(user, permissions.APPROVER, "approve change requests")
    if change.state != ChangeRequest.State.OPEN:
        raise ConflictError(f"change request #{change.pk} is {change.state}: it takes no more approvals.")
    if len(comment) > 10_000:
        raise UserError("the comment is longer than 10,000 characters.")
    approval, created = Approval.objects.get_or_create(
        change=change, head=change.head, user=account, defaults={"comment": comment}
    )
    if created:
        _audit(change, "change.approve", user, account.get_username(), head=change.head_id, comment=comment)
        change_notify(
            change.pk,
            "approved",
            f"{account.get_username()}: {comment}" if comment else account.get_username(),
        )
    return approval


def change_merge(
    *, user: permissions.User, change: ChangeRequest, author: str = "", queue: bool = True
) -> ChangeRequest:
    """Ask a worker to merge (stewards), once every check passed and the approvals
    are in; refused in one sentence otherwise. With `queue` False the caller runs
    ``change_merge_run`` itself (the command line waits for its merge)."""
    permissions.require_write(user, change.dataset)
    standing = change_standing(change)
    if not standing.mergeable:
        raise ConflictError(f"change request #{change.pk} cannot merge yet: {standing.blockers[0]}")
    moved = ChangeRequest.objects.filter(
        pk=change.pk, state=ChangeRequest.State.OPEN, head=change.head
    ).update(state=ChangeRequest.State.MERGING, updated=timezone.now())
    if not moved:
        raise ConflictError(f"change request #{change.pk} changed meanwhile: look at it again.")
    actor = _actor(user, author)
    _audit(change, "change.merge", user, actor, head=change.head_id, target_head=change.target_head_id)
    if queue:
        job_enqueue("changes.tasks.change_merge_run", change.pk, actor)
    change.refresh_from_db()
    return change


def change_merge_run(change_id: int, actor: str) -> None:
    """Merge a change request whose merge was asked for (the worker's task body):
    on exactly the heads that were checked and approved, through the merge service."""
    change = ChangeRequest.objects.select_related("dataset", "head", "target_head").get(pk=change_id)
    if change.state != ChangeRequest.State.MERGING:
        return
    try:
        current = (_head_of(change.dataset, change.target), _head_of(change.dataset, change.source))
        if current != (change.target_head, change.head):
            raise ConflictError(
                f"{change.target if current[0] != change.target_head else change.source} moved after the"
                " checks ran; the checks run again on the new head."
            )
        outcome = merge_branches(
            user=None,
            dataset_name=change.dataset.name,
            source=change.source,
            into=change.target,
            message=f"Merge change request #{change.pk}: {change.title}",
            author=f"{change.author_name} (merged by {actor})",
            attempts=1,
            via=CHANGE_REQUEST,
        )
        if outcome.version is None:
            raise ConflictError(f"the merge has {outcome.conflict_count} conflicts; nothing was merged.")
    except (UserError, ConflictError, IntegrityFailure) as error:
        ChangeRequest.objects.filter(pk=change.pk).update(
            state=ChangeRequest.State.OPEN, error=str(error), updated=timezone.now()
        )
        job_enqueue("changes.tasks.change_check", change.pk)
        change_notify(change.pk, "merge refused", str(error))
        return
    ChangeRequest.objects.filter(pk=change.pk).update(
        state=ChangeRequest.State.MERGED,
        merged_version=outcome.version,
        closed=timezone.now(),
        error="",
        updated=timezone.now(),
    )
    _audit(change, "change.merged", None, actor, version=outcome.version.id, semver=outcome.version.semver)
    change_notify(change.pk, "merged", f"as {change.dataset.name}@{outcome.version.semver}")
