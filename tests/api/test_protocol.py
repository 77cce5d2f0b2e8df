"""The push protocol step by step, in process, on both stores: what each step
accepts, what it refuses, and that a refusal leaves nothing half-done."""

from __future__ import annotations

import pytest

from catalog.models import (
    AuditEvent,
    Chunk,
    Dataset,
    FileManifest,
    Pack,
    PendingPack,
    Tree,
    Upload,
    UploadLease,
    Version,
)
from catalog.store import get_backend
from strata_store.chunker import chunk_bytes
from strata_store.hashing import digest_hex, new_hasher
from strata_store.packs import PackWriter
from tests.factories.files import write_random
from tests.factories.forgery import md5_of
from tests.factories.forgery import put as send


def snapshot() -> dict[str, int]:
    """Row counts of everything a commit could leave behind."""
    return {
        model.__name__: model.objects.count()
        for model in (Dataset, Version, Tree, FileManifest, AuditEvent, Pack, Chunk)
    }


class Pushed:
    """A client's side of a push, done by hand: chunks, one pack, and its upload."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.chunks: dict[str, bytes] = {}
        self.file_chunks: dict[str, list[str]] = {}
        for path, data in files.items():
            pieces = chunk_bytes(data)
            self.file_chunks[path] = [digest_hex(piece) for piece in pieces]
            for piece in pieces:
                self.chunks[digest_hex(piece)] = piece

    def digest(self, path: str) -> str:
        hasher = new_hasher()
        hasher.update(self.files[path])
        return hasher.hexdigest()

    def entries(self) -> list[dict]:
        out = []
        for path, data in self.files.items():
            entry = {"path": path, "kind": "file", "size": len(data), "digest": self.digest(path)}
            if len(self.file_chunks[path]) > 1:
                entry["chunks"] = self.file_chunks[path]
            out.append(entry)
        return out

    def pack(self, chunk_ids: list[str]):
        writer = PackWriter(get_backend().spool_dir())
        for chunk_id in chunk_ids:
            writer.add(chunk_id, self.chunks[chunk_id])
        pack = writer.finish()
        with open(pack.path, "rb") as handle:
            data = handle.read()
        return pack, data


def upload_pack(api, upload_id: str, pushed: Pushed, chunk_ids: list[str]) -> str:
    pack, data = pushed.pack(chunk_ids)
    target = api.post(
        f"/uploads/{upload_id}/packs", {"pack_id": pack.pack_id, "size": len(data), "md5": md5_of(data)}
    )
    assert target.status_code == 200, target.json()
    assert send(api, target.json()["upload"], data) in (200, 201)
    registered = api.post(
        f"/uploads/{upload_id}/packs/{pack.pack_id}/register", {"size": len(data), "chunks": chunk_ids}
    )
    assert registered.status_code == 200, registered.json()
    return pack.pack_id


@pytest.fixture
def steward(api):
    return api("alice")


def test_a_full_push_commits_the_tree_the_client_listed(steward, store_url, tmp_path):
    write_random(tmp_path / "big.bin", 300_000, seed=1)
    pushed = Pushed({"data/big.bin": (tmp_path / "big.bin").read_bytes(), "data/small.txt": b"hello\n"})
    upload = steward.post("/datasets/remote/uploads", {})
    assert upload.status_code == 201
    upload_id = upload.json()["id"]
    assert upload.json()["head"] is None and upload.json()["store"] == (
        "s3" if "s3" in store_url else "local"
    )
    missing = steward.post(f"/uploads/{upload_id}/missing", {"chunks": list(pushed.chunks)}).json()
    assert sorted(missing["chunks"]) == sorted(pushed.chunks)
    pack_id = upload_pack(steward, upload_id, pushed, missing["chunks"])
    # Registered but not verified: no chunk of it is in the shared index yet, so
    # nothing can deduplicate against it, read it or name it.
    assert PendingPack.objects.filter(upload_id=upload_id, pack_id=pack_id).exists()
    assert not Pack.objects.filter(id=pack_id).exists()
    assert not Chunk.objects.filter(id__in=list(pushed.chunks)).exists()
    staged = steward.post(f"/uploads/{upload_id}/files", {"part": 1, "entries": pushed.entries()})
    assert staged.status_code == 200
    committed = steward.post(
        "/datasets/remote/versions",
        {"upload": upload_id, "parent": None, "message": "hi", "stage": "cleaned"},
    )
    assert committed.status_code == 201, committed.json()
    body = committed.json()
    assert body["created"] and body["version"]["semver"] == "1.0.0" and body["file_count"] == 2
    assert body["new_bytes"] == 300_006
    # The server stored what the client listed: the same bytes come back out.
    download = steward.get("/datasets/remote/versions/1.0.0/files/data/big.bin")
    assert b"".join(download.streaming_content) == pushed.files["data/big.bin"]
    # The upload is over: its leases are gone and it cannot be used again.
    assert not UploadLease.objects.filter(upload_id=upload_id).exists()
    again = steward.post(f"/uploads/{upload_id}/missing", {"chunks": []})
    assert again.status_code == 400 and "already committed" in again.json()["error"]
    # Everything is known now: a new upload is told nothing is missing, and leases it.
    second = steward.post("/datasets/remote/uploads", {}).json()
    assert second["head"] == body["version"]["id"]
    answer = steward.post(f"/uploads/{second['id']}/missing", {"chunks": list(pushed.chunks)}).json()
    assert answer == {"chunks": [], "files": []}
    assert set(UploadLease.objects.filter(upload_id=second["id"]).values_list("pack_id", flat=True)) == {
        pack_id
    }


def test_a_commit_naming_a_chunk_never_uploaded_is_refused_and_creates_nothing(steward, store_url):
    pushed = Pushed({"a.txt": b"one chunk that was never uploaded"})
    upload_id = steward.post("/datasets/ghostly/uploads", {}).json()["id"]
    steward.post(f"/uploads/{upload_id}/files", {"entries": pushed.entries()})
    before = snapshot()
    refused = steward.post("/datasets/ghostly/versions", {"upload": upload_id})
    assert refused.status_code == 400
    chunk_id = pushed.file_chunks["a.txt"][0]
    assert refused.json()["error"].startswith(f"chunk {chunk_id} missing")
    assert snapshot() == before and not Dataset.objects.filter(name="ghostly").exists()
    inline = steward.post(
        "/datasets/ghostly/versions",
        {
            "entries": [
                {
                    "path": "b.bin",
                    "kind": "file",
                    "size": 1000,
                    "digest": "ab" * 32,
                    "chunks": ["cd" * 32, "ef" * 32],
                }
            ]
        },
    )
    assert inline.status_code == 400 and inline.json()["error"].startswith(f"chunk {'cd' * 32} missing")
    assert snapshot() == before


@pytest.mark.parametrize(
    "path",
    [
        "../escape.txt",
        "a/../../b",
        "/etc/passwd",
        "a//b",
        "./a",
        "a/.",
        "with\0nul",
        "d/" + "n" * 300,
        "windows\\style.txt",
    ],
)
def test_unsafe_paths_are_refused_at_staging_and_at_commit(steward, store_url, path):
    # A NUL is refused with every other NUL in a request, before the path is read.
    reason = "NUL character" if "\0" in path else "not a safe path"
    upload_id = steward.post("/datasets/paths/uploads", {}).json()["id"]
    entry = {"path": path, "kind": "file", "size": 0, "digest": digest_hex(b"")}
    staged = steward.post(f"/uploads/{upload_id}/files", {"entries": [entry]})
    assert staged.status_code == 400 and reason in staged.json()["error"]
    before = snapshot()
    inline = steward.post("/datasets/paths/versions", {"entries": [entry]})
    assert inline.status_code == 400 and reason in inline.json()["error"]
    assert snapshot() == before


def test_a_chain_of_links_that_leads_out_of_the_folder_is_refused_and_creates_nothing(steward, store_url):
    # Each link alone stays inside; followed as a pull's filesystem would, `d/up`
    # is the root itself, so `esc` climbs one folder above it.
    entries = [
        {"path": "fine.txt", "kind": "file", "size": 0, "digest": digest_hex(b"")},
        {"path": "d", "kind": "dir"},
        {"path": "d/up", "kind": "link", "target": ".."},
        {"path": "esc", "kind": "link", "target": "d/up/../etc/passwd"},
    ]
    before = snapshot()
    upload_id = steward.post("/datasets/chained/uploads", {}).json()["id"]
    assert steward.post(f"/uploads/{upload_id}/files", {"entries": entries}).status_code == 200
    for request in ({"upload": upload_id}, {"entries": entries}):
        refused = steward.post("/datasets/chained/versions", request)
        error = refused.json()["error"]
        assert refused.status_code == 400, error
        assert error.startswith("the link esc points outside the folder (to 'd/up/../etc/passwd')"), error
        assert error.endswith("remove it.") and "\n" not in error
    assert snapshot() == before and not Dataset.objects.filter(name="chained").exists()


def test_lists_that_are_not_a_tree_are_refused(steward, store_url):
    empty = digest_hex(b"")

    def commit(entries):
        return steward.post("/datasets/shapes/versions", {"entries": entries})

    cases = [
        (
            [{"path": "a", "kind": "file", "digest": empty}, {"path": "a", "kind": "file", "digest": empty}],
            "listed twice",
        ),
        (
            [
                {"path": "a", "kind": "file", "digest": empty},
                {"path": "a/b", "kind": "file", "digest": empty},
            ],
            "both a file and a folder",
        ),
        ([{"path": "l", "kind": "link", "target": "../../etc/passwd"}], "points outside"),
        ([{"path": "l", "kind": "link", "target": "/etc/passwd"}], "relative path inside"),
        ([{"path": "d", "kind": "dir", "digest": empty}], "has no digest"),
        ([{"path": "e", "kind": "file", "size": 3, "digest": empty}], "empty file"),
    ]
    before = snapshot()
    for entries, message in cases:
        response = commit(entries)
        assert response.status_code == 400 and message in response.json()["error"], (entries, response.json())
    assert snapshot() == before


def test_a_file_whose_chunks_do_not_add_up_is_refused(steward, store_url, tmp_path):
    write_random(tmp_path / "f.bin", 200_000, seed=2)
    pushed = Pushed({"f.bin": (tmp_path / "f.bin").read_bytes()})
    upload_id = steward.post("/datasets/sizes/uploads", {}).json()["id"]
    upload_pack(steward, upload_id, pushed, list(pushed.chunks))
    entry = pushed.entries()[0]
    steward.post(f"/uploads/{upload_id}/files", {"entries": [{**entry, "size": entry["size"] + 1}]})
    before = snapshot()
    lying = steward.post("/datasets/sizes/versions", {"upload": upload_id})
    assert lying.status_code == 400 and "add up to a different size" in lying.json()["error"]
    assert snapshot() == before


def test_pack_registration_reads_the_index_and_checks_the_declared_chunks(steward, store_url, tmp_path):
    write_random(tmp_path / "f.bin", 200_000, seed=4)
    pushed = Pushed({"f.bin": (tmp_path / "f.bin").read_bytes()})
    chunk_ids = list(pushed.chunks)
    upload_id = steward.post("/datasets/packs/uploads", {}).json()["id"]
    pack, data = pushed.pack(chunk_ids)
    never = steward.post(
        f"/uploads/{upload_id}/packs/{pack.pack_id}/register", {"size": len(data), "chunks": chunk_ids}
    )
    assert never.status_code == 400 and "was not uploaded" in never.json()["error"]
    target = steward.post(
        f"/uploads/{upload_id}/packs", {"pack_id": pack.pack_id, "size": len(data), "md5": md5_of(data)}
    )
    # Damaged bytes are refused by the store (S3 checks the signed Content-MD5;
    # the server's own endpoint checks MD5 and the pack's name).
    damaged = bytearray(data)
    damaged[100] ^= 0xFF
    assert send(steward, target.json()["upload"], bytes(damaged)) == 400
    assert get_backend().pack_size(pack.pack_id) is None
    assert send(steward, target.json()["upload"], data) in (200, 201)
    before = snapshot()
    for declared, size in [
        (chunk_ids[:-1], len(data)),
        (list(reversed(chunk_ids)), len(data)),
        (chunk_ids, len(data) + 1),
    ]:
        refused = steward.post(
            f"/uploads/{upload_id}/packs/{pack.pack_id}/register", {"size": size, "chunks": declared}
        )
        assert refused.status_code == 400, refused.json()
    assert snapshot() == before
    registered = steward.post(
        f"/uploads/{upload_id}/packs/{pack.pack_id}/register", {"size": len(data), "chunks": chunk_ids}
    )
    assert registered.json() == {"pack_id": pack.pack_id, "chunk_count": len(chunk_ids)}
    # Once registered, asking where to upload it again says it is stored already.
    again = steward.post(
        f"/uploads/{upload_id}/packs", {"pack_id": pack.pack_id, "size": len(data), "md5": md5_of(data)}
    )
    assert again.json()["stored"] is True and again.json()["upload"] is None


def test_something_that_is_not_a_pack_is_not_registered(steward, store_url):
    upload_id = steward.post("/datasets/junk/uploads", {}).json()["id"]
    data = b"STRATAPK\x01" + b"not a pack at all" * 10
    name = digest_hex(data)
    target = steward.post(
        f"/uploads/{upload_id}/packs", {"pack_id": name, "size": len(data), "md5": md5_of(data)}
    )
    sent = send(steward, target.json()["upload"], data)
    if store_url.startswith("s3://"):
        assert sent == 200  # S3 keeps any bytes; registration reads the tail and refuses them
    else:
        assert sent == 400 and get_backend().pack_size(name) is None  # refused as it arrives
    refused = steward.post(f"/uploads/{upload_id}/packs/{name}/register", {"size": len(data), "chunks": []})
    assert refused.status_code == 400, refused.json()
    assert not Pack.objects.filter(id=name).exists()


def test_a_retried_commit_with_the_same_key_returns_the_same_version(steward, store_url):
    entries = [{"path": "x.txt", "kind": "file", "size": 0, "digest": digest_hex(b"")}]
    key = {"Idempotency-Key": "commit-7f3a"}
    first = steward.post("/datasets/retry/versions", {"entries": entries, "message": "once"}, headers=key)
    second = steward.post("/datasets/retry/versions", {"entries": entries, "message": "once"}, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"
    assert Version.objects.filter(dataset__name="retry").count() == 1
    reused = steward.post("/datasets/retry/versions", {"entries": entries, "message": "twice"}, headers=key)
    assert reused.status_code == 422 and "different request" in reused.json()["error"]
    # Keys are per user, and a failed request leaves no key behind.
    refused = steward.post(
        "/datasets/retry/versions", {"entries": entries, "semver": "bad"}, headers={"Idempotency-Key": "k2"}
    )
    assert refused.status_code == 400
    fixed = steward.post(
        "/datasets/retry/versions", {"entries": entries, "semver": "bad"}, headers={"Idempotency-Key": "k2"}
    )
    assert fixed.status_code == 400
    created = steward.post("/datasets", {"name": "made-once"}, headers={"Idempotency-Key": "ds-1"})
    replayed = steward.post("/datasets", {"name": "made-once"}, headers={"Idempotency-Key": "ds-1"})
    assert created.status_code == replayed.status_code == 201 and created.json() == replayed.json()


def test_a_commit_on_a_moved_branch_is_refused(steward, store_url):
    empty = digest_hex(b"")
    first = steward.post(
        "/datasets/cas/versions", {"entries": [{"path": "a", "kind": "file", "digest": empty}]}
    )
    head = first.json()["version"]["id"]
    steward.post(
        "/datasets/cas/versions",
        {"entries": [{"path": "b", "kind": "file", "digest": empty}], "parent": head},
    )
    before = snapshot()
    stale = steward.post(
        "/datasets/cas/versions",
        {"entries": [{"path": "c", "kind": "file", "digest": empty}], "parent": head},
    )
    assert stale.status_code == 409 and "moved" in stale.json()["error"]
    fresh = steward.post(
        "/datasets/cas/versions",
        {"entries": [{"path": "c", "kind": "file", "digest": empty}], "parent": None},
    )
    assert fresh.status_code == 409
    assert snapshot() == before
    unchanged = steward.post(
        "/datasets/cas/versions", {"entries": [{"path": "b", "kind": "file", "digest": empty}]}
    )
    assert unchanged.status_code == 200 and unchanged.json()["created"] is False


def test_a_branch_can_be_deleted_but_not_the_default_one(steward, store_url):
    empty = digest_hex(b"")
    steward.post("/datasets/refs/versions", {"entries": [{"path": "a", "kind": "file", "digest": empty}]})
    assert steward.post("/datasets/refs/branches", {"name": "exp/filter"}).status_code == 201
    listed = [b["name"] for b in steward.get("/datasets/refs/branches").json()]
    assert listed == ["exp/filter", "main"]
    assert steward.delete("/datasets/refs/branches/exp/filter").status_code == 204
    assert AuditEvent.objects.filter(action="branch.delete", object_id="exp/filter").exists()
    refused = steward.delete("/datasets/refs/branches/main")
    assert refused.status_code == 400 and "default branch" in refused.json()["error"]
    assert steward.delete("/datasets/refs/branches/exp/filter").status_code == 404
    pushed_to = steward.post("/datasets/refs/uploads", {"branch": "nope"})
    assert pushed_to.status_code == 400 and "has no branch nope" in pushed_to.json()["error"]


def test_a_pack_stored_under_another_name_is_refused(steward, store_url, tmp_path):
    """A pack's name is the hash of its index: bytes under the wrong name never register."""
    write_random(tmp_path / "f.bin", 100_000, seed=8)
    pushed = Pushed({"f.bin": (tmp_path / "f.bin").read_bytes()})
    chunk_ids = list(pushed.chunks)
    upload_id = steward.post("/datasets/names/uploads", {}).json()["id"]
    _, data = pushed.pack(chunk_ids)
    wrong = digest_hex(b"some other name")
    target = steward.post(
        f"/uploads/{upload_id}/packs", {"pack_id": wrong, "size": len(data), "md5": md5_of(data)}
    )
    sent = send(steward, target.json()["upload"], data)
    assert sent == (200 if store_url.startswith("s3://") else 400)
    refused = steward.post(
        f"/uploads/{upload_id}/packs/{wrong}/register", {"size": len(data), "chunks": chunk_ids}
    )
    assert refused.status_code == 400, refused.json()
    if store_url.startswith("s3://"):
        assert "does not match its name" in refused.json()["error"]
    assert not Pack.objects.filter(id=wrong).exists() and not Chunk.objects.exists()


