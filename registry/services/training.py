"""Model versions and the runs that made and judged them.

``training_record`` is the one way a model version is registered — from the
Python client, the REST API (``POST /api/v1/models/{name}/versions``) and
``strata record-training`` alike; ``import-dvc`` makes model versions from a
project's train stage through ``model_version_create`` below. The rules live
here once:

- every dataset a model used is pinned by its exact version id: a ref such as
  ``reviews@main`` is resolved when the model is registered and stored as the
  version it named then, so ``main`` moving later changes nothing;
- each pin has a role; roles that name evaluation data (``eval``, ``test``,
  ``holdout``, ``benchmark``…) are consumed by an evaluation run that also
  consumes the model, every other role (``train``, ``validation``…) by the
  training run that produced the model;
- a model version never changes: registering the same name and version again
  with the same content returns the first registration, with other content is
  refused;
- a metric worse than the previous version's (same name, by creation) by more
  than ``STRATA_METRIC_TOLERANCE`` flags the new version;
- recording needs the steward role and read access to every pinned dataset, and
  writes one audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import permissions
from catalog.errors import NotFound, UserError
from catalog.models import AuditEvent, Version
from catalog.selectors import resolve_spec
from catalog.services.datasets import actor_name
from catalog.services.validation import parse_code_ref
from lineage.models import Node, Run, RunStatus, StepKind
from lineage.services.runs import (
    Endpoint,
    _check_params,
    edges_link,
    node_for,
    version_endpoint,
)
from registry.domain import metrics as lmetrics
from registry.models import MODEL_NAME_RE, MODEL_VERSION_RE, ROLE_RE, ModelPin, ModelVersion
from registry.selectors import tolerance

# Names the model pages' addresses use for themselves (/models/compare/).
_RESERVED_NAMES = frozenset({"compare"})
# Words in a role's name that say the data judged the model rather than trained it.
_EVALUATION_WORDS = ("eval", "test", "holdout", "hold-out", "bench", "score")


def is_evaluation_role(role: str) -> bool:
    lowered = role.lower()
    return any(word in lowered for word in _EVALUATION_WORDS)


def model_key(name: str, version: str) -> str:
    return f"model:{name}@{version}"


def check_model_name(name: str, version: str) -> tuple[str, str]:
    name, version = (name or "").strip(), str(version or "").strip()
    if not MODEL_NAME_RE.match(name) or name.lower() in _RESERVED_NAMES:
        raise UserError(
            f"{name!r} is not a model name: use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (and not 'compare')."
        )
    if not MODEL_VERSION_RE.match(version):
        raise UserError(
            f"{version!r} is not a model version: use 1 to 64 letters, digits, '.', '_', '+' or '-' "
            "(e.g. 3.1 or 2024-06-01)."
        )
    return name, version


def _refuse_nul(value: Any, what: str) -> None:
    """PostgreSQL stores no NUL character in text or JSON: refuse it as bad input
    instead of failing inside the database."""
    if isinstance(value, str):
        if "\x00" in value:
            raise UserError(f"{what} holds a NUL character; remove it.")
    elif isinstance(value, dict):
        for key, inner in value.items():
            _refuse_nul(key, what)
            _refuse_nul(inner, what)
    elif isinstance(value, list | tuple):
        for inner in value:
            _refuse_nul(inner, what)


def check_metrics(metrics: Any) -> dict[str, float]:
    try:
        return lmetrics.check_metrics(metrics)
    except ValueError as error:
        raise UserError(str(error)) from None


# -- resolving pins ----------------------------------------------------------------


@dataclass(slots=True)
class Pin:
    """A dataset a model used, resolved: its role, the exact version, and the
    reference as the caller wrote it."""

    role: str
    version: Version
    requested: str

    @property
    def evaluation(self) -> bool:
        return is_evaluation_role(self.role)


def pins_resolve(*, user: permissions.User, datasets: Any) -> list[Pin]:
    """{'train': 'reviews@2.3.0', 'eval': 'reviews-eval@main'} -> pins, each ref
    resolved now. A version that does not exist (or that `user` may not read) is
    a UserError naming the role: registering refuses it (HTTP 400)."""
    if not isinstance(datasets, Mapping) or not datasets:
        raise UserError(
            "a model version needs the datasets it used, as role → DATASET@REF "
            '(e.g. {"train": "reviews@2.3.0"}).'
        )
    pins: list[Pin] = []
    for role, spec in datasets.items():
        if not isinstance(role, str) or not ROLE_RE.match(role):
            raise UserError(
                f"{role!r} is not a role: use 1 to 50 letters, digits, '.', '_' or '-' (e.g. train, eval)."
            )
        if not isinstance(spec, str) or not spec.strip():
            raise UserError(f"the {role} dataset must be DATASET@REF, e.g. reviews@2.3.0.")
        spec = spec.strip()
        if "://" in spec:
            raise UserError(
                f"{role}: {spec} is a source, not a dataset version; a model pins dataset versions "
                "(DATASET@REF) so that it can be reproduced."
            )
        try:
            _, version = resolve_spec(spec, user)
        except NotFound as error:
            # A pin that names nothing is bad input to the registration (400),
            # not a missing page.
            raise UserError(f"cannot pin {role} = {spec}: {error}") from None
        pins.append(Pin(role=role, version=version, requested=spec))
    if not any(not pin.evaluation for pin in pins):
        raise UserError(
            "a model version needs at least one training dataset: roles such as "
            f"{', '.join(sorted(p.role for p in pins))} name evaluation data; add e.g. train=DATASET@REF."
        )
    return pins


# -- writing -------------------------------------------------------------------------


@dataclass(slots=True)
class TrainingResult:
    model: ModelVersion
    created: bool
    training_run: Run | None = None
    evaluation_run: Run | None = None
    pins: list[ModelPin] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = model_as_dict(self.model, pins=self.pins)
        data["created"] = self.created
        data["training_run"] = self.training_run.node_id if self.training_run else None
        data["evaluation_run"] = self.evaluation_run.node_id if self.evaluation_run else None
        return data


def pin_as_dict(pin: ModelPin) -> dict[str, Any]:
    version = pin.version
    return {
        "role": pin.role,
        "evaluation": pin.evaluation,
        "dataset": version.dataset.name,
        "version": version.id,
        "semver": version.semver,
        "tree": version.tree_id,
        "requested": pin.requested,
        "golden": version.golden,
        "rolled_back": version.rolled_back,
        "rolled_back_reason": version.rolled_back_reason,
    }


def model_as_dict(
    model: ModelVersion, *, pins: list[ModelPin] | None = None, hidden: int = 0
) -> dict[str, Any]:
    """The model version as the API shows it; `hidden` counts the pins left out of
    `pins` because the reader may not see their datasets."""
    if pins is None:
        prefetched = "pins" in getattr(model, "_prefetched_objects_cache", {})
        pins = list(model.pins.all() if prefetched else model.pins.select_related("version__dataset"))
    predecessor = model.predecessor
    return {
        "id": model.node_id,
        "kind": "model",
        "name": model.name,
        "version": model.version,
        "spec": model.spec,
        "created": model.created.isoformat(),
        "metrics": model.metrics,
        "params": model.params,
        "code": model.code_ref,
        "artifact": model.artifact_uri,
        "description": model.description,
        "actor": model.actor,
        "origin": model.origin,
        "datasets": [pin_as_dict(pin) for pin in pins],
        "hidden": hidden,
        "predecessor": predecessor.spec if predecessor else None,
        "flagged": model.flagged,
        "tolerance": model.tolerance,
        "regressions": model.regressions,
    }


def model_version_create(
    *,
    node: Node,
    name: str,
    version: str,
    created: datetime,
    metrics: dict[str, float],
    params: dict[str, Any],
    code_repo: str = "",
    code_commit: str = "",
    artifact_uri: str = "",
    description: str = "",
    actor: str = "",
    origin: str = "api",
) -> ModelVersion:
    """The model version's row, with its predecessor and regression flag worked
    out now. Called inside the caller's transaction, after its node exists."""
    predecessor = (
        ModelVersion.objects.filter(name=name, created__lte=created)
        .exclude(node=node)
        .order_by("-created", "-node_id")
        .first()
    )
    allowed = tolerance()
    flagged = (
        [change.as_dict() for change in lmetrics.regressions(predecessor.metrics, metrics, allowed)]
        if predecessor is not None
        else []
    )
    return ModelVersion.objects.create(
        node=node,
        name=name,
        version=version,
        created=created,
        metrics=metrics,
        params=params,
        code_repo=code_repo,
        code_commit=code_commit,
        artifact_uri=artifact_uri[:1000],
        description=description,
        actor=actor[:150],
        origin=origin[:16],
        predecessor=predecessor,
        tolerance=allowed,
        regressions=flagged,
    )


