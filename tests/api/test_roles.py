"""Every endpoint, called as every persona, on a public and a restricted dataset.

Allowed calls succeed; a write the user may not make on a dataset they can read is
403; a restricted dataset they cannot read is 404 exactly as a missing one would be;
no token at all is 401. The table below is the whole contract: one row per endpoint,
with the rule that decides it.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from catalog.models import Dataset
from catalog.services.datasets import dataset_update
from catalog.services.refs import branch_create, tag_create
from catalog.services.remote import upload_open, upload_pack_target
from catalog.services.versions import version_push
from catalog.store import get_backend
from registry.services.training import training_record
from strata_store.hashing import EMPTY_DIGEST, digest_hex
from strata_store.packs import PackWriter

PERSONAS = [None, "alice", "bob", "carol", "dave", "erin"]
WRITERS = {"alice", "erin"}  # alice is a steward and owns both datasets; erin is an admin
READERS_OF_RESTRICTED = {"alice", "erin"}


@pytest.fixture
def local_store(settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"


@pytest.fixture
def world(personas, local_store, tmp_path):
    """Two datasets pushed by alice — "open" (public) and "secret" (restricted) — each
    with a branch per persona to delete, and an upload of alice's with a stored pack."""
    source = tmp_path / "src"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "a.txt").write_text("alpha\n")
    (source / "b.csv").write_text("id,label\n1,cat\n")
    alice = personas["alice"]
    state = {}
    for name in ("open", "secret"):
        version_push(path=str(source), dataset_name=name, user=alice)
        dataset = Dataset.objects.get(name=name)
        head = dataset.branches.get(name="main").head
        for persona in PERSONAS:
            branch_create(user=alice, dataset=dataset, name=f"gone-{persona}", start=head)
        tag_create(user=alice, dataset=dataset, name="v1", version=head)
        upload = upload_open(user=alice, dataset_name=name).upload
        writer = PackWriter(get_backend().spool_dir())
        data = f"a chunk only {name} has".encode()
        writer.add(digest_hex(data), data)
        pack = writer.finish()
        with open(pack.path, "rb") as handle:
            md5 = base64.b64encode(hashlib.md5(handle.read()).digest()).decode()
        # As a client does: ask where the pack goes, then put it there.
        upload_pack_target(
            user=alice,
            upload_id=upload.id,
            pack_id=pack.pack_id,
            size=pack.size,
            md5=md5,
            local_url=lambda *_: "",
        )
        get_backend().put_pack(pack.pack_id, pack.path)
        state[name] = {
            "head": head.id,
            "upload": upload.id,
            "pack": pack,
            "md5": md5,
            "chunk": digest_hex(data),
        }
    # A model trained on both: its pin of "secret" must stay hidden from who cannot read it.
    training_record(user=alice, model="m", version="1", datasets={"train": "open@v1", "eval": "secret@v1"})
    dataset_update(user=alice, dataset=Dataset.objects.get(name="secret"), visibility="restricted")
    return state


def _empty_file(path: str) -> dict:
    return {"path": path, "kind": "file", "size": 0, "digest": EMPTY_DIGEST}


