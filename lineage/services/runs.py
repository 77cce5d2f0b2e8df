"""Writes to the lineage graph: recording runs and the nodes and edges around them.

Every way a run arrives — the REST API, the Python client, ``strata push --step``,
the dashboard's form, OpenLineage events and DVC imports — ends in the functions
here, so the rules live once: who may record (stewards), how an input or output
names a node (``DATASET@REF`` resolved to the exact version now, or a source
URI), that a run never consumes what it produces, and one audit event per run.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from catalog import failpoints, permissions
from catalog.errors import UserError
from catalog.models import AuditEvent, Version
from catalog.selectors import resolve_spec
from catalog.services.datasets import actor_name
from catalog.services.validation import parse_code_ref
from catalog.services.versions import PushResult, version_push
from lineage.models import Edge, Node, Run, RunStatus, Source, StepKind
from strata_store.store import ProgressSink

# Synonyms people type for the step kinds the model knows.
_STEP_ALIASES = {
    "filter": StepKind.CLEANING,
    "clean": StepKind.CLEANING,
    "synthetic_generation": StepKind.SYNTHETIC,
}
# Step names say what a step does often enough to guess its kind.
_STEP_WORDS = [
    (("train", "fit"), StepKind.TRAINING),
    (("eval", "score", "metric", "test"), StepKind.EVALUATION),
    (("split",), StepKind.SPLIT),
    (("dedup", "duplicate"), StepKind.DEDUP),
    (("label", "annot"), StepKind.ANNOTATION),
    (("synth", "generate", "augment"), StepKind.SYNTHETIC),
    (("clean", "filter", "prep", "process", "normal", "featur", "transform"), StepKind.CLEANING),
    (("download", "fetch", "collect", "ingest", "import", "load", "scrape", "crawl"), StepKind.COLLECTION),
]
# How far the cycle check walks down from a run's outputs before it gives up
# (the graph and its drawing tolerate cycles; the check is for clear errors).
_CYCLE_CHECK_BUDGET = 20_000
# Nodes of the kinds apps above lineage own (model versions) are made by those
# apps, with their rows, inside the caller's transaction: kind -> maker. The
# registry fills it in RegistryConfig.ready(); lineage imports nothing of it.
NODE_MAKERS: dict[str, Callable[[Endpoint], Node]] = {}


@dataclass(slots=True)
class Endpoint:
    """An input or output of a run, resolved: a dataset version or a source."""

    key: str
    kind: str  # Node.Kind value
    label: str
    version: Version | None = None
    uri: str = ""
    namespace: str = ""
    name: str = ""
    version_tag: str = ""
    facets: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    owner: str = ""
    # For a model version made by an import (DVC): the fields of its row, made
    # with the node the first time the model is seen.
    model: dict[str, Any] | None = None

    @property
    def display(self) -> str:
        return self.label


def source_key(namespace: str, name: str, version_tag: str = "") -> str:
    """A source's node key: a digest of its identity, since URIs can be long."""
    identity = json.dumps([namespace, name, version_tag], separators=(",", ":"))
    return "source:" + hashlib.sha256(identity.encode()).hexdigest()


def source_endpoint(
    *,
    namespace: str,
    name: str,
    version_tag: str = "",
    uri: str = "",
    facets: dict[str, Any] | None = None,
    description: str = "",
    owner: str = "",
) -> Endpoint:
    """A source named the OpenLineage way: (namespace, name) plus an optional version."""
    if not uri:
        uri = f"{namespace.rstrip('/')}/{name.lstrip('/')}" if "://" in namespace else f"{namespace}:{name}"
    label = name or uri
    return Endpoint(
        key=source_key(namespace, name, version_tag),
        kind=Node.Kind.SOURCE,
        label=label[:300],
        uri=uri[:1000],
        namespace=namespace[:500],
        name=name[:1000],
        version_tag=str(version_tag)[:200],
        facets=dict(facets or {}),
        description=description,
        owner=owner[:150],
    )


