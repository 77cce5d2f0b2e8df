"""The store trusts no client: each attack a hostile steward could make on the push
protocol, replayed through the real API on both stores (a local folder and S3), and
shown refused with one sentence, with nothing readable, nothing poisoned, and the
victim's later push storing and serving its own bytes.

The in-process API runs the verification service where a worker would
(tests/api/conftest.py says why); the same attacks through a live server and a
real worker are in test_store_trusts_no_client_live.py.
"""

from __future__ import annotations

import random

import pytest
from django.contrib.auth.models import Group, User

from catalog.models import AuditEvent, Chunk, Dataset, FileManifest, Pack, Upload, Version
from catalog.services.tokens import token_create
from catalog.services.verify import store_verify
from catalog.store import get_backend
from strata_store.hashing import digest_hex
from tests.factories.api import Api
from tests.factories.forgery import Push, chunked, md5_of, pack_of, put


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def alice(api):
    return api("alice")


@pytest.fixture
def mallory(personas):
    """A second steward: may push to datasets of her own, may not read alice's
    restricted ones."""
    user = User.objects.create_user("mallory", "mallory@example.org", "mallory-password")
    user.groups.add(Group.objects.get_or_create(name="steward")[0])
    return Api(token_create(user=user, name="tests")[1])


def download(api, dataset: str, path: str, ref: str = "main") -> tuple[int, bytes]:
    response = api.get(f"/datasets/{dataset}/versions/{ref}/files/{path}")
    if response.status_code != 200:
        return response.status_code, b""
    return 200, b"".join(response.streaming_content)


def restrict(name: str) -> None:
    Dataset.objects.filter(name=name).update(visibility=Dataset.Visibility.RESTRICTED)


def test_a_forged_manifest_is_refused_and_the_real_file_is_stored_by_its_owner(alice, mallory, store_url):
    real = random_bytes(300_000, seed=1)
    digest = digest_hex(real)
    # Mallory knows the digest and size of alice's file (from a published
    # checksum), and names it with chunks of her own bytes of the same size.
    junk = random_bytes(len(real), seed=2)
    attack = Push(mallory, "mallory-data").open()
    pieces = chunked(junk)
    attack.send_pack(pieces)
    attack.file("model-card.bin", digest, len(real), [chunk_id for chunk_id, _ in pieces])
    refused = attack.commit(message="poison")
    assert refused.status_code == 400, refused.json()
    assert refused.json()["error"] == (
        "model-card.bin: its chunks do not make the file its digest names; nothing was committed."
    )
    assert not FileManifest.objects.filter(digest=digest).exists()
    assert not Dataset.objects.filter(name="mallory-data").exists()
    assert Upload.objects.get(id=attack.upload_id).state == "failed"
    event = AuditEvent.objects.get(action="upload.refused", object_type="file")
    assert event.object_id == digest and event.before["uploader"] == "mallory"

    # Alice's push of the real file stores the real bytes, and they come back.
    victim = Push(alice, "reviews").open()
    assert set(victim.missing(files=[digest])["files"]) == {digest}
    victim.honest("card.bin", real)
    assert victim.commit().status_code == 201
    assert download(alice, "reviews", "card.bin") == (200, real)
    assert store_verify().ok


def test_a_forged_chunk_is_quarantined_named_in_the_audit_log_and_never_indexed(alice, mallory, store_url):
    real = random_bytes(20_000, seed=3)  # one chunk
    chunk_id = digest_hex(real)
    # A pack that claims chunk `chunk_id` but holds other bytes of its length:
    # its name (the hash of its index) is consistent, its payload is not.
    attack = Push(mallory, "mallory-data").open()
    forged_pack = attack.send_pack([(chunk_id, random_bytes(len(real), seed=4))])
    attack.file("x.bin", chunk_id, len(real), [chunk_id])
    refused = attack.commit()
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        f"pack {forged_pack} holds bytes that do not hash to chunk {chunk_id}; "
        "it was quarantined and nothing was committed."
    )
    assert not Chunk.objects.filter(id=chunk_id).exists()
    assert not Pack.objects.filter(id=forged_pack).exists()
    assert get_backend().pack_size(forged_pack) is None  # moved aside, not left under its name
    event = AuditEvent.objects.get(action="upload.refused", object_type="pack")
    assert event.object_id == forged_pack and event.before["uploader"] == "mallory"
    assert event.after["quarantined_as"]

    # The victim's push stores its own chunk (the same pack name, the real bytes).
    victim = Push(alice, "reviews").open()
    assert victim.missing(chunks=[chunk_id])["chunks"] == [chunk_id]
    victim.honest("r.bin", real)
    answer = victim.commit()
    assert answer.status_code == 201 and answer.json()["new_bytes"] == len(real)
    assert download(alice, "reviews", "r.bin") == (200, real)


def test_a_forged_pack_left_unregistered_cannot_poison_a_later_push(alice, mallory, store_url, strata):
    """A client may PUT bytes under a pack's name and never register them: a
    later push that makes a pack of that name (remote, or from the server's own
    command line) stores its real bytes, not the bytes found there."""
    real = random_bytes(20_000, seed=5)
    chunk_id = digest_hex(real)
    attack = Push(mallory, "mallory-data").open()
    forged_pack = attack.send_pack([(chunk_id, random_bytes(len(real), seed=6))], register=False)
    assert get_backend().pack_size(forged_pack) is not None
    victim = Push(alice, "reviews").open()
    victim.honest("r.bin", real)
    assert victim.commit().status_code == 201
    assert download(alice, "reviews", "r.bin") == (200, real)
    assert store_verify().ok


