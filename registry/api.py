"""Model version endpoints of the REST API (mounted at /api/v1/).

- ``POST /models/{name}/versions`` (or ``POST /models`` with the name in the
  body) registers a model version with the exact dataset versions it trained and
  was evaluated on; ``GET /models``, ``GET /models/{name}/versions``,
  ``GET /models/{name}/versions/{version}`` (and ``…/lock``) and
  ``GET /models/compare?a=…&b=…`` read them.

Errors are the API's: ``{"error": "one sentence"}`` with a 4xx status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Field, Router, Schema

from registry import selectors
from registry.models import ModelVersion
from registry.services import training
from registry.services.locks import lock_build

# The tag and the operation ids are those these endpoints were published with
# (under lineage), so the schema, and clients generated from it, stay as they were.
router = Router(tags=["lineage"])


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


@router.post(
    "/models/{name}/versions",
    summary="Register a model version and the data it trained on",
    operation_id="lineage_api_model_version_create",
)
def model_version_create(request: HttpRequest, name: str, payload: ModelVersionIn):
    return _register(request, name, payload)


@router.post(
    "/models",
    summary="Register a model version (model name in the body)",
    operation_id="lineage_api_model_register",
)
def model_register(request: HttpRequest, payload: ModelRegisterIn):
    return _register(request, payload.model, payload)


@router.get("/models", summary="Every model with its latest version", operation_id="lineage_api_model_list")
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
            for summary in selectors.model_list(user=request.user, query=q)
        ]
    }


@router.get(
    "/models/compare",
    summary="Two model versions: metric deltas and what changed in their data",
    operation_id="lineage_api_model_compare",
)
def model_compare(request: HttpRequest, a: str, b: str, tables: bool = True):
    comparison = selectors.model_compare(user=request.user, spec_a=a, spec_b=b, tables=tables)
    return comparison.as_dict()


@router.get(
    "/models/{name}/versions",
    summary="The versions of a model, newest first",
    operation_id="lineage_api_model_versions",
)
def model_versions(request: HttpRequest, name: str):
    versions = selectors.model_versions(user=request.user, name=name)
    return {"name": name, "versions": [_model_as_dict(request, model) for model in versions]}


@router.get(
    "/models/{name}/versions/{version}",
    summary="A model version with its pinned dataset versions",
    operation_id="lineage_api_model_version_get",
)
def model_version_get(request: HttpRequest, name: str, version: str):
    model = selectors.model_get(user=request.user, spec=f"{name}@{version}")
    return _model_as_dict(request, model)


def _model_as_dict(request: HttpRequest, model: ModelVersion) -> dict[str, Any]:
    """Pins of datasets the caller may not read are counted, not shown."""
    pins, hidden = selectors.model_visible_pins(request.user, model)
    return training.model_as_dict(model, pins=pins, hidden=hidden)


@router.get(
    "/models/{name}/versions/{version}/lock",
    summary="The lock of a model version's data (strata.lock)",
    operation_id="lineage_api_model_version_lock",
)
def model_version_lock(request: HttpRequest, name: str, version: str):
    return lock_build(user=request.user, model=f"{name}@{version}").as_dict()