def version_endpoint(version: Version) -> Endpoint:
    return Endpoint(
        key=f"version:{version.id}",
        kind=Node.Kind.VERSION,
        label=f"{version.dataset.name}@{version.semver}",
        version=version,
    )


def endpoint_parse(spec: str, *, user: permissions.User, write: bool = False) -> Endpoint:
    """'reviews@1.2.0' (any ref; resolved to the exact version now) or a source
    URI such as 's3://bucket/raw/2024-06/' (anything with '://')."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("an input or output must be DATASET@REF or a source URI, not an empty value.")
    spec = spec.strip()
    if "://" in spec:
        parts = urlsplit(spec)
        if not parts.scheme or not (parts.netloc or parts.path):
            raise UserError(f"{spec!r} is not a URI: write it as scheme://place/path.")
        namespace = f"{parts.scheme}://{parts.netloc}"
        name = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
        return source_endpoint(namespace=namespace, name=name or "/", uri=spec)
    dataset, version = resolve_spec(spec, user)
    if write:
        permissions.require_write(user, dataset)
    return version_endpoint(version)


def endpoints_parse(specs: Iterable[str], *, user: permissions.User, write: bool = False) -> list[Endpoint]:
    return [endpoint_parse(spec, user=user, write=write) for spec in specs]


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """['lr=0.1', 'lang=en'] -> {'lr': 0.1, 'lang': 'en'}: values that read as
    JSON (numbers, true/false, lists) keep their type, the rest stay strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{pair!r} is not a parameter: write key=value.")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def check_step(step: str) -> str:
    value = (step or StepKind.OTHER).strip().lower()
    value = _STEP_ALIASES.get(value, value)
    if value not in StepKind.values:
        raise UserError(f"{step!r} is not a step kind: use one of {', '.join(StepKind.values)}.")
    return value


def guess_step(name: str) -> str:
    """The step kind a step's name suggests ('dedup-minhash' -> dedup), for
    callers that only have a name: the CLI's --step and DVC stage names."""
    lowered = name.lower()
    for words, step in _STEP_WORDS:
        if any(word in lowered for word in words):
            return step
    return StepKind.OTHER


def _check_run_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 300:
        raise UserError("a run needs a name of 1 to 300 characters (the step, e.g. 'dedup-minhash').")
    return name


def _check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict) or not all(isinstance(key, str) for key in params):
        raise UserError("params must be an object of name → value.")
    try:
        json.dumps(params)
    except (TypeError, ValueError):
        raise UserError(
            "params must hold only JSON values (text, numbers, true/false, lists, objects)."
        ) from None
    return params


# -- nodes and edges ---------------------------------------------------------------


def node_for(endpoint: Endpoint) -> Node:
    """The node of an input or output, made on first use. Sources merge facets
    they are sent later, so nothing a producer says is dropped; a node of a kind
    an app above lineage owns (a model version, from an import) is made by that
    app, with its row."""
    if endpoint.kind == Node.Kind.VERSION:
        version = endpoint.version
        assert version is not None
        node, _ = Node.objects.get_or_create(
            key=endpoint.key,
            defaults={
                "kind": Node.Kind.VERSION,
                "label": endpoint.label,
                "version": version,
                "dataset_id": version.dataset_id,
            },
        )
        return node
    if endpoint.kind in NODE_MAKERS:
        return NODE_MAKERS[endpoint.kind](endpoint)
    node, created = Node.objects.get_or_create(
        key=endpoint.key, defaults={"kind": Node.Kind.SOURCE, "label": endpoint.label}
    )
    if created:
        Source.objects.create(
            node=node,
            uri=endpoint.uri,
            namespace=endpoint.namespace,
            name=endpoint.name,
            version_tag=endpoint.version_tag,
            description=endpoint.description,
            owner=endpoint.owner,
            facets=endpoint.facets,
        )
    elif endpoint.facets or endpoint.description or endpoint.owner:
        source = Source.objects.select_for_update().get(node=node)
        merged = {**source.facets, **endpoint.facets}
        changed = merged != source.facets
        source.facets = merged
        for name in ("description", "owner"):
            if getattr(endpoint, name) and getattr(endpoint, name) != getattr(source, name):
                setattr(source, name, getattr(endpoint, name))
                changed = True
        if changed:
            source.save(update_fields=["facets", "description", "owner"])
    return node


