"""Change requests through the API: who may do what, and restricted datasets."""

from __future__ import annotations

import pytest

from catalog.models import Dataset
from catalog.services.refs import branch_create
from changes.services import requests
from changes.services.protection import protection_set
from tests.factories.datasets import push


@pytest.fixture
def proposed(db, local_store, tmp_path, personas):
    """'reviews' with main protected and change request #N from 'relabel', checked."""
    alice = personas["alice"]
    base = push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,dog\n"}, user=alice)
    protection_set(user=alice, dataset=base.dataset, pattern="main", required_approvals=1)
    branch_create(dataset=base.dataset, name="relabel", start=base, user=alice)
    push(tmp_path, "reviews", {"labels.csv": "id,label\n1,cat\n2,wolf\n"}, user=alice, branch="relabel")
    change = requests.change_open(user=alice, dataset_name="reviews", source="relabel", title="Wolves")
    requests.change_check(change.pk)
    change.refresh_from_db()
    return change


def test_the_whole_story_through_the_api(api, proposed):
    number = proposed.pk
    shown = api("bob").get(f"/changes/{number}").json()
    assert shown["title"] == "Wolves" and not shown["mergeable"]
    assert shown["blockers"] == ["it needs 1 approval on this head, and has 0."]
    assert shown["dry_run"]["clean"] is True

    reported = api("alice").post(
        f"/changes/{number}/checks",
        {
            "name": "ci/evaluate",
            "state": "passed",
            "metrics": {"accuracy": 0.9},
            "head": proposed.head_id[:12],
        },
    )
    assert reported.status_code == 201, reported.content
    assert reported.json()["metrics"] == {"accuracy": 0.9}

    assert api("alice").post(f"/changes/{number}/approvals", {}).status_code == 403  # the author
    approved = api("carol").post(f"/changes/{number}/approvals", {"comment": "fine"})
    assert approved.status_code == 201 and approved.json()["mergeable"] is True

    asked = api("alice").post(f"/changes/{number}/merge", {})
    assert asked.status_code == 202 and asked.json()["state"] == "merging"
    requests.change_merge_run(number, "alice")  # the worker (a real one: test_live.py)
    assert api("bob").get(f"/changes/{number}").json()["state"] == "merged"


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status"),
    [
        (None, "get", "/changes/{n}", None, 401),
        ("dave", "post", "/datasets/reviews/changes", {"source": "relabel"}, 403),
        ("bob", "post", "/datasets/reviews/changes", {"source": "relabel"}, 403),
        ("bob", "post", "/changes/{n}/checks", {"name": "ci", "state": "passed"}, 403),
        ("bob", "post", "/changes/{n}/approvals", {}, 403),
        ("bob", "post", "/changes/{n}/merge", {}, 403),
        ("bob", "post", "/changes/{n}/close", {}, 403),
        ("bob", "put", "/datasets/reviews/protections/main", {}, 403),
        ("alice", "post", "/changes/{n}/merge", {}, 409),
        ("alice", "post", "/changes/{n}/checks", {"name": "ci", "state": "done"}, 422),
        (
            "alice",
            "post",
            "/changes/{n}/checks",
            {"name": "ci", "state": "passed", "metrics": {"a": "x"}},
            400,
        ),
        ("alice", "post", "/changes/{n}/checks", {"name": "merge", "state": "passed"}, 400),
        ("alice", "post", "/changes/{n}/checks", {"name": "ci", "state": "passed", "head": "0000000"}, 409),
        ("alice", "get", "/changes/999999", None, 404),
    ],
)
def test_role_matrix_and_bad_input(api, proposed, who, method, path, body, status):
    client = api(who)
    path = path.format(n=proposed.pk)
    answer = client.get(path) if method == "get" else getattr(client, method)(path, body)
    assert answer.status_code == status, answer.content
    assert isinstance(answer.json()["error"], str)


def test_a_restricted_dataset_hides_its_change_requests(api, proposed):
    Dataset.objects.filter(name="reviews").update(visibility=Dataset.Visibility.RESTRICTED)
    assert api("dave").get(f"/changes/{proposed.pk}").status_code == 404
    assert (
        api("dave").post(f"/changes/{proposed.pk}/checks", {"name": "ci", "state": "passed"}).status_code
        == 404
    )
    assert api("dave").get("/datasets/reviews/changes").status_code == 404


def test_protection_rules_through_the_api(api, proposed):
    set_rule = api("alice").put(
        "/datasets/reviews/protections/release/*", {"required_checks": ["ci/evaluate"], "regression": "block"}
    )
    assert set_rule.status_code == 200, set_rule.content
    rules = api("bob").get("/datasets/reviews/protections").json()
    assert [r["pattern"] for r in rules] == ["main", "release/*"]
    assert api("alice").delete("/datasets/reviews/protections/release/*").status_code == 204
