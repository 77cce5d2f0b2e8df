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
