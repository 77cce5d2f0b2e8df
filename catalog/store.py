"""The catalog's view of the store: the configured backend, the chunk index kept in
the database, and loading trees and file manifests back."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import zstandard
from django.conf import settings
from django.db import connection

from catalog.errors import IntegrityFailure, UnsafeTree
from catalog.hooks import store_transferred
from catalog.models import Chunk, FileManifest, Tree
from strata_store import tree as treeformat
from strata_store.backends import Backend, open_backend
from strata_store.hashing import EMPTY_DIGEST
from strata_store.packs import ChunkLocation, IndexEntry, Payload
from strata_store.store import read_chunk_views, read_chunks

_BATCH = 500
_backends: dict[str, Backend] = {}
_backends_lock = threading.Lock()


def get_backend() -> Backend:
    """The backend that STORAGE_URL names (opened once per process and URL)."""
    url = settings.STRATA_STORAGE_URL
    with _backends_lock:
        backend = _backends.get(url)
        if backend is None:
            backend = open_backend(
                url, spool_dir=_cache_spool_dir(), restore_seconds=settings.STRATA_LOCAL_RESTORE_SECONDS
            )
            _backends[url] = backend
    return backend


def _cache_spool_dir() -> str:
    return os.path.join(settings.STRATA_CACHE_DIR, "spool")


def spool_dirs() -> list[str]:
    """Every local folder packs are spooled in before they are stored: the
    configured backend's (``tmp/`` inside a local store, the cache's spool folder
    for S3) and the cache's spool folder in any case, for what a store
    configured before this one left there."""
    return [get_backend().spool_dir(), _cache_spool_dir()]


def read_pulled(
    locations: Iterable[ChunkLocation], *, workers: int = 4, views: bool = False
) -> Iterator[Payload]:
    """`read_chunks` from the configured store, for bytes leaving it (a pull, a
    download): each chunk's stored bytes are counted as pulled once it is read,
    so a download cut short counts only what was read. With `views`, chunks
    stored raw come as views (see `read_chunk_views`): for bytes only written out."""
    ordered = list(locations)  # read_chunks takes them all at once anyway
    reader = read_chunk_views if views else read_chunks
    for location, data in zip(ordered, reader(get_backend(), ordered, workers=workers), strict=False):
        store_transferred("pull", location.stored_length)
        yield data


def batched(items: Sequence[str], size: int = _BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DatabaseChunkIndex:
    """The chunk index of `strata_store.store`, kept in the Chunk table."""

    def missing(self, chunk_ids: Sequence[str]) -> set[str]:
        present: set[str] = set()
        for batch in batched(chunk_ids):
            present.update(Chunk.objects.filter(id__in=batch).values_list("id", flat=True))
        return set(chunk_ids) - present

    def locate(self, chunk_ids: Sequence[str]) -> dict[str, ChunkLocation]:
        found: dict[str, ChunkLocation] = {}
        unique = list(dict.fromkeys(chunk_ids))
        for batch in batched(unique):
            rows = Chunk.objects.filter(id__in=batch).values_list(
                "id", "pack_id", "offset", "stored_length", "raw_length", "codec"
            )
            for chunk_id, pack_id, offset, stored_length, raw_length, codec in rows:
                found[chunk_id] = ChunkLocation(chunk_id, pack_id, offset, stored_length, raw_length, codec)
        return found


def chunks_register(pack_id: str, entries: Iterable[IndexEntry]) -> None:
    """Index a stored pack's chunks; a chunk already indexed keeps its location.

    One prepared statement run for every row: building 30,000 model instances for
    `bulk_create` costs more than a second per GiB pushed, this a tenth of that.
    """
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in ("id", "pack_id", "offset", "stored_length", "raw_length", "codec"))
    sql = (
        f"INSERT INTO {quote(Chunk._meta.db_table)} ({columns}) VALUES (%s, %s, %s, %s, %s, %s)"
        f" ON CONFLICT ({quote('id')}) DO NOTHING"
    )
    rows = [(e.chunk_id, pack_id, e.offset, e.stored_length, e.raw_length, e.codec) for e in entries]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 5000):
            cursor.executemany(sql, rows[start : start + 5000])


_compressor = zstandard.ZstdCompressor(level=3)


def tree_row(data: bytes, entry_count: int) -> Tree:
    """An unsaved Tree row for canonical tree bytes."""
    return Tree(id=treeformat.tree_id(data), data=_compressor.compress(data), entry_count=entry_count)


def trees_load(tree_ids: Iterable[str]) -> dict[str, list[treeformat.Entry]]:
    """Load and verify trees by id. A tree whose bytes do not match its name, or
    that holds an unsafe name, is refused."""
    wanted = list(dict.fromkeys(tree_ids))
    loaded: dict[str, list[treeformat.Entry]] = {}
    decompressor = zstandard.ZstdDecompressor()
    for batch in batched(wanted):
        for tree_id, data in Tree.objects.filter(id__in=batch).values_list("id", "data"):
            try:
                raw = decompressor.decompress(bytes(data))
                loaded[tree_id] = treeformat.decode(raw, expected_id=tree_id)
            except treeformat.UnsafeName as error:
                raise UnsafeTree(f"tree {tree_id} holds an {error}; refusing to use it.") from None
            except (zstandard.ZstdError, treeformat.InvalidTree) as error:
                raise IntegrityFailure(f"tree {tree_id} cannot be used: {error}") from None
    for tree_id in wanted:
        if tree_id not in loaded:
            raise IntegrityFailure(f"tree {tree_id} is missing from the catalog")
    return loaded


@dataclass(frozen=True, slots=True)
class WalkedEntry:
    path: str  # relative, "/"-separated
    entry: treeformat.Entry


def walk_tree(root_id: str) -> list[WalkedEntry]:
    """Every entry below a root tree, loading one level of subtrees per query."""
    result: list[WalkedEntry] = []
    level: list[tuple[str, str]] = [("", root_id)]
    seen_depth = 0
    while level:
        seen_depth += 1
        if seen_depth > 256:
            raise IntegrityFailure(f"tree {root_id} is nested too deeply to be real")
        trees = trees_load(tree_id for _, tree_id in level)
        next_level: list[tuple[str, str]] = []
        for prefix, tree_id in level:
            for entry in trees[tree_id]:
                path = f"{prefix}{entry.name}"
                result.append(WalkedEntry(path, entry))
                if entry.is_tree:
                    next_level.append((path + "/", entry.digest))
        level = next_level
    return result


def file_chunks(digests: Iterable[str]) -> dict[str, list[str]]:
    """The chunk ids of each file digest: from its manifest, or the digest itself
    for a file of one chunk, or nothing for an empty file."""
    wanted = [digest for digest in dict.fromkeys(digests) if digest != EMPTY_DIGEST]
    result: dict[str, list[str]] = {EMPTY_DIGEST: []}
    for batch in batched(wanted):
        for manifest in FileManifest.objects.filter(digest__in=batch):
            result[manifest.digest] = manifest.chunk_list()
    for digest in wanted:
        result.setdefault(digest, [digest])
    return result


def present_digests(digests: Iterable[str]) -> set[str]:
    """Which file digests the store can serve (manifest or single chunk present)."""
    wanted = list(dict.fromkeys(digests))
    present = {EMPTY_DIGEST} & set(wanted)
    for batch in batched(wanted):
        present.update(FileManifest.objects.filter(digest__in=batch).values_list("digest", flat=True))
        present.update(Chunk.objects.filter(id__in=batch).values_list("id", flat=True))
    return present