def test_a_dataset_made_empty_takes_its_first_push_locally_or_remotely(
    steward, personas, store_url, tmp_path
):
    from catalog.services.versions import version_push

    assert steward.post("/datasets", {"name": "made-empty"}).status_code == 201
    assert steward.post("/datasets", {"name": "made-empty-too"}).status_code == 201
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    local = version_push(path=str(tmp_path / "d"), dataset_name="made-empty", user=personas["alice"])
    assert local.created and local.version.semver == "1.0.0" and local.branch == "main"
    empty = digest_hex(b"")
    remote = steward.post(
        "/datasets/made-empty-too/versions", {"entries": [{"path": "a", "kind": "file", "digest": empty}]}
    )
    assert remote.status_code == 201 and remote.json()["branch"] == "main"
    elsewhere = steward.post("/datasets/made-empty-too/uploads", {"branch": "exp"})
    assert elsewhere.status_code == 400 and "has no branch exp" in elsewhere.json()["error"]


def _remote_push(api, dataset: str, files: dict[str, bytes], parent) -> dict:
    pushed = Pushed(files)
    upload_id = api.post(f"/datasets/{dataset}/uploads", {}).json()["id"]
    missing = api.post(f"/uploads/{upload_id}/missing", {"chunks": list(pushed.chunks)}).json()["chunks"]
    if missing:
        upload_pack(api, upload_id, pushed, missing)
    assert (
        api.post(f"/uploads/{upload_id}/files", {"part": 1, "entries": pushed.entries()}).status_code == 200
    )
    committed = api.post(f"/datasets/{dataset}/versions", {"upload": upload_id, "parent": parent})
    assert committed.status_code == 201, committed.json()
    return committed.json()["version"]