def edges_link(pairs: Iterable[tuple[int, int]]) -> int:
    """Add the edges not there yet; returns how many were new."""
    wanted = {(src, dst) for src, dst in pairs if src != dst}
    if not wanted:
        return 0
    existing = set(
        Edge.objects.filter(
            src_id__in={src for src, _ in wanted}, dst_id__in={dst for _, dst in wanted}
        ).values_list("src_id", "dst_id")
    )
    new = [Edge(src_id=src, dst_id=dst) for src, dst in sorted(wanted - existing)]
    Edge.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def _reachable(starts: set[int], targets: set[int]) -> int | None:
    """A target reachable downstream from `starts`, if one is found within budget."""
    seen = set(starts)
    frontier = set(starts)
    while frontier and len(seen) < _CYCLE_CHECK_BUDGET:
        if frontier & targets:
            return next(iter(frontier & targets))
        found = set(Edge.objects.filter(src_id__in=frontier).values_list("dst_id", flat=True))
        frontier = found - seen
        seen |= frontier
    return next(iter(frontier & targets), None) if frontier else None


def _refuse_cycles(inputs: Sequence[Endpoint], outputs: Sequence[Endpoint]) -> None:
    """A run cannot consume what it produces, nor produce something its inputs
    were built from: either would make the graph say data came from itself."""
    both = {e.key for e in inputs} & {e.key for e in outputs}
    if both:
        label = next(e.label for e in inputs if e.key in both)
        raise UserError(f"{label} is both an input and an output; a run cannot consume what it produces.")
    input_ids = set(Node.objects.filter(key__in=[e.key for e in inputs]).values_list("id", flat=True))
    output_ids = set(Node.objects.filter(key__in=[e.key for e in outputs]).values_list("id", flat=True))
    if input_ids and output_ids:
        hit = _reachable(output_ids, input_ids)
        if hit is not None:
            label = Node.objects.get(pk=hit).label
            raise UserError(
                f"{label} was built from this run's outputs; recording the run would make a cycle."
            )


# -- runs --------------------------------------------------------------------------


@dataclass(slots=True)
class RunResult:
    run: Run
    created: bool
    inputs: list[Node]
    outputs: list[Node]
    new_edges: int

    def as_dict(self) -> dict[str, Any]:
        return {
            **run_as_dict(self.run),
            "created": self.created,
            "inputs": [node_as_dict(node) for node in self.inputs],
            "outputs": [node_as_dict(node) for node in self.outputs],
        }


def node_as_dict(node: Node) -> dict[str, Any]:
    data: dict[str, Any] = {"id": node.pk, "kind": node.kind, "label": node.label}
    if node.version_id:
        data["version"] = node.version_id
    return data


def run_as_dict(run: Run) -> dict[str, Any]:
    return {
        "id": run.node_id,
        "kind": "run",
        "step": run.step,
        "name": run.name,
        "namespace": run.namespace,
        "params": run.params,
        "code": run.code_ref,
        "command": run.command,
        "actor": run.actor,
        "started": run.started.isoformat() if run.started else None,
        "ended": run.ended.isoformat() if run.ended else None,
        "status": run.status,
        "origin": run.origin,
        "external_id": run.external_id,
    }


