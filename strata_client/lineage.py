"""Record lineage from a pipeline: which step, with what parameters, made which data.

    from strata_client import Client
    from strata_client.lineage import record_run

    client = Client("https://strata.example.org", token)
    record_run(
        client,
        step="dedup-minhash",
        params={"threshold": 0.85},
        inputs=["reviews-raw@main", "s3://crawl/2024-06/"],
        outputs=["reviews@1.3.0"],
        code="https://git.example.org/data/dedup#9e1f0aa",
    )

Inputs and outputs are ``DATASET@REF`` (the server resolves a branch to the
exact version at this moment and stores that) or source URIs. One call is one
run: it is not retried on a dropped connection, so a step is never recorded twice.

Register a model version with the exact data it trained on::

    from strata_client.lineage import record_training

    record_training(
        client,
        model="fraud",
        version="3.1",
        datasets={"train": "reviews@2.3.0", "eval": "reviews-eval@main"},
        metrics={"auc": 0.912, "log_loss": 0.231},
        params={"lr": 0.05, "depth": 8},
        code="https://git.example.org/ml/fraud#4c1d2e9",
        artifact="s3://models/fraud/3.1/model.onnx",
    )

Each ref is resolved by the server when the model is registered and stored as
the exact version id; ``python manage.py strata reproduce --model fraud@3.1 DEST``
brings those bytes back. Registering is safe to retry: the same model version
with the same content is returned as first registered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def record_run(
    client: Any,
    *,
    step: str,
    params: dict[str, Any] | None = None,
    inputs: list[str] | tuple[str, ...] = (),
    outputs: list[str] | tuple[str, ...] = (),
    kind: str | None = None,
    code: str = "",
    command: str = "",
    started: datetime | None = None,
    ended: datetime | None = None,
    status: str = "completed",
) -> dict[str, Any]:
    """Record one run of `step` on the server `client` talks to (a
    ``strata_client.Client``); returns the run as the server stored it.

    `kind` is the step kind (collection, cleaning, dedup, annotation, synthetic,
    split, training, evaluation, other); without it the server guesses from the
    step's name. Raises the client's errors (ClientError and its kinds for a
    refused request, with the server's one-sentence reason).
    """
    body: dict[str, Any] = {
        "name": step,
        "params": dict(params or {}),
        "inputs": list(inputs),
        "outputs": list(outputs),
        "code": code,
        "command": command,
        "status": status,
    }
    if kind:
        body["step"] = kind
    if started is not None:
        body["started"] = started.isoformat()
    if ended is not None:
        body["ended"] = ended.isoformat()
    _, run = client.transport.call("POST", "/runs", body=body, retry=False)
    return run


def record_training(
    client: Any,
    *,
    model: str,
    version: str,
    datasets: dict[str, str],
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    code: str = "",
    artifact: str = "",
    description: str = "",
    run_name: str = "",
    started: datetime | None = None,
    ended: datetime | None = None,
) -> dict[str, Any]:
    """Register model version `model`@`version`, trained (and evaluated) on
    `datasets` — role → ``DATASET@REF``; roles naming evaluation data (eval,
    test, holdout…) are recorded as an evaluation run, the others as the
    training run. Returns the model version as the server stored it, with each
    dataset's exact version id, and ``flagged``/``regressions`` when a metric is
    worse than the previous version's by more than the server's tolerance.

    Raises the client's errors: a pinned version that does not exist is a
    ClientError (HTTP 400) with the server's one-sentence reason.
    """
    body: dict[str, Any] = {
        "version": version,
        "datasets": dict(datasets),
        "metrics": dict(metrics or {}),
        "params": dict(params or {}),
        "code": code,
        "artifact": artifact,
        "description": description,
        "run_name": run_name,
    }
    if started is not None:
        body["started"] = started.isoformat()
    if ended is not None:
        body["ended"] = ended.isoformat()
    # Safe to retry: the server answers a repeat of the same registration with
    # the model version it already holds.
    _, registered = client.transport.call("POST", f"/models/{model}/versions", body=body, retry=True)
    return registered


def model_version(client: Any, spec: str) -> dict[str, Any]:
    """The model version 'fraud@3.1' with its pinned dataset versions."""
    name, _, version = spec.partition("@")
    _, found = client.transport.call("GET", f"/models/{name}/versions/{version}")
    return found
