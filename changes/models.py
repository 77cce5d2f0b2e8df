"""Change requests, their checks and approvals, and branch protection rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from catalog.models import Dataset, Merge, Version


class BranchProtection(models.Model):
    """How the branches of a dataset whose names match `pattern` take changes.

    `pattern` is a branch name or a shell-style pattern (``release/*``). The most
    specific rule that matches wins: an exact name over a pattern, a longer pattern
    over a shorter one."""

    class Regression(models.TextChoices):
        APPROVE = "approve", "needs an approver"
        BLOCK = "block", "blocks the merge"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="protections")
    pattern = models.CharField(max_length=200)
    # Pushes, card edits and splits straight onto the branch are refused: every
    # change comes through a change request.
    refuse_direct = models.BooleanField(default=True)
    required_checks = models.JSONField(default=list, blank=True)  # names of checks that must pass
    required_approvals = models.PositiveSmallIntegerField(default=1)
    regression = models.CharField(max_length=8, choices=Regression.choices, default=Regression.APPROVE)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset", "pattern"]
        constraints = [models.UniqueConstraint(fields=["dataset", "pattern"], name="protection_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.name}:{self.pattern}"


class ChangeRequest(models.Model):
    """A proposal to merge branch `source` of a dataset into `target`, with the
    live view of what it changes (computed once per source head by a worker), its
    checks, its approvals, and — once merged — the version it made."""

    class State(models.TextChoices):
        OPEN = "open", "open"
        MERGING = "merging", "merging"
        MERGED = "merged", "merged"
        CLOSED = "closed", "closed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="change_requests")
    source = models.CharField(max_length=200)
    target = models.CharField(max_length=200)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150)
    code_repo = models.CharField(max_length=500, blank=True)
    code_ref = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    # The source head the view and the checks are about, and the target head its
    # dry run was worked out against; a new head of either re-runs the checks.
    head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    target_head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    # The merge dry run for (head, target_head), computed by a worker.
    dry_run = models.ForeignKey(Merge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The merge that ran, and the version it made.
    merge = models.ForeignKey(Merge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    merged_version = models.ForeignKey(
        Version, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)
    closed = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class Check(models.Model):
    """A named result about one head of a change request: built in (run by a
    worker), or posted by a CI system with its metrics."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        PASSED = "passed", "passed"
        FAILED = "failed", "failed"
        NEEDS_APPROVAL = "needs_approval", "needs approval"

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="checks")
    head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    builtin = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    summary = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # The model whose metrics these are, when a CI check says (else every model
    # trained on the target with a metric of the same name is compared).
    model = models.CharField(max_length=100, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    reporter = models.CharField(max_length=150, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["change", "head", "name"], name="check_unique")]

    def __str__(self) -> str:
        return f"{self.name}: {self.state}"


class Approval(models.Model):
    """An approver's yes to one head of a change request; a new head makes it stale."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    comment = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["change", "head", "user"], name="approval_unique")]