def run_record(
    *,
    user: permissions.User,
    name: str,
    step: str = StepKind.OTHER,
    params: dict[str, Any] | None = None,
    code: str = "",
    actor: str = "",
    started: datetime | None = None,
    ended: datetime | None = None,
    status: str = RunStatus.COMPLETED,
    inputs: Sequence[str | Endpoint] = (),
    outputs: Sequence[str | Endpoint] = (),
    command: str = "",
    namespace: str = "",
    origin: str = "api",
) -> RunResult:
    """Record one run of a lifecycle step with its inputs and outputs.

    Inputs and outputs are ``DATASET@REF`` (resolved now to the exact version, so
    a branch moving later changes nothing) or source URIs; resolved endpoints are
    taken as they are. The user needs the steward role, read access to every
    input dataset and write access to every output dataset. Each call records a
    new run: a step run twice is two runs.
    """
    permissions.require_role(user, permissions.STEWARD, "record runs")
    name = _check_run_name(name)
    step = check_step(step)
    params = _check_params(params)
    if status not in RunStatus.values:
        raise UserError(f"{status!r} is not a run status: use one of {', '.join(RunStatus.values)}.")
    if started and ended and ended < started:
        raise UserError("a run cannot end before it starts: check started and ended.")
    code_repo, code_commit = parse_code_ref(code)
    input_endpoints = [e if isinstance(e, Endpoint) else endpoint_parse(e, user=user) for e in inputs]
    output_endpoints = [
        e if isinstance(e, Endpoint) else endpoint_parse(e, user=user, write=True) for e in outputs
    ]
    if not input_endpoints and not output_endpoints:
        raise UserError("a run needs at least one input or output.")
    return _run_write(
        user=user,
        key=f"run:{origin}:{uuid.uuid4().hex}",
        fields={
            "step": step,
            "name": name,
            "namespace": namespace[:500],
            "params": params,
            "code_repo": code_repo,
            "code_commit": code_commit,
            "command": command,
            "actor": actor_name(user, actor),
            "started": started,
            "ended": ended or (timezone.now() if status == RunStatus.COMPLETED and not started else None),
            "status": status,
            "origin": origin,
        },
        inputs=input_endpoints,
        outputs=output_endpoints,
    )


def run_import(
    *,
    user: permissions.User,
    key: str,
    fields: dict[str, Any],
    inputs: Sequence[Endpoint],
    outputs: Sequence[Endpoint],
) -> RunResult:
    """Record an imported run (DVC) under a key derived from its content: a run
    already recorded under that key is left as it is, so importing the same
    lock twice adds nothing."""
    permissions.require_role(user, permissions.STEWARD, "import runs")
    existing = Run.objects.filter(node__key=key).select_related("node").first()
    if existing is not None:
        return RunResult(run=existing, created=False, inputs=[], outputs=[], new_edges=0)
    fields = {**fields, "step": check_step(fields.get("step", StepKind.OTHER))}
    fields["params"] = _check_params(fields.get("params"))
    return _run_write(user=user, key=key, fields=fields, inputs=inputs, outputs=outputs)


def _run_write(
    *,
    user: permissions.User,
    key: str,
    fields: dict[str, Any],
    inputs: Sequence[Endpoint],
    outputs: Sequence[Endpoint],
) -> RunResult:
    _refuse_cycles(inputs, outputs)
    with transaction.atomic():
        node = Node.objects.create(kind=Node.Kind.RUN, key=key, label=fields["name"][:300])
        run = Run.objects.create(node=node, **fields)
        input_nodes = [node_for(endpoint) for endpoint in inputs]
        output_nodes = [node_for(endpoint) for endpoint in outputs]
        new_edges = edges_link(
            [(n.pk, node.pk) for n in input_nodes] + [(node.pk, n.pk) for n in output_nodes]
        )
        first_dataset = next((e.version.dataset for e in outputs if e.version is not None), None)
        AuditEvent.objects.create(
            actor=actor_name(user, fields.get("actor", "")),
            user=user if user is not None and user.is_authenticated else None,
            action="run.record",
            dataset=first_dataset,
            object_type="run",
            object_id=str(node.pk),
            after={
                "name": run.name,
                "step": run.step,
                "origin": run.origin,
                "params": run.params,
                "inputs": [n.label for n in input_nodes],
                "outputs": [n.label for n in output_nodes],
            },
        )
    return RunResult(run=run, created=True, inputs=input_nodes, outputs=output_nodes, new_edges=new_edges)


