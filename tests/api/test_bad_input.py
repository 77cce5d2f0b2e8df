"""Bad requests get a 4xx with {"error": "one sentence"} and change nothing."""

from __future__ import annotations

import json

import pytest

from catalog.models import ApiToken, Dataset, IdempotencyKey, Upload
from strata_store.hashing import digest_hex


@pytest.fixture
def steward(api, settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    return api("alice")


def error_of(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return body["error"]


def test_malformed_json_is_a_400(steward):
    for raw in (b"{", b"not json", b'{"name": "x",}', b"\xff\xfe"):
        response = steward.post("/datasets", raw=raw)
        assert response.status_code == 400, raw
        assert "parse" in error_of(response).lower()
    assert not Dataset.objects.exists()


def test_wrong_types_are_a_422_naming_the_field(steward):
    cases = [
        ("/datasets", {"name": 42}, "name"),
        ("/datasets", {"name": "ok", "keywords": "nlp"}, "keywords"),
        ("/datasets", {"name": "ok", "visibility": "secret"}, "visibility"),
        ("/datasets/x/versions", {"entries": [{"path": "a", "kind": "file", "size": "big"}]}, "size"),
        ("/datasets/x/versions", {"entries": [{"path": "a", "kind": "socket"}]}, "kind"),
        ("/datasets/x/versions", {"entries": [{"path": "a", "kind": "file", "digest": "abc"}]}, "digest"),
        ("/datasets/x/versions", {"parent": 7}, "parent"),
        ("/datasets/x/uploads", {"branch": ["main"]}, "branch"),
    ]
    for path, body, field in cases:
        response = steward.post(path, body)
        assert response.status_code == 422, (path, body, response.content)
        assert field in error_of(response), (body, response.json())
    negative = steward.get("/datasets", limit=-1)
    assert negative.status_code == 422 and "limit" in error_of(negative)
    assert not Dataset.objects.exists()


def test_unknown_fields_are_refused(steward):
    response = steward.post("/datasets", {"name": "typo", "descripton": "misspelt"})
    assert response.status_code == 422 and "descripton" in error_of(response)
    response = steward.post("/datasets/x/versions", {"entries": [], "mesage": "misspelt"})
    assert response.status_code == 422 and "mesage" in error_of(response)
    response = steward.post(
        "/datasets/x/versions",
        {"entries": [{"path": "a", "kind": "file", "digest": digest_hex(b""), "mode": 755}]},
    )
    assert response.status_code == 422 and "mode" in error_of(response)
    assert not Dataset.objects.exists()


def test_an_oversized_body_is_a_413(steward, settings):
    upload_id = steward.post("/datasets/big/uploads", {}).json()["id"]
    entries = [
        {"path": f"f{i:07d}.bin", "kind": "file", "size": 0, "digest": digest_hex(b"")} for i in range(40_000)
    ]
    raw = json.dumps({"entries": entries}).encode()
    assert len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = steward.post(f"/uploads/{upload_id}/files", raw=raw)
    assert response.status_code == 413 and "larger than" in error_of(response)
    assert Upload.objects.get(id=upload_id).parts.count() == 0
    too_many = steward.post("/datasets/big/versions", {"entries": entries[:1001]})
    assert too_many.status_code == 422 and "entries" in error_of(too_many)


def test_an_unknown_or_revoked_token_is_a_401(api, personas, tokens):
    from catalog.services.tokens import token_revoke

    stranger = api(None)
    stranger.headers = {"HTTP_AUTHORIZATION": "Bearer strata_made-up"}
    response = stranger.post("/datasets", {"name": "nope"})
    assert response.status_code == 401 and "token" in error_of(response)
    token_revoke(token_id=ApiToken.objects.get(user=personas["alice"]).pk, actor=personas["alice"])
    response = api("alice").post("/datasets", {"name": "nope"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 401
    assert not Dataset.objects.exists() and not IdempotencyKey.objects.exists()


def test_bad_paging_and_refs_are_4xx(steward):
    steward.post(
        "/datasets/paged/versions", {"entries": [{"path": "a", "kind": "file", "digest": digest_hex(b"")}]}
    )
    cursor = steward.get("/datasets/paged/versions/main/manifest", cursor="nonsense")
    assert cursor.status_code == 400 and "cursor" in error_of(cursor)
    missing_ref = steward.get("/datasets/paged/versions/9.9.9")
    assert missing_ref.status_code == 404 and "9.9.9" in error_of(missing_ref)
    missing_file = steward.get("/datasets/paged/versions/main/files/nope.txt")
    assert missing_file.status_code == 404 and "nope.txt" in error_of(missing_file)
    not_folder = steward.get("/datasets/paged/versions/main/files", path="a")
    assert not_folder.status_code == 404
    bad_key = steward.post("/datasets", {"name": "k"}, headers={"Idempotency-Key": "has space"})
    assert bad_key.status_code == 400 and "Idempotency-Key" in error_of(bad_key)


def test_a_stolen_transfer_url_is_useless(steward, api):
    """The local store's pack endpoint answers only URLs the API signed, for the
    pack they name, and only for a local store."""
    response = steward.client.get("/api/v1/store/packs/" + "ab" * 32, {"token": "forged"})
    assert response.status_code == 404 and error_of(response)
    put = steward.client.put("/api/v1/store/packs/" + "ab" * 32 + "?token=forged", data=b"x")
    assert put.status_code == 404
