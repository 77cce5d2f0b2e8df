"""Pushing a folder or file as a new version of a dataset.

The order of work is what keeps data safe (DESIGN.md, invariant 2): files are chunked
and packs are written and stored first; only then does one database transaction
register the packs, chunks, trees and the version, and move the branch by
compare-and-swap. A push killed at any point before that transaction commits leaves
at most packs that nothing refers to, which `verify` lists and garbage collection
removes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from catalog import permissions
from catalog.domain.tabular import SCHEMA_SAMPLE_BYTES, needs_whole_file, read_schema
from catalog.errors import UserError
from catalog.hooks import store_transferred
from catalog.models import (
    Version,
)
from catalog.selectors.changes import commit_bump
from catalog.services.commits import CommitContent, CommitRequest, commit_prepare, version_commit
from catalog.services.validation import check_dataset_name, check_ref_name, parse_semver  # noqa: F401
from catalog.store import (
    DatabaseChunkIndex,
    file_chunks,
    get_backend,
    present_digests,
    walk_tree,
)
from strata_store import tree as treeformat
from strata_store.scan import Scan, ScanError, ScannedFile, scan_fingerprint
from strata_store.scan import scan as store_scan
from strata_store.statcache import NullStatCache, StatCache
from strata_store.store import FileChangedError, FileRecord, Ingest, IngestReport, ProgressSink


@dataclass(slots=True)
class PushResult:
    dataset: str
    branch: str
    version: Version
    created: bool
    file_count: int
    logical_bytes: int
    new_bytes: int = 0  # content bytes the store did not have before
    stored_bytes: int = 0  # bytes written to packs for them (after compression)
    reused_bytes: int = 0  # content bytes the store already had
    packs: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "branch": self.branch,
            "created": self.created,
            "version": self.version.id,
            "semver": self.version.semver,
            "stage": self.version.stage,
            "code_repo": self.version.code_repo,
            "code_ref": self.version.code_ref,
            "file_count": self.file_count,
            "logical_bytes": self.logical_bytes,
            "new_bytes": self.new_bytes,
            "stored_bytes": self.stored_bytes,
            "reused_bytes": self.reused_bytes,
            "packs": self.packs,
        }


# -- scanning -------------------------------------------------------------------------


def scan_path(path: str) -> tuple[str, Scan]:
    """List what a push of `path` would store (``strata_store.scan``, the scan the
    client uses too). Returns (root folder, scan)."""
    try:
        scanned = store_scan(path)
    except ScanError as error:
        raise UserError(str(error)) from None
    return scanned.root, scanned


# -- trees ----------------------------------------------------------------------------


def build_trees(scan: Scan, digests: dict[str, str]) -> tuple[str, dict[str, tuple[bytes, int]], int, int]:
    """Build every tree of a scanned folder bottom-up (see `build_trees_from`)."""
    files = [
        (
            scanned.relpath,
            treeformat.EXECUTABLE if scanned.executable else treeformat.FILE,
            scanned.stat.st_size,
            digests[scanned.relpath],
        )
        for scanned in scan.files
    ]
    return build_trees_from(files=files, links=scan.links, dirs=scan.dirs)


def build_trees_from(
    *, files: Iterable[tuple[str, str, int, str]], links: dict[str, str], dirs: Iterable[str]
) -> tuple[str, dict[str, tuple[bytes, int]], int, int]:
    """Build every tree bottom-up from files as (relpath, kind, size, digest), links
    as relpath -> target, and every folder's relpath ("" is the root).

    Returns (root id, canonical bytes and entry count of each tree by id, file
    count, total bytes). Rows are made only when a version is committed. A local
    push and a commit from a remote client both build their trees here, so the same
    content gets the same tree ids whichever way it arrived.
    """
    children: dict[str, list[treeformat.Entry]] = defaultdict(list)
    file_count = 0
    for relpath, kind, size, digest in files:
        parent, _, name = relpath.rpartition("/")
        children[parent].append(treeformat.Entry(name, kind, size, digest))
        file_count += 1
    for relpath, target in links.items():
        parent, _, name = relpath.rpartition("/")
        children[parent].append(treeformat.Entry(name, treeformat.LINK, 0, target))
    trees: dict[str, tuple[bytes, int]] = {}
    root_id, root_size = "", 0
    # Deepest folders first, so every subtree is named before its parent needs it.
    for relpath in sorted(dirs, key=lambda d: d.count("/") + (d != ""), reverse=True):
        entries = children[relpath]
        data = treeformat.encode(entries)
        tree_id = treeformat.tree_id(data)
        trees[tree_id] = (data, len(entries))
        total = sum(entry.size for entry in entries)
        if relpath:
            parent, _, name = relpath.rpartition("/")
            children[parent].append(treeformat.Entry(name, treeformat.TREE, total, tree_id))
        else:
            root_id, root_size = tree_id, total
    return root_id, trees, file_count, root_size


# -- the push -------------------------------------------------------------------------


def _stat_cache() -> StatCache:
    return StatCache(os.path.join(settings.STRATA_CACHE_DIR, "stat.sqlite3"))


def version_push(
    *,
    path: str,
    dataset_name: str,
    author: str = "",
    user: permissions.User = None,
    branch: str | None = None,
    message: str = "",
    stage: str | None = None,
    semver: str | None = None,
    semver_override: str | None = None,
    progress: ProgressSink | None = None,
    stat_cache: bool = True,
    created: datetime | None = None,
    within: Sequence[Callable[[Version], None]] = (),
    code: str = "",
) -> PushResult:
    """Store `path` (a file or folder) as a new version on a branch of a dataset.

    Creates the dataset at its first push (the pushing user becomes its owner).
    Makes no version when the content equals the branch head's. `user` None is the
    trusted local command line; otherwise the steward role is needed. Raises
    UserError for bad input (nothing changed), and ConflictError when the branch
    moved while pushing (the data stays stored, so pushing again is quick).

    `created` dates the version in the past, as ``git commit --date`` does, for
    history brought over from another tool; it must not be in the future nor
    before the branch head's own date. `within` are writes made in the version's
    own transaction (a lineage run recorded with the push). `code` names the
    code that made the data, REPOSITORY#COMMIT (or #BRANCH): it is part of the
    new version.
    """
    request = commit_prepare(
        user=user,
        dataset_name=dataset_name,
        branch=branch,
        author=author,
        message=message,
        stage=stage,
        semver=semver,
        semver_override=semver_override,
        created=created,
        code=code,
    )
    request.within.extend(within)
    root, scan = scan_path(path)
    # A folder pushed once (a browser upload's staging copy) is not worth caching.
    cache = _stat_cache() if stat_cache else NullStatCache()
    try:
        return _push_scanned(request, root=root, scan=scan, cache=cache, progress=progress)
    finally:
        cache.close()


def _push_scanned(
    request: CommitRequest, *, root: str, scan: Scan, cache: StatCache, progress: ProgressSink | None
) -> PushResult:
    start_head, dataset_name, branch_name = request.start_head, request.dataset_name, request.branch_name
    fingerprint = scan_fingerprint(scan)
    unchanged = _unchanged(request, root, scan, cache, fingerprint)
    if unchanged is not None:
        return unchanged
    by_path = {scanned.abspath: scanned for scanned in scan.files}
    cached = cache.lookup(root, ((scanned.abspath, scanned.stat) for scanned in scan.files))
    digests = {by_path[abspath].relpath: digest for abspath, digest in cached.items()}

    # Cached digests are trusted only if the store still holds their content.
    present = present_digests(set(digests.values()))
    to_read = [scanned for scanned in scan.files if digests.get(scanned.relpath) not in present]
    for scanned in to_read:
        digests.pop(scanned.relpath, None)
    # Files taken as stored without reading them: the commit checks their chunks
    # are still there. Those the branch head holds need no check while the head
    # lives (retention keeps every chunk of a version it has not expired).
    reused_files = set(digests.values())
    parent_live = start_head is not None and start_head.expired is None
    if start_head is not None and parent_live and reused_files:
        reused_files -= {item.entry.digest for item in walk_tree(start_head.tree_id) if item.entry.is_file}

    records, report = _store_files(to_read, digests, progress)
    root_id, trees, file_count, logical = build_trees(scan, digests)
    if start_head is not None and root_id == start_head.tree_id:
        version, made = start_head, False
    else:
        request.bump, request.bump_reasons = commit_bump(start_head, root_id, trees, _schema_reader(scan))
        request.content = CommitContent.stored((root_id, trees, file_count, logical), records, report)
        request.relied_on = [
            *report.reused_chunks,
            *(chunk_id for chunk_ids in file_chunks(reused_files).values() for chunk_id in chunk_ids),
        ]
        request.relies_on_version = start_head if parent_live else None
        version, made = version_commit(request), True
    by_rel = {scanned.relpath: scanned for scanned in scan.files}
    cache.record((by_rel[rel].abspath, by_rel[rel].stat, digest) for rel, digest in digests.items())
    if all(cache.is_settled(scanned.stat) for scanned in scan.files):
        cache.record_snapshot(root, fingerprint, root_id)
    return PushResult(
        dataset_name,
        branch_name,
        version,
        made,
        file_count,
        logical,
        new_bytes=report.new_raw_bytes,
        stored_bytes=report.new_bytes,
        reused_bytes=logical - report.new_raw_bytes,
        packs=len(report.packs),
    )


def _unchanged(
    request: CommitRequest, root: str, scan: Scan, cache: StatCache, fingerprint: str
) -> PushResult | None:
    """The answer to a push of a folder the stat cache knows to be the branch head's
    tree, without reading a file; None when it may have changed."""
    start_head = request.start_head
    if start_head is None:
        return None
    if cache.snapshot_tree(root, fingerprint) == start_head.tree_id:
        # The folder is exactly as it was when it last matched the head.
        logical = sum(scanned.stat.st_size for scanned in scan.files)
        return PushResult(
            request.dataset_name, request.branch_name, start_head, False, len(scan.files), logical,
            reused_bytes=logical,
        )  # fmt: skip
    by_path = {scanned.abspath: scanned for scanned in scan.files}
    cached = cache.lookup(root, ((scanned.abspath, scanned.stat) for scanned in scan.files))
    if len(cached) != len(scan.files):
        return None
    # Every file is known unchanged: if the tree is the head's, nothing to do.
    digests = {by_path[abspath].relpath: digest for abspath, digest in cached.items()}
    root_id, _, file_count, logical = build_trees(scan, digests)
    if root_id != start_head.tree_id:
        return None
    if all(cache.is_settled(scanned.stat) for scanned in scan.files):
        cache.record_snapshot(root, fingerprint, root_id)
    return PushResult(
        request.dataset_name,
        request.branch_name,
        start_head,
        False,
        file_count,
        logical,
        reused_bytes=logical,
    )


def _store_files(
    to_read: list[ScannedFile], digests: dict[str, str], progress: ProgressSink | None
) -> tuple[dict[str, FileRecord], IngestReport]:
    """Read, chunk and store the files not known to be stored (packs written and
    verified: invariant 2); adds their digests to `digests`."""
    if progress is not None:
        progress.start(len(to_read), sum(scanned.stat.st_size for scanned in to_read))
    ingest = Ingest(
        get_backend(), DatabaseChunkIndex(), pack_size=settings.STRATA_PACK_SIZE, progress=progress
    )
    records: dict[str, FileRecord] = {}
    try:
        for scanned in to_read:
            try:
                record = ingest.add_file(scanned.abspath, scanned.stat.st_size)
            except PermissionError:
                raise UserError(f"cannot read {scanned.abspath}: permission denied.") from None
            except FileNotFoundError:
                raise UserError(f"{scanned.abspath} disappeared while it was being pushed.") from None
            except FileChangedError as error:
                raise UserError(str(error)) from None
            digests[scanned.relpath] = record.digest
            records[record.digest] = record
        report = ingest.finish()
    except BaseException:
        ingest.abort()
        raise
    finally:
        if progress is not None:
            progress.finish()
    # Every pack is in the store now, whether or not the commit wins its race.
    store_transferred("push", sum(pack.size for pack in report.packs))
    return records, report


def _schema_reader(scan: Scan) -> Callable[[str], dict[str, str]]:
    """How the semantic-version rule reads a new table's schema: from the pushed file."""
    abspaths = {scanned.relpath: scanned.abspath for scanned in scan.files}

    def new_schema(relpath: str) -> dict[str, str]:
        with open(abspaths[relpath], "rb") as handle:
            data = handle.read() if needs_whole_file(relpath) else handle.read(SCHEMA_SAMPLE_BYTES + 1)
        return read_schema(relpath, data)

    return new_schema


def version_touch(*, version: Version, now: datetime | None = None) -> None:
    """Note that a version was read, at most once an hour (a pull of a big version
    must not write a row per file, nor every pull one row)."""
    now = now or timezone.now()
    if version.last_accessed is None or now - version.last_accessed >= timedelta(hours=1):
        Version.objects.filter(pk=version.pk).filter(
            Q(last_accessed__isnull=True) | Q(last_accessed__lte=now - timedelta(hours=1))
        ).update(last_accessed=now)
        version.last_accessed = now
