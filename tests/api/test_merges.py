"""Merges through the API (POST /datasets/{name}/merges) and the Python client."""

from __future__ import annotations

import pytest

from catalog.models import Branch
from catalog.services.refs import branch_create
from tests.factories.datasets import push


@pytest.fixture
def branches(db, local_store, tmp_path, personas):
    """'reviews' with a branch 'relabel': the same cell of labels.csv changed on
    both, and notes.txt changed on relabel only."""
    base = push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n", "notes.txt": "n\n"})
    branch_create(dataset=base.dataset, name="relabel", start=base, actor="alice")
    main = push(tmp_path, "reviews", {"labels.csv": "id,label\n1,lynx\n2,dog\n", "notes.txt": "n\n"})
    relabel = push(
        tmp_path,
        "reviews",
        {"labels.csv": "id,label\n1,puma\n2,wolf\n", "notes.txt": "n2\n"},
        branch="relabel",
    )
    return main, relabel


def test_a_dry_run_lists_conflicts_by_key_and_column_and_writes_nothing(api, branches):
    main, _ = branches
    answer = api("bob").post("/datasets/reviews/merges", {"source": "relabel", "key": "id", "dry_run": True})

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["state"] == "conflicts" and body["version"] is None
    result = body["result"]
    assert result["conflict_count"] == 1
    (conflict,) = result["conflicts"]
    assert (conflict["path"], str(conflict["key"]), conflict["column"]) == ("labels.csv", "1", "label")
    assert Branch.objects.get(dataset__name="reviews", name="main").head_id == main.id
    again = api("bob").get(f"/datasets/reviews/merges/{body['id']}")
    assert again.status_code == 200 and again.json()["result"] == result


def test_a_merge_with_conflicts_is_a_409_that_names_them(api, branches):
    answer = api("alice").post("/datasets/reviews/merges", {"source": "relabel", "key": "id"})

    assert answer.status_code == 409
    body = answer.json()
    assert body["error"] == "the merge has 1 conflicts; nothing was merged."
    assert body["result"]["conflicts"][0]["column"] == "label"


def test_a_steward_merges_with_a_strategy_into_a_two_parent_version(api, branches):
    main, relabel = branches
    answer = api("alice").post(
        "/datasets/reviews/merges",
        {"source": "relabel", "key": "id", "strategy": "target", "message": "Relabel"},
    )

    assert answer.status_code == 201, answer.content
    version = answer.json()["version"]
    assert (version["parent"], version["merge_parent"]) == (main.id, relabel.id)
    assert version["message"] == "Relabel"
    listed = api("bob").get("/datasets/reviews/versions").json()["items"][0]
    assert listed["merge_parent"] == relabel.id


@pytest.mark.parametrize(
    ("who", "body", "status", "error"),
    [
        ("bob", {"source": "relabel"}, 403, "you need the steward role to change reviews."),
        (None, {"source": "relabel"}, 401, None),
        (
            "alice",
            {"source": "main"},
            400,
            "cannot merge branch main into itself: name another branch to merge.",
        ),
        ("alice", {"source": "nope"}, 404, "dataset reviews has no branch nope."),
        ("alice", {"source": "relabel", "strategy": "ours"}, 422, None),
    ],
)
def test_bad_merges_answer_one_sentence(api, branches, who, body, status, error):
    answer = api(who).post("/datasets/reviews/merges", body)
    assert answer.status_code == status, answer.content
    assert isinstance(answer.json()["error"], str)
    if error:
        assert answer.json()["error"] == error


def test_a_restricted_dataset_is_not_found(api, branches, personas):
    from catalog.models import Dataset

    Dataset.objects.filter(name="reviews").update(visibility=Dataset.Visibility.RESTRICTED)
    answer = api("dave").post("/datasets/reviews/merges", {"source": "relabel", "dry_run": True})
    assert answer.status_code == 404


@pytest.fixture
def merges_in_a_worker(monkeypatch):
    """Every merge that reads a table is handed to the worker: the server reads
    this as it starts, so it is set up before `strata_server`."""
    monkeypatch.setenv("STRATA_MERGE_INLINE_BYTES", "0")


@pytest.mark.parametrize("store_url", ["s3"], indirect=True)  # the worker and the client once, on S3
def test_a_large_merge_runs_in_a_worker_and_the_client_waits_for_it(
    merges_in_a_worker, strata_server, store_url, tokens, tmp_path
):
    """Through a live server and a real Celery worker."""
    from strata_client.client import Client
    from strata_client.errors import MergeConflict

    client = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "client-cache"))
    (tmp_path / "v0").mkdir()
    (tmp_path / "v0" / "labels.csv").write_text("id,label\n1,cat\n2,dog\n")
    client.push(str(tmp_path / "v0"), "reviews", message="first")
    client.transport.call("POST", "/datasets/reviews/branches", body={"name": "relabel", "start": "main"})
    for name, labels, branch in [("v1", "1,lynx\n2,dog\n", None), ("v2", "1,puma\n2,wolf\n", "relabel")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "labels.csv").write_text("id,label\n" + labels)
        client.push(str(tmp_path / name), "reviews", branch=branch)

    with pytest.raises(MergeConflict) as refused:
        client.merge("reviews", "relabel", key="id", poll=0.2, wait=120)
    assert refused.value.merge["result"]["conflicts"][0]["column"] == "label"

    merge = client.merge("reviews", "relabel", key="id", strategy="source", poll=0.2, wait=120)

    assert merge["state"] == "done" and merge["progress"] == 1.0
    assert merge["version"]["merge_parent"] == client.resolve("reviews@relabel")
    pulled = client.pull("reviews@main", str(tmp_path / "out"))
    assert pulled.file_count == 1
    assert (tmp_path / "out" / "labels.csv").read_text() == "id,label\n1,puma\n2,wolf\n"