# (name, method, path, body, rule, status when allowed). Paths and bodies may use
# {ds} (the dataset), {who} (the persona), {head}, {upload}, {pack}, {chunk}.
ENDPOINTS = [
    ("me", "get", "/me", None, "anyone", 200),
    ("list datasets", "get", "/datasets", None, "anyone", 200),
    ("create dataset", "post", "/datasets", {"name": "new-{who}"}, "steward", 201),
    ("get dataset", "get", "/datasets/{ds}", None, "reader", 200),
    ("update dataset", "patch", "/datasets/{ds}", {"description": "by {who}"}, "writer", 200),
    ("list versions", "get", "/datasets/{ds}/versions", None, "reader", 200),
    ("resolve", "get", "/datasets/{ds}/resolve?ref=v1", None, "reader", 200),
    ("get version", "get", "/datasets/{ds}/versions/{head}", None, "reader", 200),
    ("version on branch", "get", "/datasets/{ds}/versions/{head}/on/main", None, "reader", 200),
    ("list files", "get", "/datasets/{ds}/versions/main/files", None, "reader", 200),
    ("download file", "get", "/datasets/{ds}/versions/main/files/docs/a.txt", None, "reader", 200),
    ("download tar", "get", "/datasets/{ds}/versions/main/tar", None, "reader", 200),
    ("manifest", "get", "/datasets/{ds}/versions/main/manifest", None, "reader", 200),
    ("list branches", "get", "/datasets/{ds}/branches", None, "reader", 200),
    ("create branch", "post", "/datasets/{ds}/branches", {"name": "new-{who}", "start": "v1"}, "writer", 201),
    ("delete branch", "delete", "/datasets/{ds}/branches/gone-{who}", None, "writer", 204),
    ("list tags", "get", "/datasets/{ds}/tags", None, "reader", 200),
    ("create tag", "post", "/datasets/{ds}/tags", {"name": "t-{who}", "version": "main"}, "writer", 201),
    ("open upload", "post", "/datasets/{ds}/uploads", {}, "writer", 201),
    (
        "commit",
        "post",
        "/datasets/{ds}/versions",
        {"entries": [_empty_file("by-{who}.txt")], "message": "from {who}"},
        "writer",
        201,
    ),
    ("missing", "post", "/uploads/{upload}/missing", {"chunks": ["{chunk}"]}, "uploader", 200),
    (
        "pack target",
        "post",
        "/uploads/{upload}/packs",
        {"pack_id": "{pack}", "size": "{size}", "md5": "{md5}"},
        "uploader",
        200,
    ),
    (
        "register pack",
        "post",
        "/uploads/{upload}/packs/{pack}/register",
        {"size": "{size}", "chunks": ["{chunk}"]},
        "uploader",
        200,
    ),
    ("stage files", "post", "/uploads/{upload}/files", {"entries": [_empty_file("x.txt")]}, "uploader", 200),
    ("upload state", "get", "/uploads/{upload}", None, "uploader", 200),
    # The model "m" pins both datasets; what each reader sees of its pins is tested below.
    ("model versions", "get", "/models/m/versions", None, "anyone", 200),
    ("model version", "get", "/models/m/versions/1", None, "anyone", 200),
]


def expected(rule: str, persona: str | None, restricted: bool, allowed_status: int) -> int:
    if persona is None:
        return 401
    can_read = not restricted or persona in READERS_OF_RESTRICTED
    if rule == "anyone":
        return allowed_status
    if rule == "steward":
        return allowed_status if persona in WRITERS else 403
    if rule == "reader":
        return allowed_status if can_read else 404
    if rule == "writer":
        if not can_read:
            return 404
        return allowed_status if persona in WRITERS else 403
    if rule == "uploader":  # an upload exists only for the user who opened it
        return allowed_status if persona == "alice" else 404
    raise AssertionError(rule)


def _fill(value, values: dict[str, object]):
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in values:
            return values[value[1:-1]]
        for key, replacement in values.items():
            value = value.replace("{" + key + "}", str(replacement))
        return value
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    return value


@pytest.mark.parametrize("dataset", ["open", "secret"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[row[0] for row in ENDPOINTS])
def test_every_endpoint_answers_each_role_as_the_rules_say(api, world, endpoint, dataset):
    name, method, path, body, rule, allowed_status = endpoint
    state = world[dataset]
    outcomes = {}
    for persona in PERSONAS:
        values = {
            "ds": dataset,
            "who": persona or "anon",
            "head": state["head"],
            "upload": state["upload"],
            "pack": state["pack"].pack_id,
            "size": state["pack"].size,
            "md5": state["md5"],
            "chunk": state["chunk"],
        }
        response = getattr(api(persona), method)(_fill(path, values), _fill(body, values))
        want = expected(rule, persona, dataset == "secret", allowed_status)
        outcomes[persona] = (response.status_code, want)
        if response.status_code >= 400:
            assert "error" in response.json(), (persona, response.content[:200])
    wrong = {who: got for who, got in outcomes.items() if got[0] != got[1]}
    assert not wrong, f"{name} on {dataset}: (got, expected) by persona: {wrong}"


def test_a_hidden_dataset_answers_exactly_like_a_missing_one(api, world):
    hidden = api("bob").get("/datasets/secret")
    missing = api("bob").get("/datasets/no-such-thing")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"].replace("secret", "X") == missing.json()["error"].replace(
        "no-such-thing", "X"
    )
    hidden_push = api("bob").post("/datasets/secret/uploads", {})
    missing_push = api("bob").post("/datasets/no-such-thing/uploads", {})
    assert hidden_push.status_code == missing_push.status_code == 404
    assert "secret" not in str(api("bob").get("/datasets").json())


