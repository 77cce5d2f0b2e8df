"""Branch protection: which branches take changes only through change requests,
and what a request into them needs before it may merge."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from catalog import permissions
from catalog.errors import Forbidden, UserError
from catalog.models import AuditEvent, Dataset, Version
from catalog.services.validation import check_ref_name
from changes.models import BranchProtection

CHANGE_REQUEST = "change-request"  # `via` of the merges change requests make


@dataclass(frozen=True, slots=True)
class Rule:
    """The protection that applies to one branch (a rule, or the default)."""

    pattern: str | None  # None: the branch is not protected
    refuse_direct: bool = False
    required_checks: list[str] = field(default_factory=list)
    required_approvals: int = 0
    regression: str = BranchProtection.Regression.APPROVE

    @property
    def protected(self) -> bool:
        return self.pattern is not None


UNPROTECTED = Rule(None)


def _specificity(pattern: str, branch: str) -> tuple[int, int]:
    return (1 if pattern == branch else 0, len(pattern))


# The default branch of a dataset with a golden version is protected until a
# steward sets a rule of its own for it (which may let direct pushes through).
GOLDEN_DEFAULT = Rule("golden dataset's default branch", refuse_direct=True, required_approvals=1)


def rule_for(dataset: Dataset, branch: str) -> Rule:
    """The most specific rule whose pattern matches `branch`; else, for the default
    branch of a dataset with a golden version, the golden default; else none."""
    matching = [
        row
        for row in BranchProtection.objects.filter(dataset=dataset)
        if row.pattern == branch or fnmatch.fnmatchcase(branch, row.pattern)
    ]
    if not matching:
        if branch == dataset.default_branch and Version.objects.filter(dataset=dataset, golden=True).exists():
            return GOLDEN_DEFAULT
        return UNPROTECTED
    row = max(matching, key=lambda r: _specificity(r.pattern, branch))
    return Rule(
        pattern=row.pattern,
        refuse_direct=row.refuse_direct,
        required_checks=list(row.required_checks or []),
        required_approvals=row.required_approvals,
        regression=row.regression,
    )


def commit_guard(dataset: Dataset, branch: str, via: str) -> None:
    """``catalog.hooks.commit_guards``: a protected branch refuses direct changes."""
    if via:
        return  # a change request's merge, or an approved rollback
    rule = rule_for(dataset, branch)
    if rule.refuse_direct:
        raise Forbidden(
            f"branch {branch} of {dataset.name} is protected: push to another branch and propose it"
            f" in a change request (strata change open {dataset.name} BRANCH --into {branch})."
        )


def protection_set(
    *,
    user: permissions.User,
    dataset: Dataset,
    pattern: str,
    refuse_direct: bool = True,
    required_checks: list[str] | None = None,
    required_approvals: int = 1,
    regression: str = BranchProtection.Regression.APPROVE,
    actor: str = "",
) -> BranchProtection:
    """Create or change the rule for `pattern` (stewards)."""
    permissions.require_write(user, dataset)
    check_ref_name(pattern.replace("*", "x").replace("?", "x").replace("[", "x").replace("]", "x"))
    if regression not in BranchProtection.Regression.values:
        raise UserError(f"{regression!r} is not a regression rule: use approve or block.")
    if not 0 <= required_approvals <= 10:
        raise UserError("required approvals must be between 0 and 10.")
    checks = sorted({str(name).strip() for name in (required_checks or []) if str(name).strip()})
    if any(len(name) > 100 for name in checks):
        raise UserError("a check name is at most 100 characters.")
    row, created = BranchProtection.objects.update_or_create(
        dataset=dataset,
        pattern=pattern,
        defaults={
            "refuse_direct": refuse_direct,
            "required_checks": checks,
            "required_approvals": required_approvals,
            "regression": regression,
        },
    )
    AuditEvent.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        actor=user.get_username() if user is not None and user.is_authenticated else actor,
        action="protection.create" if created else "protection.change",
        dataset=dataset,
        object_type="protection",
        object_id=pattern,
        after={
            "refuse_direct": refuse_direct,
            "required_checks": checks,
            "required_approvals": required_approvals,
            "regression": regression,
        },
    )
    return row


def protection_delete(*, user: permissions.User, dataset: Dataset, pattern: str, actor: str = "") -> None:
    permissions.require_write(user, dataset)
    deleted, _ = BranchProtection.objects.filter(dataset=dataset, pattern=pattern).delete()
    if not deleted:
        raise UserError(f"{dataset.name} has no protection rule {pattern!r}.")
    AuditEvent.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        actor=user.get_username() if user is not None and user.is_authenticated else actor,
        action="protection.delete",
        dataset=dataset,
        object_type="protection",
        object_id=pattern,
    )
