"""Packs: many chunks appended into one object, so that S3 sees few, large objects.

Layout of a pack (all integers little-endian):

    b"STRATAPK\\x01"                         magic and format version
    chunk payloads, back to back              (zstd frames or raw bytes)
    index: count x (32-byte chunk id, u64 offset, u32 stored length,
                    u32 raw length, u8 codec)
    u32 count, u64 index offset, b"STRATAIX"  footer

A pack is self-describing: its index travels with it, so a lost database can be
rebuilt from the bucket and `verify` can check packs no version refers to. A pack is
named by the BLAKE3 hash of its index and footer. The index names every chunk by
the hash of its content, so the name still pins every byte — and it can be checked
from the pack's tail alone, without reading (or, on S3, downloading) the payload.
Payload bytes are checked chunk by chunk on every read. A pack is written only once
it is whole (see the backends), so a reader never sees half a pack.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import zstandard

from strata_store.errors import CorruptObject
from strata_store.hashing import digest_hex

MAGIC = b"STRATAPK\x01"
FOOTER_MAGIC = b"STRATAIX"
_INDEX_ENTRY = struct.Struct("<32sQIIB")
_FOOTER = struct.Struct("<IQ8s")

CODEC_RAW = 0
CODEC_ZSTD = 1

# Compression pays only when it saves something worth a decompression later.
_MIN_SAVING = 0.05
_ZSTD_LEVEL = 3

DEFAULT_PACK_SIZE = 32 * 1024 * 1024

# A chunk's bytes, or a read-only view of them inside a larger buffer.
Payload = bytes | memoryview
_GATHER_BYTES = 4 * 1024 * 1024
_GATHER_COUNT = 512  # well under IOV_MAX (1024 on Linux)


@dataclass(frozen=True, slots=True)
class ChunkLocation:
    """Where a chunk's stored bytes sit inside a pack."""

    chunk_id: str
    pack_id: str
    offset: int
    stored_length: int
    raw_length: int
    codec: int


@dataclass(frozen=True, slots=True)
class IndexEntry:
    chunk_id: str
    offset: int
    stored_length: int
    raw_length: int
    codec: int


@dataclass(frozen=True, slots=True)
class FinishedPack:
    """A complete pack on local disk, ready to upload, with its index."""

    pack_id: str
    path: str
    size: int
    entries: tuple[IndexEntry, ...]

    @property
    def raw_bytes(self) -> int:
        return sum(entry.raw_length for entry in self.entries)


_local = threading.local()


def encode_chunk(data: Payload) -> tuple[Payload, int]:
    """A chunk's stored form: zstd when that saves at least 5%, else raw.

    Thread-safe (one compressor per thread), so chunks can be encoded in parallel.
    """
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    compressed = compressor.compress(data)
    if len(compressed) <= len(data) * (1 - _MIN_SAVING):
        return compressed, CODEC_ZSTD
    return data, CODEC_RAW


def pack_id_of(index_and_footer: bytes) -> str:
    """A pack's name, from the bytes of its index and footer."""
    return digest_hex(index_and_footer)


@dataclass(frozen=True, slots=True)
class SealedPack:
    """A whole pack held in memory, named but not yet written anywhere.

    Sealing is cheap and happens on the pushing thread; `write()` (copying the
    bytes into a spool file) can then run on another thread while the next pack
    is being filled.
    """

    pack_id: str
    size: int
    entries: tuple[IndexEntry, ...]
    parts: tuple[Payload, ...]  # the pack's bytes, in order

    def write(self, spool_dir: str) -> FinishedPack:
        """Write the pack into a new file under `spool_dir`, whole."""
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below, or unlinked)
            dir=spool_dir, prefix="pack-", suffix=".tmp", delete=False
        )
        try:
            with handle:
                write_all(handle.fileno(), self.parts)
        except BaseException:
            os.unlink(handle.name)
            raise
        return FinishedPack(pack_id=self.pack_id, path=handle.name, size=self.size, entries=self.entries)


def write_all(descriptor: int, parts: Sequence[Payload]) -> None:
    """Write every part, in order: one writev() per few MiB, not one write() per
    32 KiB chunk (which cost a second of system time per GiB)."""
    start = 0
    while start < len(parts):
        batch: list[Payload] = []
        batch_bytes = 0
        while start < len(parts) and len(batch) < _GATHER_COUNT and batch_bytes < _GATHER_BYTES:
            batch.append(parts[start])
            batch_bytes += len(parts[start])
            start += 1
        while batch:
            written = os.writev(descriptor, batch)
            # A short write leaves the rest of the batch (and of one part) to do.
            while batch and written >= len(batch[0]):
                written -= len(batch[0])
                batch.pop(0)
            if batch and written:
                batch[0] = memoryview(batch[0])[written:]