def _same_registration(
    model: ModelVersion,
    pins: list[Pin],
    metrics: dict[str, float],
    params: dict[str, Any],
    code: tuple[str, str],
    artifact: str,
) -> bool:
    stored = dict(model.pins.values_list("role", "version_id"))
    return (
        stored == {pin.role: pin.version.id for pin in pins}
        and model.metrics == metrics
        and model.params == params
        and (model.code_repo, model.code_commit) == code
        and model.artifact_uri == artifact
    )


def _run_node(*, key_origin: str, name: str, created: datetime) -> Node:
    return Node.objects.create(
        kind=Node.Kind.RUN, key=f"run:{key_origin}:{uuid.uuid4().hex}", label=name[:300], created=created
    )


def training_record(
    *,
    user: permissions.User,
    model: str,
    version: str,
    datasets: Mapping[str, str],
    metrics: Mapping[str, float] | None = None,
    params: dict[str, Any] | None = None,
    code: str = "",
    artifact: str = "",
    description: str = "",
    actor: str = "",
    run_name: str = "",
    started: datetime | None = None,
    ended: datetime | None = None,
    origin: str = "api",
) -> TrainingResult:
    """Register model version `model`@`version`, trained (and evaluated) on
    `datasets` (role → DATASET@REF), with the training run that produced it and,
    when evaluation roles are given, the evaluation run that judged it.

    Raises UserError for bad input or a pinned version that does not exist,
    Forbidden without the steward role. Registering the same content twice
    returns the first registration (``created`` False).
    """
    permissions.require_role(user, permissions.STEWARD, "register model versions")
    for value, what in (
        (datasets, "datasets"),
        (metrics, "metrics"),
        (params, "params"),
        ([code, artifact, description, actor, run_name], "the model's description"),
    ):
        _refuse_nul(value, what)
    name, version = check_model_name(model, version)
    metrics = check_metrics(metrics)
    params = _check_params(params)
    code_repo, code_commit = parse_code_ref(code)
    artifact = (artifact or "").strip()
    if len(artifact) > 1000:
        raise UserError("the artifact URI is longer than 1,000 characters.")
    if started and ended and ended < started:
        raise UserError("a training run cannot end before it starts: check started and ended.")
    pins = pins_resolve(user=user, datasets=datasets)
    existing = ModelVersion.objects.filter(name=name, version=version).first()
    if existing is not None:
        if _same_registration(existing, pins, metrics, params, (code_repo, code_commit), artifact):
            return TrainingResult(
                model=existing, created=False, pins=list(existing.pins.select_related("version__dataset"))
            )
        raise UserError(
            f"{name}@{version} is already registered with other data, metrics or code; "
            "a model version never changes: register the new model under a new version."
        )
    who = actor_name(user, actor)
    try:
        with transaction.atomic():
            return _training_write(
                user=user,
                name=name,
                version=version,
                pins=pins,
                metrics=metrics,
                params=params,
                code=(code_repo, code_commit),
                artifact=artifact,
                description=description,
                actor=who,
                run_name=(run_name or "").strip() or f"train-{name}",
                started=started,
                ended=ended,
                origin=origin,
            )
    except IntegrityError:
        # Another registration of the same name and version won the race.
        raise UserError(f"{name}@{version} was registered by someone else a moment ago.") from None


