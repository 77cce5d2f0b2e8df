"""Verifying the store: every reachable object re-read and re-hashed.

Reachable means referenced by a version (every version, or the ones asked for):
their trees, file manifests and chunks. Versions that retention expired are listed,
not checked: their data was let go on purpose. Cold packs (per the catalog's tier)
that no finished restore made readable are listed, not read: reading one would ask
the store for a restore, and a nightly verify must not start restores. Each tree is re-hashed against its name,
each chunk is read from its pack, decompressed and re-hashed, and each file cut in
several chunks is re-hashed whole against its digest from those same decoded bytes
(a file of one chunk is named by that chunk, so its chunk's check is its own). Packs in the store that
the catalog does not know are listed as unreferenced: what a crashed push leaves, for
garbage collection to remove after its grace period; spool files that killed pushes
left are removed once they are a day old.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import zstandard

from catalog import hooks
from catalog.models import FileManifest, Pack, Tree, Version
from catalog.store import DatabaseChunkIndex, batched, get_backend, spool_dirs
from strata_store import tree as treeformat
from strata_store.backends import Backend
from strata_store.errors import StoreError
from strata_store.hashing import EMPTY_DIGEST, new_hasher
from strata_store.packs import ChunkLocation
from strata_store.spool import SpoolFile, spool_sweep
from strata_store.store import read_chunks_checked, verify_locations


@dataclass
class VerifyReport:
    versions: int = 0
    trees: int = 0
    files: int = 0
    # Files of several chunks re-hashed whole against their digests.
    files_hashed: int = 0
    chunks: int = 0
    chunk_bytes: int = 0
    packs: int = 0
    broken: list[str] = field(default_factory=list)
    # Files whose bytes do not hash to their digest: (version, path, digest).
    mismatched_files: list[tuple[str, str, str]] = field(default_factory=list)
    # Versions retention expired, with the day: their data is gone on purpose.
    expired: list[tuple[str, date]] = field(default_factory=list)
    # Cold packs not read, with their sizes: restore them to verify them.
    cold_packs: list[tuple[str, int]] = field(default_factory=list)
    unreferenced_packs: list[tuple[str, int]] = field(default_factory=list)
    # Spool files older than a day: removed, unless asked to keep them.
    spool_files: list[SpoolFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "versions": self.versions,
            "trees": self.trees,
            "files": self.files,
            "files_hashed": self.files_hashed,
            "chunks": self.chunks,
            "chunk_bytes": self.chunk_bytes,
            "packs": self.packs,
            "broken": self.broken,
            "mismatched_files": [
                {"version": label, "path": path, "digest": digest}
                for label, path, digest in self.mismatched_files
            ],
            "expired": [{"version": label, "expired": day.isoformat()} for label, day in self.expired],
            "cold_packs": [{"pack": pack_id, "size": size} for pack_id, size in self.cold_packs],
            "unreferenced_packs": [
                {"pack": pack_id, "size": size} for pack_id, size in self.unreferenced_packs
            ],
            "spool_files": [
                {
                    "path": spool.path,
                    "size": spool.size,
                    "age_seconds": int(spool.age_seconds),
                    "removed": spool.removed,
                }
                for spool in self.spool_files
            ],
        }


def _where(label: str, path: str) -> str:
    return f"{label}/{path}" if path else label


def _label(version: Version) -> str:
    return f"{version.dataset.name}@{version.semver}"


@dataclass
class _Reached:
    """What the versions being verified reach, each object with where it is first
    needed, to name what a broken object affects."""

    needed_by: dict[str, tuple[str, str]] = field(default_factory=dict)  # tree or file -> (version, path)
    file_sizes: dict[str, int] = field(default_factory=dict)  # file digest -> size
    manifests: dict[str, list[str]] = field(default_factory=dict)  # file digest -> chunk ids
    chunk_needed_by: dict[str, str] = field(default_factory=dict)  # chunk id -> "version/path"
    locations: dict[str, ChunkLocation] = field(default_factory=dict)  # chunk id -> where it is stored


def store_verify(
    *,
    versions: Iterable[Version] | None = None,
    list_unreferenced: bool = True,
    keep_spool: bool = False,
) -> VerifyReport:
    """Re-read and re-hash everything the given versions (default: all) reach.

    Unless told not to (`list_unreferenced`), it also looks after the whole store:
    it lists the packs nothing refers to and removes the spool files older than a
    day (only lists them, with `keep_spool`).
    """
    report = VerifyReport()
    if list_unreferenced:
        # First: it is quick, and a spool folder that cannot be read fails the run
        # before hours of reading rather than after.
        report.spool_files = spool_sweep(spool_dirs(), remove=not keep_spool)
    selected = list(versions) if versions is not None else list(Version.objects.select_related("dataset"))
    report.expired = [
        (_label(version), version.expired.date()) for version in selected if version.expired is not None
    ]
    selected = [version for version in selected if version.expired is None]
    report.versions = len(selected)
    reached = _Reached()
    _walk_trees(selected, reached, report)
    report.files = len(reached.file_sizes)
    _locate_chunks(reached, report)
    whole = _files_to_hash(reached, report)
    backend = get_backend()
    _read_back(backend, reached, whole, report)
    if list_unreferenced:
        known_packs = set(Pack.objects.values_list("id", flat=True))
        report.unreferenced_packs = [
            (pack_id, size) for pack_id, size in backend.list_packs() if pack_id not in known_packs
        ]
    return report


def _walk_trees(selected: list[Version], reached: _Reached, report: VerifyReport) -> None:
    """Decode the versions' trees, level by level, each shared subtree once, and
    note the files they hold."""
    level = []
    for version in selected:
        if version.tree_id not in reached.needed_by:
            reached.needed_by[version.tree_id] = (_label(version), "")
            level.append(version.tree_id)
    seen_trees: set[str] = set(level)
    decompressor = zstandard.ZstdDecompressor()
    while level:
        next_level: list[str] = []
        found: set[str] = set()
        for batch in batched(level):
            for tree_id, data in Tree.objects.filter(id__in=batch).values_list("id", "data"):
                found.add(tree_id)
                report.trees += 1
                next_level.extend(
                    _tree_children(tree_id, bytes(data), decompressor, seen_trees, reached, report)
                )
        for tree_id in set(level) - found:
            report.broken.append(
                f"tree {tree_id} ({_where(*reached.needed_by[tree_id])}) is missing from the catalog"
            )
        level = next_level


def _tree_children(
    tree_id: str,
    data: bytes,
    decompressor: zstandard.ZstdDecompressor,
    seen_trees: set[str],
    reached: _Reached,
    report: VerifyReport,
) -> list[str]:
    """Check one tree against its name; note the files it holds and return the
    subtrees not seen before (a broken tree is reported and has none)."""
    label, folder = reached.needed_by[tree_id]
    try:
        entries = treeformat.decode(decompressor.decompress(data), expected_id=tree_id)
    except (zstandard.ZstdError, treeformat.InvalidTree) as error:
        report.broken.append(f"tree {tree_id} ({_where(label, folder)}): {error}")
        return []
    subtrees: list[str] = []
    for entry in entries:
        where = (label, f"{folder}/{entry.name}" if folder else entry.name)
        if entry.is_tree and entry.digest not in seen_trees:
            seen_trees.add(entry.digest)
            reached.needed_by[entry.digest] = where
            subtrees.append(entry.digest)
        elif entry.is_file and entry.digest not in reached.file_sizes:
            reached.file_sizes[entry.digest] = entry.size
            reached.needed_by.setdefault(entry.digest, where)
    return subtrees


def _locate_chunks(reached: _Reached, report: VerifyReport) -> None:
    """Files -> chunks (a file without a manifest is its one chunk), and chunks ->
    where the index has them; a chunk the index lacks is broken."""
    digests = [digest for digest in reached.file_sizes if digest != EMPTY_DIGEST]
    for batch in batched(digests):
        for manifest in FileManifest.objects.filter(digest__in=batch):
            reached.manifests[manifest.digest] = manifest.chunk_list()
    for digest in digests:
        for chunk_id in reached.manifests.get(digest, [digest]):
            reached.chunk_needed_by.setdefault(chunk_id, _where(*reached.needed_by[digest]))
    reached.locations = DatabaseChunkIndex().locate(list(reached.chunk_needed_by))
    for chunk_id in reached.chunk_needed_by:
        if chunk_id not in reached.locations:
            report.broken.append(
                f"chunk {chunk_id} ({reached.chunk_needed_by[chunk_id]}) is missing from the index"
            )


def _files_to_hash(reached: _Reached, report: VerifyReport) -> list[str]:
    """The files to re-hash whole: those of a manifest whose chunks are all there
    and add up to the file's size (one that does not add up is broken)."""
    whole: list[str] = []
    for digest, chunk_ids in reached.manifests.items():
        if not all(c in reached.locations for c in chunk_ids):
            continue
        total = sum(reached.locations[c].raw_length for c in chunk_ids)
        if total != reached.file_sizes[digest]:
            report.broken.append(
                f"file {digest} ({_where(*reached.needed_by[digest])}): its chunks add up to {total} bytes, "
                f"not {reached.file_sizes[digest]}"
            )
        elif chunk_ids != [digest]:
            whole.append(digest)
    return whole


