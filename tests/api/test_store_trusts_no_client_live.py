"""The forgeries of test_store_trusts_no_client.py through a live server, its real
Celery worker on Redis and an S3 server: the web process hands the commit to the
worker, the worker reads the packs back from S3, refuses the forged one, and the
victim's push with the Python client stores and pulls back its own bytes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from catalog.models import AuditEvent, Chunk, Upload
from strata_client import Client
from strata_client.errors import ClientError
from tests.factories.files import tree_digests, write_random
from tests.factories.forgery import chunked, md5_of, pack_of


class Http:
    """The API over HTTP, as any client (or attacker) with a token reaches it."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base + "/api/v1", token

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def put(transfer: dict, data: bytes) -> None:
    request = urllib.request.Request(transfer["url"], data=data, method="PUT", headers=transfer["headers"])
    with urllib.request.urlopen(request):
        pass


@pytest.mark.parametrize("store_url", ["s3"], indirect=True)
def test_a_forged_pack_is_refused_by_the_worker_and_the_victims_push_stores_its_own_bytes(
    strata_server, store_url, tokens, tmp_path
):
    source = tmp_path / "source"
    write_random(source / "weights.bin", 20_000, seed=21)  # a single chunk
    real = (source / "weights.bin").read_bytes()
    [(chunk_id, _)] = chunked(real)

    # Another user (the attack needs only a valid token that may push somewhere)
    # sends a pack claiming alice's chunk with other bytes, and commits it.
    mallory = Http(strata_server.url, tokens["erin"])
    status, upload = mallory.call("POST", "/datasets/poison/uploads", {})
    assert status == 201
    forged_id, forged = pack_of([(chunk_id, bytes(len(real)))])
    status, target = mallory.call(
        "POST",
        f"/uploads/{upload['id']}/packs",
        {"pack_id": forged_id, "size": len(forged), "md5": md5_of(forged)},
    )
    put(target["upload"], forged)
    status, _ = mallory.call(
        "POST",
        f"/uploads/{upload['id']}/packs/{forged_id}/register",
        {"size": len(forged), "chunks": [chunk_id]},
    )
    assert status == 200
    entry = {"path": "w.bin", "kind": "file", "size": len(real), "digest": chunk_id}
    mallory.call("POST", f"/uploads/{upload['id']}/files", {"part": 1, "entries": [entry]})
    status, accepted = mallory.call("POST", "/datasets/poison/versions", {"upload": upload["id"]})
    assert status == 202 and accepted["state"] == "verifying"
    deadline = time.monotonic() + 60
    while True:
        status, answer = mallory.call("GET", accepted["poll"].removeprefix("/api/v1"))
        if status != 200 or answer["state"] != "verifying":
            break
        assert time.monotonic() < deadline, "the worker did not verify the upload"
        time.sleep(0.2)
    assert status == 400
    assert answer["error"] == (
        f"pack {forged_id} holds bytes that do not hash to chunk {chunk_id}; "
        "it was quarantined and nothing was committed."
    )
    assert not Chunk.objects.filter(id=chunk_id).exists()
    assert AuditEvent.objects.filter(action="upload.refused", object_id=forged_id).exists()

    # Alice's push with the client: the worker verifies and commits it.
    client = Client(strata_server.url, tokens["alice"], cache_dir=str(tmp_path / "cache"))
    pushed = client.push(str(source), "weights")
    assert pushed.created and pushed.new_bytes == len(real) and pushed.uploaded_packs == 1
    assert Upload.objects.get(committed_id=pushed.version).state == "committed"
    client.pull("weights", str(tmp_path / "pulled"))
    assert tree_digests(tmp_path / "pulled") == tree_digests(source)

    # A client that lies in its file list is refused with the worker's sentence.
    with pytest.raises(ClientError, match="not a safe path|never uploaded|missing"):
        Client(strata_server.url, tokens["erin"], cache_dir=str(tmp_path / "other")).transport.call(
            "POST",
            "/datasets/poison/versions",
            body={"entries": [{"path": "s.bin", "kind": "file", "size": 5, "digest": "ab" * 32}]},
        )
