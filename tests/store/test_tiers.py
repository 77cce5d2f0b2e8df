"""Packs move between tiers without changing a byte; a cold pack must be restored
before it is read, and says so instead of failing."""

from __future__ import annotations

import time
import uuid

import pytest

from strata_store.backends import open_backend
from strata_store.backends.s3 import S3Backend
from strata_store.errors import ObjectRestoring
from strata_store.hashing import digest_hex
from strata_store.packs import PackWriter


def _pack(backend, data: bytes) -> str:
    writer = PackWriter(backend.spool_dir())
    writer.add(digest_hex(data), data)
    pack = writer.finish()
    backend.put_pack(pack.pack_id, pack.path)
    return pack.pack_id


def test_local_cold_pack_restores_after_the_delay(tmp_path):
    backend = open_backend(str(tmp_path), restore_seconds=0.6)
    pack_id = _pack(backend, b"archived bytes " * 100)
    before = backend.read_range(pack_id, 0, 64)
    backend.set_tier(pack_id, "warm")
    assert backend.tier_of(pack_id) == "warm" and backend.read_range(pack_id, 0, 64) == before
    backend.set_tier(pack_id, "cold")
    assert backend.tier_of(pack_id) == "cold"
    with pytest.raises(ObjectRestoring, match="is in cold storage"):
        backend.read_range(pack_id, 0, 64)
    state = backend.request_restore(pack_id)
    assert state.restoring and not state.readable and 0 < state.ready_in_seconds <= 0.6
    with pytest.raises(ObjectRestoring, match="ready in about 1 min"):
        backend.read_range(pack_id, 0, 64)
    assert backend.request_restore(pack_id).ready_in_seconds <= state.ready_in_seconds  # idempotent
    time.sleep(0.7)
    assert backend.restore_state(pack_id).readable
    assert backend.read_range(pack_id, 0, 64) == before
    backend.set_tier(pack_id, "hot")
    assert backend.tier_of(pack_id) == "hot" and backend.read_range(pack_id, 0, 64) == before


def test_s3_tier_moves_change_the_storage_class_not_the_bytes(s3_bucket):
    backend = S3Backend(bucket=s3_bucket, prefix=f"tiers-{uuid.uuid4().hex[:8]}")
    pack_id = _pack(backend, b"some pack bytes " * 1000)
    before = backend.read_range(pack_id, 0, 200)
    key = backend._key(pack_id)
    for tier, storage_class in (("warm", "STANDARD_IA"), ("cold", "GLACIER"), ("hot", "STANDARD")):
        backend.set_tier(pack_id, tier)
        head = backend.client.head_object(Bucket=backend.bucket, Key=key)
        assert head.get("StorageClass", "STANDARD") == storage_class
        assert backend.tier_of(pack_id) == tier
    # SeaweedFS keeps GLACIER objects readable (no restore); the state says so.
    backend.set_tier(pack_id, "cold")
    assert backend.restore_state(pack_id).readable
    assert backend.read_range(pack_id, 0, 200) == before
