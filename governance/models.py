"""Governance's one table: requests to roll a branch back, and the state a worker advances.

The table keeps its first name (``catalog_rollbackrequest``): the model moved apps, the
data did not.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from catalog.models import Dataset, Version


class RollbackRequest(models.Model):
    """A steward's request to roll a branch back to an earlier version, and the
    state machine a worker advances once an approver (not the requester) agrees:

        requested -> approved -> restoring -> verifying -> applying -> done
                  -> rejected                       (any step) -> failed

    The state lives on this row so that a task killed at any step resumes where it
    stopped and the rollback happens exactly once.
    """

    class State(models.TextChoices):
        REQUESTED = "requested", "waiting for approval"
        APPROVED = "approved", "approved, queued"
        RESTORING = "restoring", "restoring from cold storage"
        VERIFYING = "verifying", "verifying every byte"
        APPLYING = "applying", "moving the branch"
        DONE = "done", "done"
        REJECTED = "rejected", "rejected"
        FAILED = "failed", "failed"

    IN_PROGRESS = (State.APPROVED, State.RESTORING, State.VERIFYING, State.APPLYING)
    FINISHED = (State.DONE, State.REJECTED, State.FAILED)

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="rollbacks")
    branch = models.CharField(max_length=200)
    target = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    # The head when the request was made: the branch must still be there to apply.
    head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requester_name = models.CharField(max_length=150)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.REQUESTED, db_index=True)
    state_changed = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decider_name = models.CharField(max_length=150, blank=True)
    decided = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    result = models.ForeignKey(Version, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    error = models.TextField(blank=True)
    progress = models.CharField(max_length=300, blank=True)  # e.g. "restoring 3 of 12 packs"

    class Meta:
        db_table = "catalog_rollbackrequest"
        ordering = ["-created"]
        indexes = [models.Index(fields=["dataset", "branch", "state"], name="rollback_branch_state")]

    def __str__(self) -> str:
        return f"rollback of {self.dataset.name}@{self.branch} to {self.target.semver} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in self.FINISHED
