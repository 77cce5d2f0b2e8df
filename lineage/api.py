"""Lineage endpoints of the REST API (mounted at /api/v1/).

- ``POST /runs`` records a run (the service every other way of recording uses).
- ``POST /lineage`` takes one OpenLineage event (RunEvent, DatasetEvent, JobEvent).
- ``GET /lineage/nodes/{id}``, ``…/graph``, ``…/upstream``, ``…/downstream``,
  ``GET /lineage/path`` and ``GET /lineage/changes`` read the graph.

The model version endpoints are the registry's (``registry/api.py``).

Errors are the API's: ``{"error": "one sentence"}`` with a 4xx status.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Field, Router, Schema

from catalog.errors import UserError
from lineage import selectors
from lineage.domain import graph as lgraph
from lineage.ingest.openlineage import MAX_DEPTH, openlineage_ingest
from lineage.services import runs as services

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