def _read_back(backend: Backend, reached: _Reached, whole: list[str], report: VerifyReport) -> None:
    """Read the chunks back from their packs and re-hash them, and the files in
    `whole` with them; cold packs are left alone."""
    locations, manifests = reached.locations, reached.manifests
    cold = _cold_packs({location.pack_id for location in locations.values()}, backend)
    report.cold_packs = sorted(cold.items())
    readable = [location for location in locations.values() if location.pack_id not in cold]
    report.chunks = len(readable)
    report.chunk_bytes = sum(location.raw_length for location in readable)
    report.packs = len({location.pack_id for location in readable})
    whole = [digest for digest in whole if all(locations[c].pack_id not in cold for c in manifests[digest])]
    # Files first, in the order they were stored (neighbouring chunks are read
    # together): the reads that hash them check their chunks too.
    whole.sort(key=lambda digest: _first_position(manifests[digest], locations))
    chunk_errors, mismatched = _verify_files(backend, whole, manifests, locations)
    report.files_hashed = len(whole)
    for chunk_id, chunk_error in chunk_errors.items():
        if chunk_error is not None:
            report.broken.append(f"{chunk_error} — needed by {reached.chunk_needed_by[chunk_id]}")
    for digest in mismatched:
        label, path = reached.needed_by[digest]
        report.mismatched_files.append((label, path, digest))
        report.broken.append(f"file {path} of {label} does not match its digest {digest}")
    # Then the chunks no such file holds (files of one chunk), in pack order.
    rest = [location for location in readable if location.chunk_id not in chunk_errors]
    for location, chunk_error in verify_locations(backend, rest):
        if chunk_error is not None:
            report.broken.append(f"{chunk_error} — needed by {reached.chunk_needed_by[location.chunk_id]}")


