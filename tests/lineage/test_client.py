"""The Python client's record_run, against a real server process (live_server)."""

from __future__ import annotations

import pytest

from catalog.services.tokens import token_create
from lineage.models import Run


@pytest.fixture(autouse=True)
def roles(transactional_db):
    """The live server's tests flush the database, role groups included."""
    from django.contrib.auth.models import Group

    for name in ("viewer", "steward", "approver", "admin"):
        Group.objects.get_or_create(name=name)


def test_record_run_from_the_client(live_server, personas, make_version):
    from strata_client import Client
    from strata_client.errors import ClientError, NotFound
    from strata_client.lineage import record_run

    make_version("reviews-raw")
    make_version("reviews")
    _, secret = token_create(user=personas["alice"], name="pipeline")
    client = Client(live_server.url, secret)
    run = record_run(
        client,
        step="dedup-minhash",
        params={"threshold": 0.85},
        inputs=["reviews-raw@main", "s3://crawl/2024-06/"],
        outputs=["reviews@1.0.0"],
        code="https://git.example.org/data/dedup#9e1f0aa",
    )
    stored = Run.objects.get(node_id=run["id"])
    assert stored.step == "dedup" and stored.params == {"threshold": 0.85} and stored.code_commit == "9e1f0aa"
    assert [i["label"] for i in run["inputs"]][0] == "reviews-raw@1.0.0"
    with pytest.raises(NotFound, match="no dataset named 'ghost'"):
        record_run(client, step="x", outputs=["ghost@1.0.0"])
    with pytest.raises(ClientError, match="not a step kind"):
        record_run(client, step="x", kind="mining", outputs=["reviews@1.0.0"])


def test_record_training_from_the_client(live_server, personas, make_version):
    from registry.models import ModelVersion
    from strata_client import Client
    from strata_client.errors import ClientError
    from strata_client.lineage import model_version, record_training

    train = make_version("reviews")
    evaluation = make_version("reviews-eval")
    _, secret = token_create(user=personas["alice"], name="pipeline")
    client = Client(live_server.url, secret)
    registered = record_training(
        client,
        model="fraud",
        version="3.1",
        datasets={"train": "reviews@1.0.0", "eval": "reviews-eval@main"},
        metrics={"auc": 0.91, "log_loss": 0.23},
        params={"lr": 0.05},
        code="https://git.example.org/ml/fraud#4c1d2e9",
        artifact="s3://models/fraud/3.1/model.onnx",
    )
    assert registered["created"] and registered["spec"] == "fraud@3.1"
    pinned = {d["role"]: d["version"] for d in registered["datasets"]}
    assert pinned == {"train": train.id, "eval": evaluation.id}
    stored = ModelVersion.objects.get(name="fraud", version="3.1")
    assert stored.metrics == {"auc": 0.91, "log_loss": 0.23} and stored.code_commit == "4c1d2e9"
    assert model_version(client, "fraud@3.1")["datasets"][0]["tree"] in (train.tree_id, evaluation.tree_id)
    with pytest.raises(ClientError, match="cannot pin train = reviews@4.0.0") as refused:
        record_training(client, model="fraud", version="3.2", datasets={"train": "reviews@4.0.0"})
    assert refused.value.exit_code == 2