# -- the command line's push --step ----------------------------------------------------


@dataclass(slots=True)
class PushStep:
    """A push's --step, --input and --param, checked before anything is pushed,
    so a typo in an input never leaves a version without its run."""

    name: str
    step: str
    params: dict[str, Any]
    inputs: list[Endpoint]


def push_step_prepare(
    *, user: permissions.User, name: str | None, inputs: Sequence[str], params: Sequence[str]
) -> PushStep | None:
    if not name:
        if inputs or params:
            raise UserError("--input and --param describe a step: name it with --step NAME.")
        return None
    permissions.require_role(user, permissions.STEWARD, "record runs")
    name = _check_run_name(name)
    return PushStep(
        name=name,
        step=guess_step(name),
        params=parse_params(params),
        inputs=endpoints_parse(inputs, user=user),
    )


def push_step_record(
    *, user: permissions.User, prepared: PushStep, version: Version, actor: str
) -> RunResult:
    """Record the run that made a just-pushed version, with the version's code."""
    return run_record(
        user=user,
        name=prepared.name,
        step=prepared.step,
        params=prepared.params,
        code=version.code,
        actor=actor,
        inputs=prepared.inputs,
        outputs=[version_endpoint(version)],
        origin="cli",
    )


@dataclass(slots=True)
class RecordedPush:
    """A push, and the run that made its version when the push named a step and
    made a new version."""

    push: PushResult
    run: RunResult | None


def version_push_recorded(
    *,
    user: permissions.User,
    path: str,
    dataset_name: str,
    author: str,
    step: str | None,
    inputs: Sequence[str] = (),
    params: Sequence[str] = (),
    branch: str | None = None,
    message: str = "",
    stage: str | None = None,
    semver: str | None = None,
    semver_override: str | None = None,
    progress: ProgressSink | None = None,
    created: datetime | None = None,
    code: str = "",
) -> RecordedPush:
    """Push `path` as a new version (``version_push``) and record the run that
    made it as `step`, with its `inputs` and `params`: both, or neither.

    The step is checked first (its inputs resolved to exact versions now), so a
    typo costs nothing. The data is stored and registered before the version's
    transaction, and the run is recorded in it: a run that cannot be recorded
    leaves no version and the branch where it was. A push that makes no new
    version records no run. Without a step this is ``version_push`` alone.
    """
    prepared = push_step_prepare(user=user, name=step, inputs=inputs, params=params)
    recorded: list[RunResult] = []

    def record_run(version: Version) -> None:
        assert prepared is not None
        failpoints.hit("push.recording-run")
        recorded.append(push_step_record(user=user, prepared=prepared, version=version, actor=author))

    result = version_push(
        path=path,
        dataset_name=dataset_name,
        author=author,
        user=user,
        branch=branch,
        message=message,
        stage=stage,
        semver=semver,
        semver_override=semver_override,
        progress=progress,
        created=created,
        code=code,
        # In the version's own transaction, under the lock garbage collection
        # takes: the version never appears without the run that made it.
        within=[record_run] if prepared is not None else [],
    )
    return RecordedPush(push=result, run=recorded[0] if recorded else None)


def merge_record(
    *, version: Version, target_head: Version, source_head: Version, user: permissions.User, actor: str
) -> RunResult:
    """Record a merge as a run: the two heads it joined in, the merge version out.
    Called in the merge version's transaction (``catalog.hooks.merged``)."""
    return run_record(
        user=user,
        actor=actor,
        name=f"merge {source_head.semver} into {target_head.semver}",
        step=StepKind.MERGE,
        inputs=[version_endpoint(target_head), version_endpoint(source_head)],
        outputs=[version_endpoint(version)],
        origin="merge",
    )