@pytest.mark.parametrize("path", ["/models/m/versions", "/models/m/versions/1"])
def test_a_model_shows_pins_of_restricted_datasets_only_to_their_readers(api, world, path):
    for persona in PERSONAS[1:]:
        response = api(persona).get(path)
        assert response.status_code == 200
        body = response.json()
        model = body["versions"][0] if "versions" in body else body
        pinned = {pin["dataset"] for pin in model["datasets"]}
        if persona in READERS_OF_RESTRICTED:
            assert pinned == {"open", "secret"} and model["hidden"] == 0, persona
        else:
            assert pinned == {"open"} and model["hidden"] == 1, persona
            assert "secret" not in response.content.decode(), persona
            assert world["secret"]["head"] not in response.content.decode(), persona


def test_the_dataset_list_runs_a_fixed_number_of_queries(
    api, personas, local_store, django_assert_num_queries
):
    from catalog.services.datasets import dataset_create

    def make(count: int, start: int) -> None:
        for index in range(start, start + count):
            dataset = dataset_create(
                user=personas["alice"], name=f"d{index:03d}", keywords=["nlp", f"k{index}"]
            )
            dataset.owners.add(personas["erin"])

    bob = api("bob")
    make(3, 0)
    bob.get("/datasets")  # the token's last-used time is written once, not counted below
    with django_assert_num_queries(8):
        assert bob.get("/datasets").json()["count"] == 3
    make(12, 3)
    with django_assert_num_queries(8):
        page = bob.get("/datasets", limit=10).json()
    assert page["count"] == 15 and len(page["items"]) == 10
    assert page["items"][0]["owners"] == ["alice", "erin"]


def test_an_expired_or_revoked_token_is_refused(api, personas, tokens, db):
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import ApiToken
    from catalog.services.tokens import token_revoke

    assert api("bob").get("/me").status_code == 200
    bob_token = ApiToken.objects.get(user=personas["bob"])
    ApiToken.objects.filter(pk=bob_token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    expired = api("bob").get("/me")
    assert expired.status_code == 401 and "token" in expired.json()["error"]
    token_revoke(token_id=ApiToken.objects.get(user=personas["carol"]).pk, actor=personas["carol"])
    revoked = api("carol").post("/datasets", {"name": "by-carol"})
    assert revoked.status_code == 401 and "error" in revoked.json()
    assert api("carol").get("/me").status_code == 401


def test_the_version_list_runs_a_fixed_number_of_queries(
    api, personas, local_store, django_assert_num_queries
):
    from strata_store.hashing import EMPTY_DIGEST as EMPTY

    alice = api("alice")

    def commit(count: int, start: int) -> None:
        for index in range(start, start + count):
            entry = {"path": f"f{index}", "kind": "file", "size": 0, "digest": EMPTY}
            assert alice.post("/datasets/many/versions", {"entries": [entry]}).status_code == 201

    commit(2, 0)
    alice.get("/datasets/many/versions")
    # The token, the dataset, the user's roles, the count and the page.
    with django_assert_num_queries(5):
        assert alice.get("/datasets/many/versions").json()["count"] == 2
    commit(8, 2)
    with django_assert_num_queries(5):
        assert len(alice.get("/datasets/many/versions").json()["items"]) == 10


def test_the_schema_and_its_docs_page_are_served(api, db):
    schema = api(None).get("/schema")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/datasets",
        "/api/v1/datasets/{name}/versions/{version}/manifest",
        "/api/v1/uploads/{upload_id}/missing",
    ):
        assert path in paths
    assert "/api/v1/store/packs/{pack_id}" not in paths  # the local store's byte endpoint is not an API
    assert api(None).get("/docs").status_code == 200


def test_the_lock_of_a_model_pinning_a_restricted_dataset_reads_as_a_missing_model(
    api, world, client, personas
):
    assert api("alice").get("/models/m/versions/1/lock").status_code == 200
    hidden = api("bob").get("/models/m/versions/1/lock")
    missing = api("bob").get("/models/m/versions/9/lock")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"].replace("m@1", "X") == missing.json()["error"].replace("m@9", "X")
    assert "secret" not in hidden.content.decode()
    client.force_login(personas["bob"])
    page = client.get("/models/m/versions/1/strata.lock")
    assert page.status_code == 404 and "secret" not in page.content.decode()
