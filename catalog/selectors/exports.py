"""Streaming a version out: one file, or the whole version as a tar.

Both read through `strata_store.store.read_chunks`, so every chunk is verified
before its bytes leave, and memory stays flat whatever the version's size: a tar is
produced member by member, chunk by chunk. Used by the pages and the API alike.
"""

from __future__ import annotations

import itertools
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from catalog.errors import IntegrityFailure, NotFound
from catalog.models import Version
from catalog.selectors import tree_listing
from catalog.store import DatabaseChunkIndex, file_chunks, read_pulled, walk_tree
from strata_store import tree as treeformat
from strata_store.errors import MissingObject, StoreError
from strata_store.packs import Payload
from strata_store.store import locate_all


@dataclass(frozen=True, slots=True)
class FileStream:
    path: str
    entry: treeformat.Entry
    chunks: Iterator[bytes]


def find_entry(version: Version, path: str) -> treeformat.Entry:
    """The tree entry at `path` in `version` (NotFound if there is none)."""
    parent, _, name = path.strip("/").rpartition("/")
    listing = tree_listing(version, parent)
    for entry in listing.entries:
        if entry.name == name:
            return entry
    raise NotFound(f"{path} is not in {version.dataset.name}@{version.semver}.")


def _verified(chunks: Iterator[Payload], what: str) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            # bytes() of a bytes object is that same object: no copy for read_pulled's chunks.
            yield bytes(chunk)
    except StoreError as error:
        raise IntegrityFailure(f"cannot read {what}: {error}") from None


def _primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stream, with its first chunk already read and verified: damage there —
    every byte of a small file — is an IntegrityFailure now, before a response has
    begun, so it is answered (and logged) as the 502 it is. Damage further on can
    only cut a stream short once its first bytes are sent."""
    first = next(chunks, None)
    return itertools.chain(() if first is None else (first,), chunks)


def file_stream(version: Version, path: str) -> FileStream:
    """Stream one file's bytes, verified chunk by chunk (the first before this returns)."""
    entry = find_entry(version, path)
    if not entry.is_file:
        raise NotFound(f"{path} in {version.dataset.name}@{version.semver} is not a file.")
    chunk_ids = file_chunks([entry.digest])[entry.digest]
    try:
        locations = locate_all(DatabaseChunkIndex(), chunk_ids)
    except MissingObject as error:
        raise IntegrityFailure(f"cannot read {path}: {error}") from None
    stream = read_pulled([locations[c] for c in chunk_ids], workers=2)
    return FileStream(path, entry, _primed(_verified(stream, path)))


def tar_stream(version: Version) -> Iterator[bytes]:
    """The whole version as an uncompressed tar, produced as it is read."""
    walked = walk_tree(version.tree_id)
    files = [item for item in walked if item.entry.is_file]
    chunks_of = file_chunks(item.entry.digest for item in files)
    try:
        locations = locate_all(
            DatabaseChunkIndex(), [c for item in files for c in chunks_of[item.entry.digest]]
        )
    except MissingObject as error:
        raise IntegrityFailure(f"cannot read {version}: {error}") from None
    return _tar_members(version, walked, chunks_of, locations)


def _tar_members(version, walked, chunks_of, locations) -> Iterator[bytes]:
    mtime = int(version.created.timestamp())
    for item in walked:
        info = tarfile.TarInfo(item.path)
        info.mtime = mtime
        entry = item.entry
        if entry.is_tree:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            yield info.tobuf(format=tarfile.PAX_FORMAT)
        elif entry.kind == treeformat.LINK:
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.digest, 0o777
            yield info.tobuf(format=tarfile.PAX_FORMAT)
        else:
            info.size = entry.size
            info.mode = 0o755 if entry.kind == treeformat.EXECUTABLE else 0o644
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            chunk_locations = [locations[c] for c in chunks_of[entry.digest]]
            yield from _verified(read_pulled(chunk_locations, workers=2), item.path)
            padding = -entry.size % tarfile.BLOCKSIZE
            if padding:
                yield b"\0" * padding
    yield b"\0" * (tarfile.BLOCKSIZE * 2)
