"""Lifecycle's tables: retention policies, retention runs (plan, approval, apply) and the
restores of cold packs.

The tables keep their first names (``catalog_*``): the models moved apps, the data did not.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from catalog.models import Pack


class RetentionPolicy(models.Model):
    """How long the versions of the branches matching `pattern` (fnmatch, e.g.
    ``exp/*``) are kept and when their data moves to colder tiers. Edited by admins;
    the first policy (lowest `position`) whose pattern matches a branch applies."""

    pattern = models.CharField(max_length=200, unique=True)
    position = models.PositiveIntegerField(default=100)
    keep_forever = models.BooleanField(default=False)
    expire_after_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="versions expire this many days after the branch's last commit"
    )
    warm_after_days = models.PositiveIntegerField(null=True, blank=True, help_text="days without access")
    cold_after_days = models.PositiveIntegerField(null=True, blank=True, help_text="days without access")
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "catalog_retentionpolicy"
        ordering = ["position", "pattern"]
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return self.pattern


class RetentionRun(models.Model):
    """One tiering and garbage-collection run: its dry-run report first, then the
    state machine a worker advances (DESIGN.md, invariant 6):

        planned -> awaiting approval -> approved -> applying -> done
                                     -> cancelled      (any step) -> failed

    `actions` holds the plan to apply (expired versions, moves, repacks,
    deletions), so a re-run after a crash applies the same plan, not a new one;
    `phase` says which group of actions is under way. Each action is idempotent.
    """

    class State(models.TextChoices):
        PLANNED = "planned", "planned (dry run)"
        AWAITING = "awaiting", "waiting for an approver"
        APPROVED = "approved", "approved, queued"
        APPLYING = "applying", "applying"
        DONE = "done", "done"
        CANCELLED = "cancelled", "cancelled"
        FAILED = "failed", "failed"

    created = models.DateTimeField(default=timezone.now, db_index=True)
    as_of = models.DateTimeField()  # the clock the plan was made with
    trigger = models.CharField(max_length=16, default="manual")  # manual, schedule
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLANNED, db_index=True)
    state_changed = models.DateTimeField(default=timezone.now)
    phase = models.CharField(max_length=16, blank=True)  # expiring, moving, repacking, sweeping
    report = models.JSONField(default=dict)
    actions = models.JSONField(default=dict)
    sweep_bytes = models.BigIntegerField(default=0)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approver_name = models.CharField(max_length=150, blank=True)
    progress = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "catalog_retentionrun"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"retention run {self.pk} ({self.state})"


class PackRestore(models.Model):
    """A restore of a cold pack that someone asked for (a pull, a rollback), tracked
    until the store says the pack is readable; a beat task polls the open ones."""

    class State(models.TextChoices):
        RESTORING = "restoring", "restoring"
        READY = "ready", "readable"

    pack = models.ForeignKey(Pack, on_delete=models.CASCADE, related_name="restores")
    requested = models.DateTimeField(default=timezone.now)
    requested_for = models.CharField(max_length=300, blank=True)  # e.g. "pull of reviews@1.2.0"
    expected_ready = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RESTORING, db_index=True)
    ready = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "catalog_packrestore"
        ordering = ["-requested"]

    def __str__(self) -> str:
        return f"restore of {self.pack_id[:12]} ({self.state})"