class PackWriter:
    """Collects chunks into a pack.

    Not thread-safe: one writer per pushing thread. `seal()` names the pack and
    hands it over in memory; `finish()` also writes it into a spool file, ready
    for the backend (which makes it durable). The writer then starts empty.
    """

    def __init__(self, spool_dir: str, target_size: int = DEFAULT_PACK_SIZE) -> None:
        self.spool_dir = spool_dir
        self.target_size = target_size
        self._parts: list[Payload] = []
        self._entries: list[IndexEntry] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def is_empty(self) -> bool:
        return not self._entries

    def add(self, chunk_id: str, data: bytes) -> IndexEntry:
        """Append one chunk, encoding it here."""
        payload, codec = encode_chunk(data)
        return self.add_encoded(chunk_id, len(data), payload, codec)

    def add_encoded(self, chunk_id: str, raw_length: int, payload: Payload, codec: int) -> IndexEntry:
        """Append one chunk already encoded by `encode_chunk`."""
        if not self._parts:
            self._parts.append(MAGIC)
            self._size = len(MAGIC)
        entry = IndexEntry(chunk_id, self._size, len(payload), raw_length, codec)
        self._parts.append(payload)
        self._size += len(payload)
        self._entries.append(entry)
        return entry

    def should_finish(self) -> bool:
        return self._size >= self.target_size

    def seal(self) -> SealedPack | None:
        """Close the pack: add its index and footer, and name it."""
        if not self._entries:
            return None
        index_offset = self._size
        tail = b"".join(
            _INDEX_ENTRY.pack(
                bytes.fromhex(entry.chunk_id),
                entry.offset,
                entry.stored_length,
                entry.raw_length,
                entry.codec,
            )
            for entry in self._entries
        ) + _FOOTER.pack(len(self._entries), index_offset, FOOTER_MAGIC)
        sealed = SealedPack(
            pack_id=pack_id_of(tail),
            size=self._size + len(tail),
            entries=tuple(self._entries),
            parts=(*self._parts, tail),
        )
        self._start_empty()
        return sealed

    def finish(self) -> FinishedPack | None:
        """Seal the pack and write it into a spool file."""
        sealed = self.seal()
        return None if sealed is None else sealed.write(self.spool_dir)

    def abort(self) -> None:
        """Drop the pack being collected (on error)."""
        self._start_empty()

    def _start_empty(self) -> None:
        self._parts = []
        self._entries = []
        self._size = 0


@overload
def decode_chunk(location: ChunkLocation, payload: Payload, *, copy: Literal[True] = True) -> bytes: ...
@overload
def decode_chunk(location: ChunkLocation, payload: Payload, *, copy: bool) -> Payload: ...
def decode_chunk(location: ChunkLocation, payload: Payload, *, copy: bool = True) -> Payload:
    """Turn a chunk's stored bytes back into its content and verify its name.

    This is the one place chunk bytes are checked: every read goes through it.
    With `copy=False` a raw chunk comes back as the view it was given.
    """
    if len(payload) != location.stored_length:
        raise CorruptObject(
            "chunk",
            location.chunk_id,
            f"in pack {location.pack_id}: read {len(payload)} bytes, expected {location.stored_length}",
        )
    data: Payload
    if location.codec == CODEC_ZSTD:
        decompressor = getattr(_local, "decompressor", None)
        if decompressor is None:
            decompressor = _local.decompressor = zstandard.ZstdDecompressor()
        try:
            data = decompressor.decompress(payload, max_output_size=location.raw_length)
        except zstandard.ZstdError as error:
            raise CorruptObject("chunk", location.chunk_id, f"in pack {location.pack_id}: {error}") from None
    elif location.codec == CODEC_RAW:
        data = bytes(payload) if copy else payload
    else:
        raise CorruptObject("chunk", location.chunk_id, f"unknown codec {location.codec}")
    if len(data) != location.raw_length or digest_hex(data) != location.chunk_id:
        raise CorruptObject("chunk", location.chunk_id, f"in pack {location.pack_id}: hash mismatch")
    return data


def parse_index(pack_id: str, tail: bytes) -> list[IndexEntry]:
    """Parse a pack's index from the bytes at its end (index plus footer)."""
    if len(tail) < _FOOTER.size:
        raise CorruptObject("pack", pack_id, "too short for a footer")
    count, _index_offset, magic = _FOOTER.unpack(tail[-_FOOTER.size :])
    if magic != FOOTER_MAGIC:
        raise CorruptObject("pack", pack_id, "bad footer")
    needed = count * _INDEX_ENTRY.size + _FOOTER.size
    if len(tail) < needed:
        raise CorruptObject("pack", pack_id, "index truncated")
    start = len(tail) - needed
    entries = []
    for position in range(count):
        chunk_id, offset, stored_length, raw_length, codec = _INDEX_ENTRY.unpack_from(
            tail, start + position * _INDEX_ENTRY.size
        )
        entries.append(IndexEntry(chunk_id.hex(), offset, stored_length, raw_length, codec))
    return entries


def footer_size() -> int:
    return _FOOTER.size


def index_entry_size() -> int:
    return _INDEX_ENTRY.size


def payload_size(size: int, chunk_count: int) -> int:
    """The chunk bytes of a pack of `size` bytes holding `chunk_count` chunks: all
    of it but the magic, the index and the footer."""
    return size - len(MAGIC) - chunk_count * _INDEX_ENTRY.size - _FOOTER.size


def read_footer(pack_id: str, footer: bytes) -> tuple[int, int]:
    """Return (chunk count, index offset) from a pack's last bytes."""
    count, index_offset, magic = _FOOTER.unpack(footer[-_FOOTER.size :])
    if magic != FOOTER_MAGIC:
        raise CorruptObject("pack", pack_id, "bad footer")
    return count, index_offset
