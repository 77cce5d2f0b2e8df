"""Verifying the store: every reachable object re-read and re-hashed.

Reachable means referenced by a version (every version, or the ones asked for):
their trees, file manifests and chunks. Versions that retention expired are listed,
not checked: their data was let go on purpose. Cold packs (per the catalog's tier)
that no finished restore made readable are listed, not read: reading one would ask
the store for a restore, and a nightly verify must not start restores. Each tree is re-hashed against its name,
each chunk is read from its pack, decompressed and re-hashed. Packs in the store that
the catalog does not know are listed as unreferenced: what a crashed push leaves, for
garbage collection to remove after its grace period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import zstandard

from catalog.models import FileManifest, Pack, PackRestore, Tree, Version
from catalog.storage import tree as treeformat
from catalog.storage.backends import Backend
from catalog.storage.hashing import EMPTY_DIGEST
from catalog.storage.store import verify_locations

from .store import DatabaseChunkIndex, batched, get_backend


@dataclass
class VerifyReport:
    versions: int = 0
    trees: int = 0
    files: int = 0
    chunks: int = 0
    chunk_bytes: int = 0
    packs: int = 0
    broken: list[str] = field(default_factory=list)
    # Versions retention expired, with the day: their data is gone on purpose.
    expired: list[tuple[str, date]] = field(default_factory=list)
    # Cold packs not read, with their sizes: restore them to verify them.
    cold_packs: list[tuple[str, int]] = field(default_factory=list)
    unreferenced_packs: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "versions": self.versions,
            "trees": self.trees,
            "files": self.files,
            "chunks": self.chunks,
            "chunk_bytes": self.chunk_bytes,
            "packs": self.packs,
            "broken": self.broken,
            "expired": [{"version": label, "expired": day.isoformat()} for label, day in self.expired],
            "cold_packs": [{"pack": pack_id, "size": size} for pack_id, size in self.cold_packs],
            "unreferenced_packs": [
                {"pack": pack_id, "size": size} for pack_id, size in self.unreferenced_packs
            ],
        }


def store_verify(
    *, versions: Iterable[Version] | None = None, list_unreferenced: bool = True
) -> VerifyReport:
    """Re-read and re-hash everything the given versions (default: all) reach, and
    (unless told not to) list the packs in the store that nothing refers to."""
    report = VerifyReport()
    selected = list(versions) if versions is not None else list(Version.objects.select_related("dataset"))
    report.expired = [
        (f"{version.dataset.name}@{version.semver}", version.expired.date())
        for version in selected
        if version.expired is not None
    ]
    selected = [version for version in selected if version.expired is None]
    report.versions = len(selected)
    # Where each object is first needed, to name what a broken object affects.
    needed_by: dict[str, str] = {}

    # Trees, level by level, each shared subtree once.
    level = []
    for version in selected:
        if version.tree_id not in needed_by:
            needed_by[version.tree_id] = f"{version.dataset.name}@{version.semver}"
            level.append(version.tree_id)
    seen_trees: set[str] = set(level)
    file_digests: dict[str, int] = {}
    decompressor = zstandard.ZstdDecompressor()
    while level:
        next_level: list[str] = []
        found: set[str] = set()
        for batch in batched(level):
            for tree_id, data in Tree.objects.filter(id__in=batch).values_list("id", "data"):
                found.add(tree_id)
                report.trees += 1
                try:
                    entries = treeformat.decode(decompressor.decompress(bytes(data)), expected_id=tree_id)
                except (zstandard.ZstdError, treeformat.InvalidTree) as error:
                    report.broken.append(f"tree {tree_id} ({needed_by[tree_id]}): {error}")
                    continue
                for entry in entries:
                    where = f"{needed_by[tree_id]}/{entry.name}"
                    if entry.is_tree and entry.digest not in seen_trees:
                        seen_trees.add(entry.digest)
                        needed_by[entry.digest] = where
                        next_level.append(entry.digest)
                    elif entry.is_file and entry.digest not in file_digests:
                        file_digests[entry.digest] = entry.size
                        needed_by.setdefault(entry.digest, where)
        for tree_id in set(level) - found:
            report.broken.append(f"tree {tree_id} ({needed_by[tree_id]}) is missing from the catalog")
        level = next_level
    report.files = len(file_digests)

    # Files -> chunks; a manifest must add up to its file's size.
    chunk_needed_by: dict[str, str] = {}
    manifests: dict[str, list[str]] = {}
    digests = [digest for digest in file_digests if digest != EMPTY_DIGEST]
    for batch in batched(digests):
        for manifest in FileManifest.objects.filter(digest__in=batch):
            manifests[manifest.digest] = manifest.chunk_list()
    for digest in digests:
        for chunk_id in manifests.get(digest, [digest]):
            chunk_needed_by.setdefault(chunk_id, needed_by[digest])
    locations = DatabaseChunkIndex().locate(list(chunk_needed_by))
    for chunk_id in chunk_needed_by:
        if chunk_id not in locations:
            report.broken.append(f"chunk {chunk_id} ({chunk_needed_by[chunk_id]}) is missing from the index")
    for digest, chunk_ids in manifests.items():
        total = sum(locations[c].raw_length for c in chunk_ids if c in locations)
        if all(c in locations for c in chunk_ids) and total != file_digests[digest]:
            report.broken.append(
                f"file {digest} ({needed_by[digest]}): its chunks add up to {total} bytes, not {file_digests[digest]}"
            )

    # Chunks, read back from their packs; cold ones are left alone.
    backend = get_backend()
    cold = _cold_packs({location.pack_id for location in locations.values()}, backend)
    report.cold_packs = sorted(cold.items())
    readable = [location for location in locations.values() if location.pack_id not in cold]
    report.chunks = len(readable)
    report.packs = len({location.pack_id for location in readable})
    for location, error in verify_locations(backend, readable):
        report.chunk_bytes += location.raw_length
        if error is not None:
            report.broken.append(f"{error} — needed by {chunk_needed_by[location.chunk_id]}")

    if not list_unreferenced:
        return report
    known_packs = set(Pack.objects.values_list("id", flat=True))
    report.unreferenced_packs = [
        (pack_id, size) for pack_id, size in backend.list_packs() if pack_id not in known_packs
    ]
    return report


def _cold_packs(pack_ids: set[str], backend: Backend) -> dict[str, int]:
    """pack id -> size of the packs among `pack_ids` that are cold and not restored.

    The catalog's tier decides, not a read: on S3 a read of an archived object asks
    for a restore. A pack counts as restored while a finished restore is on record
    and the store still says it is readable (restored copies expire);
    `restore_state` only looks, it never asks for a restore.
    """
    cold: dict[str, int] = {}
    for batch in batched(sorted(pack_ids)):
        rows = Pack.objects.filter(id__in=batch, tier=Pack.Tier.COLD).values_list("id", "size")
        restored = set(
            PackRestore.objects.filter(pack_id__in=batch, state=PackRestore.State.READY).values_list(
                "pack_id", flat=True
            )
        )
        for pack_id, size in rows:
            if pack_id not in restored or not backend.restore_state(pack_id).readable:
                cold[pack_id] = size
    return cold