def _training_write(
    *,
    user: permissions.User,
    name: str,
    version: str,
    pins: list[Pin],
    metrics: dict[str, float],
    params: dict[str, Any],
    code: tuple[str, str],
    artifact: str,
    description: str,
    actor: str,
    run_name: str,
    started: datetime | None,
    ended: datetime | None,
    origin: str,
) -> TrainingResult:
    now = timezone.now()
    model_node = Node.objects.create(
        kind=Node.Kind.MODEL, key=model_key(name, version), label=f"{name}@{version}", created=now
    )
    model = model_version_create(
        node=model_node,
        name=name,
        version=version,
        created=now,
        metrics=metrics,
        params=params,
        code_repo=code[0],
        code_commit=code[1],
        artifact_uri=artifact,
        description=description,
        actor=actor,
        origin=origin,
    )
    training_run, evaluation_run = _runs_write(
        name=name,
        run_name=run_name,
        metrics=metrics,
        params=params,
        code=code,
        actor=actor,
        started=started,
        ended=ended,
        origin=origin,
        now=now,
        evaluated=any(pin.evaluation for pin in pins),
    )
    edges: list[tuple[int, int]] = [(training_run.node_id, model_node.pk)]
    if evaluation_run is not None:
        edges.append((model_node.pk, evaluation_run.node_id))
    edges += _pins_write(model=model, pins=pins, training_run=training_run, evaluation_run=evaluation_run)
    edges_link(edges)
    _training_audit(
        user=user,
        actor=actor,
        model=model,
        pins=pins,
        metrics=metrics,
        params=params,
        artifact=artifact,
        origin=origin,
    )
    stored = list(model.pins.select_related("version__dataset"))
    return TrainingResult(
        model=model, created=True, training_run=training_run, evaluation_run=evaluation_run, pins=stored
    )


