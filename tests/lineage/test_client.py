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