def test_a_remote_commit_is_numbered_by_its_change_like_a_local_push(steward, store_url):
    first = _remote_push(steward, "tables", {"t.csv": b"id,label\n1,a\n"}, None)
    assert first["semver"] == "1.0.0"
    data_change = _remote_push(steward, "tables", {"t.csv": b"id,label\n1,a\n2,b\n"}, first["id"])
    assert data_change["semver"] == "1.1.0"
    schema_change = _remote_push(
        steward, "tables", {"t.csv": b"id,label,extra\n1,a,x\n2,b,y\n"}, data_change["id"]
    )
    assert schema_change["semver"] == "2.0.0"
    event = AuditEvent.objects.filter(action="version.create").order_by("-created").first()
    assert event.after["bump_reasons"] == ["t.csv: column extra added"]


def test_the_diff_endpoint_reports_rows_and_labels(api, store_url):
    steward, viewer = api("alice"), api("bob")
    first = _remote_push(steward, "labelled", {"t.csv": b"id,label\n1,cat\n2,dog\n3,cat\n"}, None)
    _remote_push(steward, "labelled", {"t.csv": b"id,label\n1,cat\n2,cat\n3,cat\n4,dog\n"}, first["id"])
    answer = viewer.get("/datasets/labelled/diff?a=1.0.0&b=1.1.0")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["summary"]["modified"] == 1 and body["summary"]["bump"] == "minor"
    rows = body["tables"][0]["rows"]
    assert (rows["added"], rows["removed"], rows["changed"]) == (1, 0, 1)
    assert body["tables"][0]["labels"]["counts_b"] == {"cat": 3, "dog": 1}
    bad = viewer.get("/datasets/labelled/diff?a=1.0.0&b=1.1.0&key=nope")
    assert bad.status_code == 400 and "nope" in bad.json()["error"]
    unknown = viewer.get("/datasets/labelled/diff?a=1.0.0&b=7.0.0")
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_verifying_a_push_twice_or_after_a_dead_worker_commits_it_once(steward, store_url, tmp_path):
    """Invariant 6 for the verification task: a second delivery finds the upload
    committed and does nothing; an upload left verifying by a worker that died is
    queued again by the resume task, and then commits once."""
    from datetime import timedelta

    from django.utils import timezone

    from catalog.services.remote.verification import resume_stalled, upload_verify

    write_random(tmp_path / "f.bin", 200_000, seed=9)
    pushed = Pushed({"f.bin": (tmp_path / "f.bin").read_bytes()})
    upload_id = steward.post("/datasets/twice/uploads", {}).json()["id"]
    upload_pack(steward, upload_id, pushed, list(pushed.chunks))
    steward.post(f"/uploads/{upload_id}/files", {"entries": pushed.entries()})
    accepted = steward.post("/datasets/twice/versions", {"upload": upload_id}, follow_verification=False)
    assert accepted.status_code == 202 and accepted.json()["state"] == "verifying"
    assert steward.get(f"/uploads/{upload_id}").json()["state"] == "verifying"
    # Queued on commit and never run (the worker died before it started).
    Upload.objects.filter(id=upload_id).update(verify_started=timezone.now() - timedelta(minutes=11))
    assert resume_stalled() == [upload_id]
    assert upload_verify(upload_id=upload_id) == "committed"
    assert upload_verify(upload_id=upload_id) == "committed"
    assert Version.objects.filter(dataset__name="twice").count() == 1
    assert resume_stalled() == []
    state = steward.get(f"/uploads/{upload_id}").json()
    assert state["state"] == "committed" and state["commit"]["version"]["semver"] == "1.0.0"
