"""OpenLineage (spec 2-0-x) events in: RunEvents, DatasetEvents and JobEvents.

Producers (Airflow, Spark, dbt, …) send one event per state change of a run;
all events with one ``run.runId`` merge into one Strata run: the job's
namespace and name name the step, ``START`` sets when it started, ``COMPLETE``,
``FAIL`` and ``ABORT`` how and when it ended (whatever order they arrive in),
inputs and outputs accumulate, and every facet is kept as sent — including ones
Strata does not know — under ``run.facets``.

Datasets become sources identified by (namespace, name, version facet). One
rule links them to the catalog instead: a dataset whose namespace is ``strata``
(or starts with ``strata://``) and whose name is a Strata dataset — with the
ref in the version facet's ``datasetVersion`` or after an ``@`` in the name — is
that exact dataset version, resolved when the event arrives. If it does not
resolve (unknown name or ref, or not readable by the sender) it is kept as a
source, so a valid event is never refused for naming something Strata lacks.

Validation is strict about what the spec requires and what identifies things
(``eventTime`` a date-time, ``run.runId``, ``job.namespace`` and ``job.name``
non-empty strings, ``eventType`` one of the six, lists where lists go) and
lenient about the rest: extra fields, null facets, missing ``schemaURL`` or
``producer`` are accepted. An event identical to one already taken in is
recognised by its digest and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog import permissions
from catalog.errors import StrataError, UserError
from catalog.models import AuditEvent
from catalog.selectors import resolve_spec
from catalog.services.datasets import actor_name
from lineage.models import IngestedEvent, Node, Run, RunStatus, StepKind
from lineage.services.runs import (
    Endpoint,
    check_step,
    edges_link,
    node_for,
    source_endpoint,
    version_endpoint,
)

EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER")
_STATUS = {
    "START": RunStatus.RUNNING,
    "RUNNING": RunStatus.RUNNING,
    "COMPLETE": RunStatus.COMPLETED,
    "FAIL": RunStatus.FAILED,
    "ABORT": RunStatus.ABORTED,
}
_TERMINAL = {"COMPLETE", "FAIL", "ABORT"}
_MAX_ITEMS = 5_000
# Limits on what a producer may send, refused with a 400 rather than stored cut
# down: facets are kept as sent (a truncated facet would read as complete, or
# no longer be the JSON its producer's schema promises), so an event past a
# limit is refused whole and the producer's log says which part to send less of.
# No OpenLineage facet nests anywhere near 32 levels; deeper nesting only blows up
# every page and export that indents it.
MAX_DEPTH = 32
MAX_FACET_BYTES = 1024 * 1024  # one facet, as compact JSON


@dataclass(slots=True)
class IngestResult:
    """What one event did. ``duplicate``: seen before, nothing changed."""

    kind: str  # "run", "dataset" or "job"
    duplicate: bool = False
    run: Run | None = None
    created: bool = False
    inputs: list[Node] = field(default_factory=list)
    outputs: list[Node] = field(default_factory=list)
    datasets: list[Node] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.kind, "duplicate": self.duplicate}
        if self.run is not None:
            data.update(
                run=self.run.node_id,
                run_id=self.run.external_id,
                status=self.run.status,
                created=self.created,
            )
        if self.inputs or self.outputs:
            data.update(
                inputs=[{"id": n.pk, "kind": n.kind, "label": n.label} for n in self.inputs],
                outputs=[{"id": n.pk, "kind": n.kind, "label": n.label} for n in self.outputs],
            )
        if self.datasets:
            data["datasets"] = [{"id": n.pk, "kind": n.kind, "label": n.label} for n in self.datasets]
        return data


# -- validation --------------------------------------------------------------------


def _object(value: Any, where: str, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise UserError(
            f"{where} must be a JSON object" + ("" if value is not None else ", and it is missing") + "."
        )
    return value


def _text(container: dict[str, Any], key: str, where: str, limit: int = 1000) -> str:
    value = container.get(key)
    if value is None:
        raise UserError(f"{where}.{key} is missing.")
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}.{key} must be a non-empty string.")
    if len(value) > limit:
        raise UserError(f"{where}.{key} is longer than {limit} characters.")
    return value


def _time(event: dict[str, Any]) -> datetime:
    value = event.get("eventTime")
    if value is None:
        raise UserError("eventTime is missing.")
    if not isinstance(value, str):
        raise UserError("eventTime must be an ISO 8601 date-time string.")
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise UserError(f"eventTime {value[:60]!r} is not an ISO 8601 date-time, e.g. 2024-06-01T12:00:00Z.")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _facets(container: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}.{key} must be a JSON object of facets.")
    for name, facet in value.items():
        size = len(json.dumps(facet, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_FACET_BYTES:
            raise UserError(
                f"{where}.{key}.{str(name)[:100]} is {size:,} bytes, more than the "
                f"{MAX_FACET_BYTES:,} a facet may have; send less of it."
            )
    return value


def _check_depth(event: dict[str, Any]) -> None:
    """Refuse an event nesting deeper than MAX_DEPTH (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(event, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if not children:
            continue
        if depth > MAX_DEPTH:
            raise UserError(f"the event nests deeper than {MAX_DEPTH} levels; flatten its facets.")
        pending.extend((child, depth + 1) for child in children)


def _datasets(event: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = event.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"{key} must be a list of datasets.")
    if len(value) > _MAX_ITEMS:
        raise UserError(f"{key} lists more than {_MAX_ITEMS:,} datasets.")
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        _object(item, where)
        _text(item, "namespace", where)
        _text(item, "name", where)
        _facets(item, "facets", where)
        _facets(item, "inputFacets", where)
        _facets(item, "outputFacets", where)
    return value


def _check_optional_strings(event: dict[str, Any]) -> None:
    for key in ("producer", "schemaURL"):
        if key in event and event[key] is not None and not isinstance(event[key], str):
            raise UserError(f"{key} must be a string (a URI).")


# -- datasets -> endpoints ---------------------------------------------------------


def _version_facet(facets: dict[str, Any]) -> str:
    facet = facets.get("version")
    if isinstance(facet, dict):
        value = facet.get("datasetVersion")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    return ""


def dataset_endpoint(dataset: dict[str, Any], user: permissions.User, output: bool = False) -> Endpoint:
    """A dataset of an event as a catalog version (by the documented rule) or a
    source. An output is linked to a catalog version only if the sender may
    write that dataset, as when recording a run any other way."""
    namespace, name = dataset["namespace"], dataset["name"]
    facets = dict(dataset.get("facets") or {})
    version_tag = _version_facet(facets)
    if namespace == "strata" or namespace.startswith("strata://"):
        spec = name if "@" in name or not version_tag else f"{name}@{version_tag}"
        try:
            catalog_dataset, version = resolve_spec(spec, user)
            if output:
                permissions.require_write(user, catalog_dataset)
            return version_endpoint(version)
        except StrataError:
            pass  # not in the catalog, or not the sender's to read or write: keep it as a source
    kept = {**facets}
    for key in ("inputFacets", "outputFacets"):
        if dataset.get(key):
            kept[key] = dataset[key]
    description = ""
    documentation = facets.get("documentation")
    if isinstance(documentation, dict) and isinstance(documentation.get("description"), str):
        description = documentation["description"]
    owner = _owner(facets)
    return source_endpoint(
        namespace=namespace,
        name=name,
        version_tag=version_tag,
        facets=kept,
        description=description,
        owner=owner,
    )


def _owner(facets: dict[str, Any]) -> str:
    ownership = facets.get("ownership")
    if isinstance(ownership, dict) and isinstance(ownership.get("owners"), list):
        for owner in ownership["owners"]:
            if isinstance(owner, dict) and isinstance(owner.get("name"), str):
                return owner["name"]
    return ""


# -- runs --------------------------------------------------------------------------


def _step(run_facets: dict[str, Any], job_facets: dict[str, Any]) -> str:
    """The step kind from a ``strata`` facet ({"step": "dedup"}) when a producer
    adds one; OpenLineage itself has no notion of a lifecycle step."""
    for facets in (run_facets, job_facets):
        facet = facets.get("strata")
        if isinstance(facet, dict) and isinstance(facet.get("step"), str):
            try:
                return check_step(facet["step"])
            except UserError:
                return StepKind.OTHER
    return StepKind.OTHER


def _params(run_facets: dict[str, Any]) -> dict[str, Any]:
    """Parameters from a ``strata`` facet's ``params``, else from the run's
    ``tags`` facet (key/value pairs), else none."""
    facet = run_facets.get("strata")
    if isinstance(facet, dict) and isinstance(facet.get("params"), dict):
        return dict(facet["params"])
    tags = run_facets.get("tags")
    if isinstance(tags, dict) and isinstance(tags.get("tags"), list):
        return {
            str(tag["key"]): tag.get("value")
            for tag in tags["tags"]
            if isinstance(tag, dict) and isinstance(tag.get("key"), str)
        }
    return {}


def _code(job_facets: dict[str, Any]) -> tuple[str, str]:
    facet = job_facets.get("sourceCodeLocation")
    if not isinstance(facet, dict):
        return "", ""
    repo = facet.get("repoUrl") or facet.get("url") or ""
    commit = facet.get("version") or facet.get("tag") or facet.get("branch") or ""
    return (str(repo)[:500], str(commit)[:100])


def _digest(event: dict[str, Any]) -> str:
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def openlineage_ingest(*, user: permissions.User, event: Any) -> IngestResult:
    """Take in one OpenLineage event (already parsed from JSON).

    Raises UserError (→ 400) with the reason for a malformed event. Needs the
    steward role, like every other way of recording runs.
    """
    permissions.require_role(user, permissions.STEWARD, "send lineage events")
    event = _object(event, "the event")
    _check_depth(event)
    _check_optional_strings(event)
    event_time = _time(event)
    if "run" in event:
        return _run_event(user=user, event=event, event_time=event_time)
    if "dataset" in event:
        return _dataset_event(user=user, event=event, event_time=event_time)
    if "job" in event:
        return _job_event(user=user, event=event, event_time=event_time)
    raise UserError(
        "an OpenLineage event needs run (a RunEvent), dataset (a DatasetEvent) or job (a JobEvent)."
    )


def _remember(digest: str, run: Run | None, event_type: str, event_time: datetime) -> bool:
    """Record the event's digest; False if it was already taken in."""
    try:
        with transaction.atomic():
            IngestedEvent.objects.create(digest=digest, run=run, event_type=event_type, event_time=event_time)
    except IntegrityError:
        return False
    return True


def _run_event(*, user: permissions.User, event: dict[str, Any], event_time: datetime) -> IngestResult:
    run_part = _object(event.get("run"), "run")
    run_id = _text(run_part, "runId", "run", limit=200)
    job = _object(event.get("job"), "job")
    job_namespace = _text(job, "namespace", "job", limit=500)
    job_name = _text(job, "name", "job", limit=300)
    event_type = event.get("eventType")
    if event_type is None:
        event_type = "OTHER"
    if not isinstance(event_type, str) or event_type.upper() not in EVENT_TYPES:
        raise UserError(f"eventType must be one of {', '.join(EVENT_TYPES)}, not {event_type!r}.")
    event_type = event_type.upper()
    run_facets = _facets(run_part, "facets", "run")
    job_facets = _facets(job, "facets", "job")
    inputs = _datasets(event, "inputs")
    outputs = _datasets(event, "outputs")
    digest = _digest(event)
    if IngestedEvent.objects.filter(digest=digest).exists():
        existing = Run.objects.filter(node__key=f"run:openlineage:{run_id}").first()
        return IngestResult(kind="run", duplicate=True, run=existing)

    input_endpoints = [dataset_endpoint(d, user) for d in inputs]
    output_endpoints = [dataset_endpoint(d, user, output=True) for d in outputs]
    with transaction.atomic():
        key = f"run:openlineage:{run_id}"
        node, created = Node.objects.get_or_create(
            key=key, defaults={"kind": Node.Kind.RUN, "label": job_name}
        )
        run = Run.objects.select_for_update().filter(node=node).first()
        if run is None:
            created = True
            run = Run(
                node=node,
                name=job_name,
                namespace=job_namespace,
                origin="openlineage",
                external_id=run_id,
                status=RunStatus.UNKNOWN,
                actor=_owner(job_facets) or actor_name(user),
            )
        if not _remember(digest, None, event_type, event_time):
            transaction.set_rollback(True)
            return IngestResult(kind="run", duplicate=True, run=Run.objects.filter(node__key=key).first())
        before = {"status": run.status} if not created else None
        _merge(run, event, event_type, event_time, run_facets, job_facets, job_name, job_namespace)
        run.save()
        IngestedEvent.objects.filter(digest=digest).update(run=run)
        input_nodes = [node_for(endpoint) for endpoint in input_endpoints]
        output_nodes = [node_for(endpoint) for endpoint in output_endpoints]
        edges_link([(n.pk, node.pk) for n in input_nodes] + [(node.pk, n.pk) for n in output_nodes])
        dataset = next((e.version.dataset for e in output_endpoints if e.version is not None), None)
        AuditEvent.objects.create(
            actor=actor_name(user),
            user=user if user is not None and user.is_authenticated else None,
            action="run.openlineage",
            dataset=dataset,
            object_type="run",
            object_id=str(node.pk),
            before=before,
            after={
                "eventType": event_type,
                "runId": run_id,
                "job": f"{job_namespace}/{job_name}",
                "status": run.status,
                "inputs": [n.label for n in input_nodes],
                "outputs": [n.label for n in output_nodes],
            },
        )
    return IngestResult(kind="run", run=run, created=created, inputs=input_nodes, outputs=output_nodes)


def _merge(
    run: Run,
    event: dict[str, Any],
    event_type: str,
    event_time: datetime,
    run_facets: dict[str, Any],
    job_facets: dict[str, Any],
    job_name: str,
    job_namespace: str,
) -> None:
    """Fold one event into the run, so the result does not depend on the order
    events arrive in: the earliest START is the start, the latest terminal
    event the end and the status; facets of later events win per facet."""
    run.name, run.namespace = job_name, job_namespace
    seen = set((run.facets or {}).get("_events", []))
    if event_type == "START":
        if "START" not in seen or run.started is None or event_time < run.started:
            run.started = event_time
    elif "START" not in seen and (run.started is None or event_time < run.started):
        run.started = event_time  # the earliest word of the run, until its START arrives
    if event_type in _TERMINAL:
        if run.ended is None or event_time >= run.ended:
            run.ended = event_time
            run.status = _STATUS[event_type]
    elif event_type in ("START", "RUNNING") and run.ended is None:
        run.status = RunStatus.RUNNING
    facets = dict(run.facets or {})
    previous_time = facets.get("_eventTime", {})
    for part, incoming in (("run", run_facets), ("job", job_facets)):
        merged = dict(facets.get(part) or {})
        for name, value in incoming.items():
            stamp = previous_time.get(f"{part}.{name}")
            if stamp is None or event_time.isoformat() >= stamp:
                merged[name] = value
                previous_time[f"{part}.{name}"] = event_time.isoformat()
        facets[part] = merged
    facets["_eventTime"] = previous_time
    facets["_events"] = sorted({*facets.get("_events", []), event_type})
    run.facets = facets
    if isinstance(event.get("producer"), str):
        run.producer = event["producer"][:500]
    step = _step(facets["run"], facets["job"])
    if step != StepKind.OTHER or not run.step:
        run.step = step
    params = _params(facets["run"])
    if params:
        run.params = params
    code_repo, code_commit = _code(facets["job"])
    if code_repo or code_commit:
        run.code_repo, run.code_commit = code_repo, code_commit
    sql = facets["job"].get("sql")
    if isinstance(sql, dict) and isinstance(sql.get("query"), str) and not run.command:
        run.command = sql["query"][:20_000]


def _dataset_event(*, user: permissions.User, event: dict[str, Any], event_time: datetime) -> IngestResult:
    dataset = _object(event.get("dataset"), "dataset")
    _text(dataset, "namespace", "dataset")
    _text(dataset, "name", "dataset")
    _facets(dataset, "facets", "dataset")
    endpoint = dataset_endpoint(dataset, user)
    with transaction.atomic():
        if not _remember(_digest(event), None, "DATASET", event_time):
            transaction.set_rollback(True)
            return IngestResult(kind="dataset", duplicate=True)
        node = node_for(endpoint)
    return IngestResult(kind="dataset", datasets=[node])


def _job_event(*, user: permissions.User, event: dict[str, Any], event_time: datetime) -> IngestResult:
    """A JobEvent describes a job, not a run of it: Strata records its datasets
    as sources (with their facets), and the job becomes a step when it runs."""
    job = _object(event.get("job"), "job")
    _text(job, "namespace", "job", limit=500)
    _text(job, "name", "job", limit=300)
    _facets(job, "facets", "job")
    endpoints = [
        dataset_endpoint(d, user) for d in [*_datasets(event, "inputs"), *_datasets(event, "outputs")]
    ]
    with transaction.atomic():
        if not _remember(_digest(event), None, "JOB", event_time):
            transaction.set_rollback(True)
            return IngestResult(kind="job", duplicate=True)
        nodes = [node_for(endpoint) for endpoint in endpoints]
    return IngestResult(kind="job", datasets=nodes)
