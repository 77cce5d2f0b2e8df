"""Lineage endpoints of the REST API (mounted at /api/v1/).

- ``POST /runs`` records a run (the service every other way of recording uses).
- ``POST /lineage`` takes one OpenLineage event (RunEvent, DatasetEvent, JobEvent).
- ``GET /lineage/nodes/{id}``, ``…/graph``, ``…/upstream``, ``…/downstream``,
  ``GET /lineage/path`` and ``GET /lineage/changes`` read the graph.
- ``POST /models/{name}/versions`` (or ``POST /models`` with the name in the
  body) registers a model version with the exact dataset versions it trained and
  was evaluated on; ``GET /models``, ``GET /models/{name}/versions``,
  ``GET /models/{name}/versions/{version}`` (and ``…/lock``) and
  ``GET /models/compare?a=…&b=…`` read them.

Errors are the API's: ``{"error": "one sentence"}`` with a 4xx status.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Field, Router, Schema

from catalog.services.errors import UserError
from lineage import selectors
from lineage.domain import graph as lgraph
from lineage.ingest.openlineage import MAX_DEPTH, openlineage_ingest
from lineage.services import runs as services
from registry import selectors as model_selectors
from registry.models import ModelVersion
from registry.services import training
from registry.services.locks import lock_build

router = Router(tags=["lineage"])

_MAX_EVENT_BYTES = 5 * 1024 * 1024


class RunIn(Schema):
    name: str = Field(..., description="the step's name, e.g. 'dedup-minhash'")
    step: str | None = Field(
        None,
        description="collection, cleaning, dedup, annotation, synthetic, split, training, evaluation or other;"
        " guessed from the name when left out",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    code: str = Field("", description="REPOSITORY#COMMIT")
    actor: str = ""
    started: datetime | None = None
    ended: datetime | None = None
    status: str = "completed"
    command: str = ""
    inputs: list[str] = Field(default_factory=list, description="DATASET@REF or source URIs")
    outputs: list[str] = Field(default_factory=list, description="DATASET@REF or source URIs")


@router.post("/runs", summary="Record a run with its inputs and outputs")
def run_create(request: HttpRequest, payload: RunIn):
    result = services.run_record(
        user=request.user,
        name=payload.name,
        step=payload.step or services.guess_step(payload.name),
        params=payload.params,
        code=payload.code,
        actor=payload.actor,
        started=payload.started,
        ended=payload.ended,
        status=payload.status,
        command=payload.command,
        inputs=payload.inputs,
        outputs=payload.outputs,
        origin="api",
    )
    return JsonResponse(result.as_dict(), status=201)


@router.get("/runs/{node_id}", summary="A run with its inputs and outputs")
def run_get(request: HttpRequest, node_id: int):
    node = selectors.node_get(user=request.user, node_id=node_id)
    details = selectors.node_details(user=request.user, node=node)
    if details.run is None:
        raise UserError(f"lineage node {node_id} is a {node.kind}, not a run.")
    return details.as_dict()


@router.post("/lineage", summary="Take in one OpenLineage event (spec 2-0-x)")
def lineage_ingest(request: HttpRequest):
    if len(request.body) > _MAX_EVENT_BYTES:
        raise UserError("the event is larger than 5 MiB.")
    try:
        event = json.loads(request.body or b"")
    except RecursionError:
        raise UserError(f"the event nests deeper than {MAX_DEPTH} levels; flatten its facets.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"the body is not JSON ({error.__class__.__name__}: {str(error)[:80]}).") from None
    result = openlineage_ingest(user=request.user, event=event)
    status = 200 if result.duplicate or not result.created else 201
    return JsonResponse(result.as_dict(), status=status)


@router.get("/lineage/nodes/{node_id}", summary="One node of the lineage graph")
def node_get(request: HttpRequest, node_id: int):
    node = selectors.node_get(user=request.user, node_id=node_id)
    return selectors.node_details(user=request.user, node=node).as_dict()


@router.get(
    "/lineage/nodes/{node_id}/graph", summary="The laid-out neighbourhood of a node (as the page draws it)"
)
def node_graph(request: HttpRequest, node_id: int, depth: str = "2", direction: str = "both"):
    view = selectors.lineage_view(user=request.user, node_id=node_id, depth=depth, direction=direction)
    return selectors.graph_json(view)


def _walk(request: HttpRequest, node_id: int, direction: str, depth: str) -> dict[str, Any]:
    checked = selectors.check_depth(depth)
    focus, graph = selectors.lineage_walk(
        user=request.user, node_id=node_id, direction=direction, depth=checked
    )
    return {
        "node": focus.pk,
        "direction": direction,
        "depth": checked,
        "nodes": [{"id": n, **attrs} for n, attrs in graph.nodes(data=True) if n != focus.pk],
        "edges": [{"source": a, "target": b, "kind": lgraph.edge_kind(graph, a, b)} for a, b in graph.edges],
    }


@router.get("/lineage/nodes/{node_id}/upstream", summary="Everything a node came from (to depth 5)")
def node_upstream(request: HttpRequest, node_id: int, depth: str = "5"):
    return _walk(request, node_id, "upstream", depth)


@router.get("/lineage/nodes/{node_id}/downstream", summary="Everything built from a node (to depth 5)")
def node_downstream(request: HttpRequest, node_id: int, depth: str = "5"):
    return _walk(request, node_id, "downstream", depth)


@router.get("/lineage/path", summary="A shortest path between two nodes")
def node_path(request: HttpRequest, source: int, target: int):
    nodes = selectors.lineage_path(user=request.user, source_id=source, target_id=target)
    return {"path": [services.node_as_dict(node) for node in nodes]}


@router.get("/lineage/changes", summary="What changed upstream between two dataset versions")
def upstream_changes(request: HttpRequest, a: str, b: str):
    return selectors.upstream_changes(user=request.user, spec_a=a, spec_b=b).as_dict()


# -- model versions ------------------------------------------------------------------


class ModelVersionIn(Schema):
    version: str = Field(..., description="the model's version string, e.g. '3.1'")
    datasets: dict[str, Any] = Field(
        ...,
        description="role → DATASET@REF, e.g. {'train': 'reviews@2.3.0', 'eval': 'reviews-eval@main'};"
        " each ref is resolved now and stored as the exact version",
    )
    metrics: dict[str, Any] = Field(default_factory=dict, description="metric name → number")
    params: dict[str, Any] = Field(default_factory=dict, description="training parameters")
    code: str = Field("", description="REPOSITORY#COMMIT")
    artifact: str = Field("", description="where the model's weights are (a URI)")
    description: str = ""
    run_name: str = Field("", description="the training step's name (default train-<model>)")
    started: datetime | None = None
    ended: datetime | None = None


class ModelRegisterIn(ModelVersionIn):
    model: str = Field(..., description="the model's name, e.g. 'fraud'")


def _register(request: HttpRequest, name: str, payload: ModelVersionIn) -> JsonResponse:
    result = training.training_record(
        user=request.user,
        model=name,
        version=payload.version,
        datasets=payload.datasets,
        metrics=payload.metrics,
        params=payload.params,
        code=payload.code,
        artifact=payload.artifact,
        description=payload.description,
        run_name=payload.run_name,
        started=payload.started,
        ended=payload.ended,
        origin="api",
    )
    return JsonResponse(result.as_dict(), status=201 if result.created else 200)


@router.post("/models/{name}/versions", summary="Register a model version and the data it trained on")
def model_version_create(request: HttpRequest, name: str, payload: ModelVersionIn):
    return _register(request, name, payload)


@router.post("/models", summary="Register a model version (model name in the body)")
def model_register(request: HttpRequest, payload: ModelRegisterIn):
    return _register(request, payload.model, payload)


@router.get("/models", summary="Every model with its latest version")
def model_list(request: HttpRequest, q: str = ""):
    return {
        "models": [
            {
                "name": summary.name,
                "versions": summary.versions,
                "latest": summary.latest.version,
                "latest_created": summary.latest.created.isoformat(),
                "flagged_versions": summary.flagged,
            }
            for summary in model_selectors.model_list(user=request.user, query=q)
        ]
    }


@router.get("/models/compare", summary="Two model versions: metric deltas and what changed in their data")
def model_compare(request: HttpRequest, a: str, b: str, tables: bool = True):
    comparison = model_selectors.model_compare(user=request.user, spec_a=a, spec_b=b, tables=tables)
    return comparison.as_dict()


@router.get("/models/{name}/versions", summary="The versions of a model, newest first")
def model_versions(request: HttpRequest, name: str):
    versions = model_selectors.model_versions(user=request.user, name=name)
    return {"name": name, "versions": [_model_as_dict(request, model) for model in versions]}


@router.get("/models/{name}/versions/{version}", summary="A model version with its pinned dataset versions")
def model_version_get(request: HttpRequest, name: str, version: str):
    model = model_selectors.model_get(user=request.user, spec=f"{name}@{version}")
    return _model_as_dict(request, model)


def _model_as_dict(request: HttpRequest, model: ModelVersion) -> dict[str, Any]:
    """Pins of datasets the caller may not read are counted, not shown."""
    pins, hidden = model_selectors.model_visible_pins(request.user, model)
    return training.model_as_dict(model, pins=pins, hidden=hidden)


@router.get(
    "/models/{name}/versions/{version}/lock", summary="The lock of a model version's data (strata.lock)"
)
def model_version_lock(request: HttpRequest, name: str, version: str):
    return lock_build(user=request.user, model=f"{name}@{version}").as_dict()