def _runs_write(
    *,
    name: str,
    run_name: str,
    metrics: dict[str, float],
    params: dict[str, Any],
    code: tuple[str, str],
    actor: str,
    started: datetime | None,
    ended: datetime | None,
    origin: str,
    now: datetime,
    evaluated: bool,
) -> tuple[Run, Run | None]:
    """The training run that produced the model and, when evaluation data is
    pinned, the evaluation run that judged it."""
    common: dict[str, Any] = {
        "code_repo": code[0],
        "code_commit": code[1],
        "actor": actor,
        "status": RunStatus.COMPLETED,
        "origin": origin,
    }
    training_run = Run.objects.create(
        node=_run_node(key_origin=origin, name=run_name, created=now),
        step=StepKind.TRAINING,
        name=run_name[:300],
        params=params,
        started=started,
        ended=ended or now,
        **common,
    )
    if not evaluated:
        return training_run, None
    evaluation_run = Run.objects.create(
        node=_run_node(key_origin=origin, name=f"evaluate-{name}", created=now),
        step=StepKind.EVALUATION,
        name=f"evaluate-{name}"[:300],
        params={},
        ended=now,
        # The scores the evaluation produced, shown in the run's panel.
        facets={"metrics": metrics},
        **common,
    )
    return training_run, evaluation_run


def _pins_write(
    *, model: ModelVersion, pins: list[Pin], training_run: Run, evaluation_run: Run | None
) -> list[tuple[int, int]]:
    """Pin each dataset version to the model, through the run that consumed it:
    the evaluation run for evaluation data, the training run for the rest.
    Returns the edges from the versions' nodes to those runs, for the caller to link."""
    edges: list[tuple[int, int]] = []
    rows = []
    for pin in pins:
        run = evaluation_run if pin.evaluation else training_run
        assert run is not None
        dataset_node = node_for(version_endpoint(pin.version))
        edges.append((dataset_node.pk, run.node_id))
        rows.append(
            ModelPin(
                model=model,
                role=pin.role,
                version=pin.version,
                requested=pin.requested[:400],
                run=run,
                evaluation=pin.evaluation,
            )
        )
    ModelPin.objects.bulk_create(rows)
    return edges


def _training_audit(
    *,
    user: permissions.User,
    actor: str,
    model: ModelVersion,
    pins: list[Pin],
    metrics: dict[str, float],
    params: dict[str, Any],
    artifact: str,
    origin: str,
) -> None:
    AuditEvent.objects.create(
        actor=actor,
        user=user if user is not None and user.is_authenticated else None,
        action="model.register",
        object_type="model_version",
        object_id=model.spec,
        after={
            "model": model.spec,
            "origin": origin,
            "datasets": {pin.role: f"{pin.version.dataset.name}@{pin.version.id}" for pin in pins},
            "metrics": metrics,
            "params": params,
            "code": model.code_ref,
            "artifact": artifact,
            "predecessor": model.predecessor.spec if model.predecessor else None,
            "regressions": model.regressions,
        },
    )


def pins_attach(*, model: ModelVersion, run: Run, pins: list[Pin]) -> None:
    """Pin dataset versions to a model whose training run already exists (a
    DVC import): rows only, the run's edges are the importer's."""
    ModelPin.objects.bulk_create(
        [
            ModelPin(
                model=model,
                role=pin.role,
                version=pin.version,
                requested=pin.requested[:400],
                run=run,
                evaluation=pin.evaluation,
            )
            for pin in pins
        ],
        ignore_conflicts=True,
    )


def model_node_for(endpoint: Endpoint) -> Node:
    """The node of a model version an importer names (DVC's train stage outs),
    with its ModelVersion row made the first time. Inside the importer's
    transaction."""
    node = Node.objects.filter(key=endpoint.key).first()
    if node is not None:
        return node
    fields = dict(endpoint.model or {})
    created = fields.pop("created", None) or timezone.now()
    node = Node.objects.create(kind=Node.Kind.MODEL, key=endpoint.key, label=endpoint.label, created=created)
    model_version_create(node=node, created=created, **fields)
    return node


def flag_models_trained_on(*, version_ids: list[str], reason: str) -> list[str]:
    """Flag the model versions that pinned any of `version_ids` — the rollback
    worker calls this, inside its transaction, for the versions a rollback
    undoes. Writes one audit event per model version (``model.flag``) and
    returns their specs. The model page shows the flag from the pinned
    versions' rolled-back state and reason, so nothing on the model row
    changes: a model version stays as it was registered."""
    pins = (
        ModelPin.objects.filter(version_id__in=list(version_ids))
        .select_related("model", "version__dataset")
        .order_by("model__name", "model__created", "role")
    )
    by_model: dict[int, tuple[ModelVersion, list[ModelPin]]] = {}
    for pin in pins:
        by_model.setdefault(pin.model_id, (pin.model, []))[1].append(pin)
    for model, used in by_model.values():
        AuditEvent.objects.create(
            actor="worker",
            action="model.flag",
            dataset=used[0].version.dataset,
            object_type="model_version",
            object_id=model.spec,
            after={
                "reason": reason,
                "datasets": {pin.role: f"{pin.version.dataset.name}@{pin.version.id}" for pin in used},
            },
        )
    return [model.spec for model, _ in by_model.values()]
