"""Who may name stored content: possession, not knowledge.

The store is shared by content: the same bytes are kept once, whoever pushed them.
A remote client names content by hash, and a hash is something one can know
without having the bytes (from a published checksum, a DVC lock file, a log). So a
remote push may name stored content only if

- its own upload sent the bytes, and a worker verified them
  (``catalog.services.remote.verification``), or
- a dataset the pushing user may read holds them: some version of it has a file
  with that digest, or a verified multi-chunk file holding that chunk.

Everything else is answered "missing", whether or not it exists, so that the answer
reveals nothing about datasets the user cannot read; the client then sends the
bytes, which proves it has them.

Two tables answer this with indexed semi-joins: ``DatasetFile`` (which datasets
hold a file digest) and ``ManifestChunk`` (which verified files hold a chunk). Both
are written here, by ``version_commit``, the one way a version comes to exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection

from catalog import permissions
from catalog.models import DatasetFile, ManifestChunk
from catalog.store import batched, trees_load
from strata_store import tree as treeformat
from strata_store.hashing import EMPTY_DIGEST
from strata_store.store import FileRecord

_BATCH = 2000


def new_file_digests(root_id: str, parent_root_id: str | None) -> set[str]:
    """The file digests of tree `root_id` that are not at the same path in
    `parent_root_id`: a walk that skips every subtree the two share, so a commit
    that changed one file of a million reads a handful of trees."""
    found: set[str] = set()
    # (new tree id, the parent's tree at the same path or None)
    level: list[tuple[str, str | None]] = [(root_id, parent_root_id)]
    depth = 0
    while level:
        depth += 1
        if depth > 256:
            break  # trees_load refuses such trees elsewhere; nothing real is this deep
        wanted = [tree_id for tree_id, _ in level] + [old for _, old in level if old]
        trees = trees_load(wanted)
        next_level: list[tuple[str, str | None]] = []
        for tree_id, old_id in level:
            if tree_id == old_id:
                continue
            old_entries = {entry.name: entry for entry in trees[old_id]} if old_id else {}
            for entry in trees[tree_id]:
                old = old_entries.get(entry.name)
                same = old is not None and old.kind == entry.kind and old.digest == entry.digest
                if entry.kind == treeformat.TREE:
                    if not same:
                        old_tree = old.digest if old is not None and old.kind == treeformat.TREE else None
                        next_level.append((entry.digest, old_tree))
                elif entry.kind in (treeformat.FILE, treeformat.EXECUTABLE) and not same:
                    found.add(entry.digest)
        level = next_level
    found.discard(EMPTY_DIGEST)
    return found


def _insert_new(
    model, columns: tuple[str, str], rows: Sequence[tuple[int | str, str]], conflict: tuple[str, str]
) -> None:
    """Insert rows, skipping those already there, with one prepared statement:
    building a model instance per row costs more than the insert (about 2 s for
    the 16,000 chunks of a 1 GiB push, against a tenth of that here)."""
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) VALUES (%s, %s)"
        f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 5000):
            cursor.executemany(sql, rows[start : start + 5000])


def dataset_files_add(*, dataset_id: int, root_id: str, parent_root_id: str | None) -> None:
    """Record that dataset `dataset_id` now holds the files of tree `root_id`."""
    rows = [(dataset_id, digest) for digest in sorted(new_file_digests(root_id, parent_root_id))]
    _insert_new(DatasetFile, ("dataset_id", "digest"), rows, ("digest", "dataset_id"))


def manifest_chunks_add(records: Iterable[FileRecord]) -> None:
    """Record which chunks each new verified multi-chunk file holds."""
    rows = [
        (chunk_id, record.digest)
        for record in records
        if len(record.chunk_ids) > 1
        for chunk_id in dict.fromkeys(record.chunk_ids)
    ]
    _insert_new(ManifestChunk, ("chunk_id", "digest"), rows, ("chunk_id", "digest"))


def _readable_datasets(user: permissions.User):
    return permissions.visible_datasets(user).values("pk")


def readable_files(user: permissions.User, digests: Iterable[str]) -> set[str]:
    """Which of `digests` a dataset `user` may read holds (the empty file always)."""
    wanted = list(dict.fromkeys(digests))
    found = {EMPTY_DIGEST} & set(wanted)
    readable = _readable_datasets(user)
    for batch in batched(wanted, _BATCH):
        found.update(
            DatasetFile.objects.filter(digest__in=batch, dataset__in=readable)
            .values_list("digest", flat=True)
            .distinct()
        )
    return found


def readable_chunks(user: permissions.User, chunk_ids: Iterable[str]) -> set[str]:
    """Which of `chunk_ids` a dataset `user` may read holds: as a file of one chunk
    (its digest is the chunk's id), or inside a verified file of several."""
    wanted = list(dict.fromkeys(chunk_ids))
    found = readable_files(user, wanted)
    rest = [chunk_id for chunk_id in wanted if chunk_id not in found]
    if not rest:
        return found
    readable_digests = DatasetFile.objects.filter(dataset__in=_readable_datasets(user)).values("digest")
    for batch in batched(rest, _BATCH):
        found.update(
            ManifestChunk.objects.filter(chunk_id__in=batch, digest__in=readable_digests)
            .values_list("chunk_id", flat=True)
            .distinct()
        )
    return found
