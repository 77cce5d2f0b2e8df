"""The model registry: model versions and the exact dataset versions each one used.

The tables keep their first names (``lineage_*``): the models moved apps, the data did not.
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from catalog.models import Version
from lineage.models import Node, Run

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MODEL_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
ROLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")


class ModelVersion(models.Model):
    """One registered version of a model (``fraud@3.1``): its metrics, parameters,
    code and artifact, and — through ``pins`` — the exact dataset versions it
    trained and was evaluated on. Immutable once registered, like a dataset
    version: a retrained model is a new version string.

    ``predecessor`` is the model's previous version by creation when this one was
    registered, and ``regressions`` the metrics that got worse than the
    predecessor's by more than ``tolerance`` at that moment (empty: not flagged).
    Both are fixed at registration, so the flag says what the registering
    pipeline was told.
    """

    node = models.OneToOneField(
        Node, primary_key=True, on_delete=models.CASCADE, related_name="model_version"
    )
    name = models.CharField(max_length=100, validators=[RegexValidator(MODEL_NAME_RE)])
    version = models.CharField(max_length=64, validators=[RegexValidator(MODEL_VERSION_RE)])
    created = models.DateTimeField(default=timezone.now)
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    code_repo = models.CharField(max_length=500, blank=True)
    code_commit = models.CharField(max_length=100, blank=True)
    artifact_uri = models.CharField(max_length=1000, blank=True)
    description = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True)
    origin = models.CharField(max_length=16, default="api")
    predecessor = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tolerance = models.FloatField(null=True, blank=True)
    regressions = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "lineage_modelversion"
        ordering = ["name", "-created"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="lineage_model_version_unique")
        ]
        indexes = [models.Index(fields=["name", "-created"], name="lineage_model_name_created")]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def code_ref(self) -> str:
        if self.code_repo and self.code_commit:
            return f"{self.code_repo}#{self.code_commit}"
        return self.code_repo or self.code_commit

    @property
    def flagged(self) -> bool:
        return bool(self.regressions)


class ModelPin(models.Model):
    """A dataset version a model version used, by exact id, under a role
    (``train``, ``validation``, ``eval``…), with the reference as it was written
    (``reviews@main``) kept for the record. ``run`` is the training or
    evaluation run that consumed it.

    PROTECT: a version a model was trained on is never deleted from the catalog
    (DESIGN.md, invariant 5: versions pinned by a model version are reachable).
    """

    model = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="pins")
    role = models.CharField(max_length=50, validators=[RegexValidator(ROLE_RE)])
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="model_pins")
    requested = models.CharField(max_length=400, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="pins")
    evaluation = models.BooleanField(default=False)

    class Meta:
        db_table = "lineage_modelpin"
        ordering = ["evaluation", "role"]
        constraints = [
            models.UniqueConstraint(fields=["model", "role"], name="lineage_model_pin_role_unique")
        ]

    def __str__(self) -> str:
        return f"{self.model_id} {self.role} {self.version_id[:12]}"
