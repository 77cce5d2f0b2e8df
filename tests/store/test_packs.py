"""Packs carry their own index, and every chunk read back is verified."""

from __future__ import annotations

import os

import pytest

from strata_store.backends import open_backend
from strata_store.errors import CorruptObject, MissingObject
from strata_store.hashing import digest_hex
from strata_store.packs import (
    CODEC_RAW,
    CODEC_ZSTD,
    ChunkLocation,
    PackWriter,
    decode_chunk,
    footer_size,
    parse_index,
    read_footer,
)
from strata_store.store import read_chunks


def _write_pack(backend, chunks):
    writer = PackWriter(backend.spool_dir())
    for data in chunks:
        writer.add(digest_hex(data), data)
    pack = writer.finish()
    backend.put_pack(pack.pack_id, pack.path)
    return pack


def test_pack_is_named_by_its_index_and_indexes_itself(tmp_path):
    backend = open_backend(str(tmp_path))
    chunks = [b"a" * 50_000, os.urandom(40_000), b""]
    pack = _write_pack(backend, chunks)
    stored = (tmp_path / "packs" / pack.pack_id[:2] / f"{pack.pack_id}.pack").read_bytes()
    _count, index_offset = read_footer(pack.pack_id, stored[-footer_size() :])
    # The index names each chunk by its content hash; the pack is named by its index.
    assert digest_hex(stored[index_offset:]) == pack.pack_id
    entries = parse_index(pack.pack_id, stored)
    assert [entry.chunk_id for entry in entries] == [digest_hex(c) for c in chunks]
    assert entries[0].codec == CODEC_ZSTD and entries[0].stored_length < 1000
    assert entries[1].codec == CODEC_RAW


def test_reading_back_verifies_every_chunk(tmp_path):
    backend = open_backend(str(tmp_path))
    chunks = [os.urandom(30_000) for _ in range(5)]
    pack = _write_pack(backend, chunks)
    locations = [
        ChunkLocation(e.chunk_id, pack.pack_id, e.offset, e.stored_length, e.raw_length, e.codec)
        for e in pack.entries
    ]
    assert list(read_chunks(backend, locations)) == chunks

    path = tmp_path / "packs" / pack.pack_id[:2] / f"{pack.pack_id}.pack"
    raw = bytearray(path.read_bytes())
    raw[locations[2].offset + 10] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptObject) as caught:
        list(read_chunks(backend, locations))
    assert locations[2].chunk_id in str(caught.value)
    assert pack.pack_id in str(caught.value)


def test_a_truncated_read_is_reported_not_served():
    data = b"x" * 1000
    location = ChunkLocation(digest_hex(data), "p" * 64, 0, 1000, 1000, CODEC_RAW)
    with pytest.raises(CorruptObject, match="read 10 bytes"):
        decode_chunk(location, data[:10])


def test_a_missing_pack_is_named(tmp_path):
    backend = open_backend(str(tmp_path))
    with pytest.raises(MissingObject, match="pack abc"):
        backend.read_range("abc", 0, 10)


def test_local_packs_are_write_once(tmp_path):
    backend = open_backend(str(tmp_path))
    pack = _write_pack(backend, [b"same bytes" * 100])
    again = _write_pack(backend, [b"same bytes" * 100])
    assert again.pack_id == pack.pack_id
    assert [pid for pid, _ in backend.list_packs()] == [pack.pack_id]
    assert os.listdir(backend.spool_dir()) == []