def _first_position(chunk_ids: list[str], locations: dict[str, ChunkLocation]) -> tuple[str, int]:
    """Where a file's first chunk is stored (a forged manifest may name none)."""
    if not chunk_ids:
        return ("", 0)
    first = locations[chunk_ids[0]]
    return (first.pack_id, first.offset)


def _verify_files(
    backend: Backend,
    digests: list[str],
    manifests: dict[str, list[str]],
    locations: dict[str, ChunkLocation],
) -> tuple[dict[str, StoreError | None], list[str]]:
    """Re-hash each file whole from its chunks, decoded in order.

    Returns every chunk read with its error (None when it is sound), and the files
    whose chunks are all sound but do not hash to their digest: a manifest forged
    or damaged in the catalog, naming chunks that are not the file's. A file with
    a bad chunk is left to that chunk's error. A chunk shared by several files is
    read once per file (each needs its bytes), its error kept from the first read.
    Only the chunks being hashed and the reads running ahead of them are held, so
    the size of a file does not matter.
    """
    wanted = (locations[chunk_id] for digest in digests for chunk_id in manifests[digest])
    reads = read_chunks_checked(backend, wanted)
    chunk_errors: dict[str, StoreError | None] = {}
    mismatched: list[str] = []
    for digest in digests:
        hasher = new_hasher()
        intact = True
        for chunk_id in manifests[digest]:
            _location, content = next(reads)
            if isinstance(content, StoreError):
                intact = False
                chunk_errors.setdefault(chunk_id, content)
                continue
            chunk_errors.setdefault(chunk_id, None)
            hasher.update(content)
        if intact and hasher.hexdigest() != digest:
            mismatched.append(digest)
    return chunk_errors, mismatched


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
        restored = hooks.packs_restored(list(batch))
        for pack_id, size in rows:
            if pack_id not in restored or not backend.restore_state(pack_id).readable:
                cold[pack_id] = size
    return cold