def test_a_local_push_replaces_forged_bytes_found_under_its_pack_name(mallory, store_url, tmp_path, strata):
    real = random_bytes(20_000, seed=7)
    chunk_id = digest_hex(real)
    attack = Push(mallory, "mallory-data").open()
    forged_pack = attack.send_pack([(chunk_id, random_bytes(len(real), seed=8))], register=False)
    # The command line packs the same single chunk into a pack of the same name.
    assert pack_of([(chunk_id, real)])[0] == forged_pack
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "r.bin").write_bytes(real)
    strata("push", str(tmp_path / "local"), "local-data")
    assert Chunk.objects.get(id=chunk_id).pack_id == forged_pack
    strata("pull", "local-data", str(tmp_path / "out"))
    assert (tmp_path / "out" / "r.bin").read_bytes() == real
    assert store_verify().ok


def test_knowing_a_restricted_files_hash_reads_nothing_and_reveals_nothing(alice, mallory, store_url):
    secret = random_bytes(300_000, seed=9)
    small = random_bytes(5_000, seed=10)
    owner = Push(alice, "secret").open()
    owner.honest("weights.bin", secret).honest("labels.bin", small)
    assert owner.commit().status_code == 201
    restrict("secret")
    digest, small_digest = digest_hex(secret), digest_hex(small)
    chunk_ids = [chunk_id for chunk_id, _ in chunked(secret)]

    attack = Push(mallory, "mallory-data").open()
    # The answer about stored content she may not read is the answer about
    # content that does not exist.
    unknown = [digest_hex(str(i).encode()) for i in range(len(chunk_ids))]
    assert attack.missing(chunks=chunk_ids, files=[digest, small_digest]) == {
        "chunks": chunk_ids,
        "files": [digest, small_digest],
    }
    assert attack.missing(chunks=unknown, files=unknown[:2]) == {"chunks": unknown, "files": unknown[:2]}
    assert not Upload.objects.get(id=attack.upload_id).leases.exists()
    # Naming it by digest alone, by its chunk list, or as a single chunk: refused
    # as if it did not exist, and nothing is made.
    versions = Version.objects.count()
    for entry in (
        {"path": "w.bin", "kind": "file", "size": len(secret), "digest": digest},
        {"path": "w.bin", "kind": "file", "size": len(secret), "digest": digest, "chunks": chunk_ids},
        {"path": "l.bin", "kind": "file", "size": len(small), "digest": small_digest},
    ):
        attempt = Push(mallory, "mallory-data").open()
        attempt.entries.append(entry)
        refused = attempt.commit()
        assert refused.status_code == 400
        assert "missing" in refused.json()["error"] and "never uploaded" in refused.json()["error"]
        inline = mallory.post("/datasets/mallory-data/versions", {"entries": [entry]})
        assert inline.status_code == 400 and "never uploaded" in inline.json()["error"]
    assert Version.objects.count() == versions
    assert download(mallory, "secret", "weights.bin")[0] == 404


def test_someone_who_has_the_bytes_proves_it_by_sending_them(alice, mallory, store_url):
    """Dedup across a visibility boundary: mallory has the same file as alice's
    restricted dataset. She is told it is missing, sends it (to a proof object
    of her own, as the store already holds a pack of that name), is charged for
    it, and then reads what she sent; alice's dataset is untouched."""
    shared = random_bytes(300_000, seed=11)
    owner = Push(alice, "secret").open()
    owner.honest("weights.bin", shared)
    assert owner.commit().status_code == 201
    restrict("secret")
    packs_before = set(get_backend().list_packs())

    other = Push(mallory, "mallory-data").open()
    other.honest("weights.bin", shared)
    answer = other.commit()
    assert answer.status_code == 201, answer.json()
    assert download(mallory, "mallory-data", "weights.bin") == (200, shared)
    # The proof object is gone; the store holds one copy of the bytes.
    assert set(get_backend().list_packs()) == packs_before
    # Now that her own dataset holds it, her next push of it sends nothing.
    again = Push(mallory, "mallory-copy").open()
    chunk_ids = [chunk_id for chunk_id, _ in chunked(shared)]
    assert again.missing(chunks=chunk_ids, files=[digest_hex(shared)]) == {"chunks": [], "files": []}


def test_a_pack_sent_for_another_upload_is_not_the_senders_until_verified(alice, mallory, store_url):
    """Registering a pack puts none of its chunks where others can use them."""
    data = random_bytes(20_000, seed=12)
    chunk_id = digest_hex(data)
    first = Push(mallory, "mallory-data").open()
    pack_id = first.send_pack([(chunk_id, data)])
    # Not verified yet: alice is told it is missing and must send it herself.
    victim = Push(alice, "reviews").open()
    assert victim.missing(chunks=[chunk_id])["chunks"] == [chunk_id]
    pack, body = pack_of([(chunk_id, data)])
    target = alice.post(
        f"/uploads/{victim.upload_id}/packs", {"pack_id": pack, "size": len(body), "md5": md5_of(body)}
    )
    assert pack == pack_id and target.json()["stored"] is False
    assert put(alice, target.json()["upload"], body) in (200, 201)
