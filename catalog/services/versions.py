"""Pushing a folder or file as a new version of a dataset.

The order of work is what keeps data safe (DESIGN.md, invariant 2): files are chunked
and packs are written and stored first; only then does one database transaction
register the packs, chunks, trees and the version, and move the branch by
compare-and-swap. A push killed at any point before that transaction commits leaves
at most packs that nothing refers to, which `verify` lists and garbage collection
removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat as statmod
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from catalog import permissions
from catalog.hooks import store_transferred
from catalog.models import (
    DATASET_NAME_RE,
    REF_NAME_RE,
    SEMVER_RE,
    AuditEvent,
    Branch,
    Chunk,
    Dataset,
    FileManifest,
    Pack,
    Stage,
    Tree,
    Version,
)
from catalog.services.collection import reusing
from catalog.services.errors import ConflictError, UserError
from catalog.services.possession import dataset_files_add, manifest_chunks_add
from catalog.services.store import (
    DatabaseChunkIndex,
    batched,
    chunks_register,
    file_chunks,
    get_backend,
    present_digests,
    tree_row,
    walk_tree,
)
from strata_store import paths
from strata_store import tree as treeformat
from strata_store.hashing import digest_hex
from strata_store.statcache import NullStatCache, StatCache
from strata_store.store import FileChangedError, FileRecord, Ingest, ProgressSink


@dataclass(slots=True)
class ScannedFile:
    relpath: str
    abspath: str
    stat: os.stat_result
    executable: bool


@dataclass(slots=True)
class Scan:
    files: list[ScannedFile] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # relpath -> target
    dirs: list[str] = field(default_factory=list)  # relpaths, "" is the root


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
            "file_count": self.file_count,
            "logical_bytes": self.logical_bytes,
            "new_bytes": self.new_bytes,
            "stored_bytes": self.stored_bytes,
            "reused_bytes": self.reused_bytes,
            "packs": self.packs,
        }


def parse_semver(value: str) -> tuple[int, int, int]:
    match = SEMVER_RE.match(value)
    if not match:
        raise UserError(f"{value!r} is not a semantic version: use MAJOR.MINOR.PATCH, e.g. 1.2.0.")
    return int(match[1]), int(match[2]), int(match[3])


def check_dataset_name(name: str) -> None:
    if not DATASET_NAME_RE.match(name):
        raise UserError(
            f"{name!r} is not a valid dataset name: use letters, digits, '.', '_' and '-',"
            " starting with a letter or digit."
        )


def check_ref_name(name: str, what: str = "branch") -> None:
    if not REF_NAME_RE.match(name) or SEMVER_RE.match(name):
        raise UserError(
            f"{name!r} is not a valid {what} name: use letters, digits, '.', '_', '-' and '/',"
            " and not the form of a semantic version."
        )


# -- scanning -------------------------------------------------------------------------


def scan_path(path: str) -> tuple[str, Scan]:
    """List what a push of `path` would store. Returns (root folder, scan).

    Every path is checked by the rule all ways into the store share
    (``strata_store.paths``). Symbolic links are stored as links, never followed;
    one that leads outside the pushed folder, even through other links, is refused,
    so a pull can never be led to write outside DEST.
    """
    if not os.path.lexists(path):
        raise UserError(f"{path} does not exist.")
    scan = Scan()
    if os.path.isdir(path):
        root = os.path.realpath(path)
        scan.dirs.append("")
        stack = [""]
    else:
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            raise UserError(f"{path} is neither a file nor a folder.")
        root = os.path.dirname(real)
        try:
            paths.check_path(os.path.basename(real))
        except paths.UnsafePath as error:
            raise UserError(str(error)) from None
        st = os.stat(real)
        scan.dirs.append("")
        scan.files.append(ScannedFile(os.path.basename(real), real, st, bool(st.st_mode & statmod.S_IXUSR)))
        return root, scan
    while stack:
        relative_dir = stack.pop()
        absolute_dir = os.path.join(root, relative_dir) if relative_dir else root
        try:
            entries = list(os.scandir(absolute_dir))
        except PermissionError:
            raise UserError(f"cannot read folder {absolute_dir}: permission denied.") from None
        for entry in entries:
            relpath = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            try:
                paths.check_path(relpath)
                if statmod.S_ISLNK(st.st_mode):
                    scan.links[relpath] = paths.local_link_target(root, relpath, os.readlink(entry.path))
                    continue
            except paths.UnsafePath as error:
                raise UserError(str(error)) from None
            if statmod.S_ISDIR(st.st_mode):
                scan.dirs.append(relpath)
                stack.append(relpath)
            elif statmod.S_ISREG(st.st_mode):
                scan.files.append(ScannedFile(relpath, entry.path, st, bool(st.st_mode & statmod.S_IXUSR)))
            else:
                raise UserError(f"{entry.path} is not a regular file, folder or link; remove it.")
    try:
        paths.check_links(scan.links)
    except paths.UnsafePath as error:
        raise UserError(str(error)) from None
    scan.files.sort(key=lambda scanned: scanned.relpath)
    return root, scan


def scan_fingerprint(scan: Scan) -> str:
    """A hash of everything a scan saw: each path with its full stat, each link's
    target, each folder. Equal fingerprints mean an unchanged folder."""
    parts = [
        f"f\0{s.relpath}\0{s.stat.st_dev},{s.stat.st_ino},{s.stat.st_size},"
        f"{s.stat.st_mtime_ns},{s.stat.st_ctime_ns},{int(s.executable)}"
        for s in scan.files
    ]
    parts += [f"l\0{relpath}\0{target}" for relpath, target in sorted(scan.links.items())]
    parts += [f"d\0{relpath}" for relpath in sorted(scan.dirs)]
    return digest_hex("\n".join(parts).encode("utf-8", "surrogateescape"))


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
) -> PushResult:
    """Store `path` (a file or folder) as a new version on a branch of a dataset.

    Creates the dataset at its first push (the pushing user becomes its owner).
    Makes no version when the content equals the branch head's. `user` None is the
    trusted local command line; otherwise the steward role is needed. Raises UserError for bad input (nothing changed), and
    ConflictError when the branch moved while pushing (the data stays stored, so
    pushing again is quick).

    `created` dates the version in the past, as ``git commit --date`` does, for
    history brought over from another tool; it must not be in the future nor
    before the branch head's own date.
    """
    check_dataset_name(dataset_name)
    if branch is not None:
        check_ref_name(branch)
    if stage is not None and stage not in Stage.values:
        raise UserError(f"{stage!r} is not a stage: use one of {', '.join(Stage.values)}.")
    explicit_semver = parse_semver(semver) if semver else None

    dataset = Dataset.objects.filter(name=dataset_name).first()
    if dataset is None:
        permissions.require_role(user, permissions.STEWARD, "create datasets")
    else:
        permissions.require_write(user, dataset)
    if user is not None:
        author = user.get_username()
    if not author:
        raise UserError("a push needs an author.")
    branch_name = branch or (dataset.default_branch if dataset else "main")
    start_head: Version | None = None
    if dataset is not None:
        branch_row = Branch.objects.filter(dataset=dataset, name=branch_name).select_related("head").first()
        empty = branch_row is None and branch_name == dataset.default_branch and not dataset.branches.exists()
        if branch_row is None and not empty:
            raise UserError(
                f"dataset {dataset_name} has no branch {branch_name}; create it first with "
                f"`strata branch {dataset_name} {branch_name}`."
            )
        # A dataset made empty (on its page or through the API) takes its first
        # push on its default branch, which that push creates.
        start_head = branch_row.head if branch_row is not None else None
        if explicit_semver is not None:
            _check_explicit_semver(dataset, start_head, explicit_semver)
    if created is not None:
        check_commit_date(created, start_head)

    root, scan = scan_path(path)
    # A folder pushed once (a browser upload's staging copy) is not worth caching.
    cache = _stat_cache() if stat_cache else NullStatCache()
    try:
        return _push_scanned(
            semver_override=semver_override,
            user=user,
            root=root,
            scan=scan,
            cache=cache,
            dataset=dataset,
            dataset_name=dataset_name,
            branch_name=branch_name,
            start_head=start_head,
            author=author,
            message=message,
            stage=stage,
            explicit_semver=explicit_semver,
            progress=progress,
            created=created,
        )
    finally:
        cache.close()


def _push_scanned(
    *,
    semver_override: str | None,
    user: permissions.User,
    root: str,
    scan: Scan,
    cache: StatCache,
    dataset: Dataset | None,
    dataset_name: str,
    branch_name: str,
    start_head: Version | None,
    author: str,
    message: str,
    stage: str | None,
    explicit_semver: tuple[int, int, int] | None,
    progress: ProgressSink | None,
    created: datetime | None = None,
) -> PushResult:
    fingerprint = scan_fingerprint(scan)
    if start_head is not None and cache.snapshot_tree(root, fingerprint) == start_head.tree_id:
        # The folder is exactly as it was when it last matched the head.
        logical = sum(scanned.stat.st_size for scanned in scan.files)
        return PushResult(
            dataset_name, branch_name, start_head, False, len(scan.files), logical, reused_bytes=logical
        )
    by_path = {scanned.abspath: scanned for scanned in scan.files}
    cached = cache.lookup(root, ((scanned.abspath, scanned.stat) for scanned in scan.files))
    digests = {by_path[abspath].relpath: digest for abspath, digest in cached.items()}

    if len(digests) == len(scan.files) and start_head is not None:
        # Every file is known unchanged: if the tree is the head's, nothing to do,
        # and no file needs to be read at all.
        root_id, _, file_count, logical = build_trees(scan, digests)
        if root_id == start_head.tree_id:
            if all(cache.is_settled(scanned.stat) for scanned in scan.files):
                cache.record_snapshot(root, fingerprint, root_id)
            return PushResult(
                dataset_name, branch_name, start_head, False, file_count, logical, reused_bytes=logical
            )

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
    if parent_live and reused_files:
        assert start_head is not None
        reused_files -= {item.entry.digest for item in walk_tree(start_head.tree_id) if item.entry.is_file}

    if progress is not None:
        progress.start(len(to_read), sum(scanned.stat.st_size for scanned in to_read))
    backend = get_backend()
    ingest = Ingest(backend, DatabaseChunkIndex(), pack_size=settings.STRATA_PACK_SIZE, progress=progress)
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
    # Every pack is in the store now, whether or not the commit below wins its race.
    store_transferred("push", sum(pack.size for pack in report.packs))

    root_id, trees, file_count, logical = build_trees(scan, digests)
    reused = logical - report.new_raw_bytes
    if start_head is not None and root_id == start_head.tree_id:
        version, made = start_head, False
    else:
        # Imported here: reading tables needs pyarrow, which an unchanged push,
        # answered above, should not pay for at start-up.
        from catalog.domain.tabular import SCHEMA_SAMPLE_BYTES, needs_whole_file, read_schema
        from catalog.selectors.changes import commit_bump

        abspaths = {scanned.relpath: scanned.abspath for scanned in scan.files}

        def new_schema(relpath: str) -> dict[str, str]:
            with open(abspaths[relpath], "rb") as handle:
                data = handle.read() if needs_whole_file(relpath) else handle.read(SCHEMA_SAMPLE_BYTES + 1)
            return read_schema(relpath, data)

        bump, bump_reasons = commit_bump(start_head, root_id, trees, new_schema)
        version = version_commit(
            user=user,
            dataset=dataset,
            dataset_name=dataset_name,
            branch_name=branch_name,
            start_head=start_head,
            root_id=root_id,
            trees=trees,
            records=records,
            report_packs=report.packs,
            author=author,
            message=message,
            stage=stage,
            explicit_semver=explicit_semver,
            file_count=file_count,
            logical=logical,
            new_bytes=report.new_raw_bytes,
            stored_bytes=report.new_bytes,
            bump=bump,
            bump_reasons=bump_reasons,
            semver_override=semver_override,
            created=created,
            relied_on=[
                *report.reused_chunks,
                *(chunk_id for chunk_ids in file_chunks(reused_files).values() for chunk_id in chunk_ids),
            ],
            relies_on_version=start_head if parent_live else None,
        )
        made = True
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
        reused_bytes=reused,
        packs=len(report.packs),
    )


def check_commit_date(created: datetime, parent: Version | None) -> None:
    """A back-dated commit keeps history in order: not in the future, not before
    the version it follows."""
    if timezone.is_naive(created):
        raise UserError("give the commit date with its time zone, e.g. 2026-05-01T09:00:00+00:00.")
    if created > timezone.now():
        raise UserError(f"the commit date {created.isoformat()} is in the future.")
    if parent is not None and created < parent.created:
        raise UserError(
            f"the commit date {created.isoformat()} is before the branch head's "
            f"({parent.created.isoformat()}): history must stay in order."
        )


def _next_semver(dataset: Dataset, parent: Version | None, bump: str = "minor") -> tuple[int, int, int]:
    """The next free version number after `parent` for a change of kind `bump`.

    Numbers are unique per dataset, so a bump skips past what other branches took.
    """
    if parent is None:
        return (1, 0, 0)
    versions = Version.objects.filter(dataset=dataset)
    if bump == "major":
        top = versions.aggregate(top=Max("semver_major"))["top"] or 0
        return (top + 1, 0, 0)
    if bump == "patch":
        top = versions.filter(semver_major=parent.semver_major, semver_minor=parent.semver_minor).aggregate(
            top=Max("semver_patch")
        )["top"]
        return (parent.semver_major, parent.semver_minor, (top or 0) + 1)
    top = versions.filter(semver_major=parent.semver_major).aggregate(top=Max("semver_minor"))["top"]
    return (parent.semver_major, (top or 0) + 1, 0)


def _check_explicit_semver(
    dataset: Dataset,
    start_head: Version | None,
    numbers: tuple[int, int, int],
    *,
    bump: str | None = None,
    reasons: Sequence[str] = (),
    override: str | None = None,
) -> None:
    """An explicit version must be new, newer than the head, and — unless
    overridden with a reason — not understate the change (`bump`)."""
    semver = ".".join(map(str, numbers))
    if start_head is not None and numbers <= (
        start_head.semver_major,
        start_head.semver_minor,
        start_head.semver_patch,
    ):
        raise UserError(f"version {semver} is not newer than the branch head's {start_head.semver}.")
    if Version.objects.filter(dataset=dataset, semver=semver).exists():
        raise UserError(f"{dataset.name} already has a version {semver}; choose another.")
    if bump is None or start_head is None or override:
        return
    head = (start_head.semver_major, start_head.semver_minor)
    understated = (bump == "major" and numbers[0] == head[0]) or (bump == "minor" and numbers[:2] == head)
    if understated:
        suggested = ".".join(map(str, _next_semver(dataset, start_head, bump)))
        why = f" ({reasons[0]})" if reasons else ""
        raise UserError(
            f"version {semver} understates a {bump} change from {start_head.semver}{why}: use {suggested},"
            " or pass --allow-semver-override with the reason."
        )


def version_id_for(fields: dict[str, object]) -> str:
    """A version's id: the hash of everything that defines it."""
    return digest_hex(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())


def _check_still_indexed(chunk_ids: Sequence[str], dataset_name: str) -> None:
    found = 0
    for batch in batched(chunk_ids, 5000):
        found += Chunk.objects.filter(id__in=batch).count()
    if found != len(chunk_ids):
        raise ConflictError(
            f"garbage collection removed {len(chunk_ids) - found} of the stored chunks this push to"
            f" {dataset_name} reuses while it ran; nothing was committed: push again to store them anew."
        )


def version_commit(
    *,
    user: permissions.User,
    dataset: Dataset | None,
    dataset_name: str,
    branch_name: str,
    start_head: Version | None,
    root_id: str,
    trees: dict[str, tuple[bytes, int]],
    records: dict[str, FileRecord],
    report_packs: list,
    author: str,
    message: str,
    stage: str | None,
    explicit_semver: tuple[int, int, int] | None,
    file_count: int,
    logical: int,
    new_bytes: int,
    stored_bytes: int,
    bump: str = "minor",
    bump_reasons: Sequence[str] = (),
    semver_override: str | None = None,
    card_id: str | None = None,
    created: datetime | None = None,
    relied_on: Iterable[str] = (),
    relies_on_version: Version | None = None,
) -> Version:
    """Register the stored data, then create the version and move the branch by
    compare-and-swap from the head seen when the push began.

    `relied_on` names the chunks the new version reaches that this push found
    already stored rather than wrote (deduplicated, or files it did not read
    again); they are checked to be still indexed as the version is created.
    `relies_on_version` is a version whose files the commit takes as stored
    without checking them (the branch head a push builds on, a split's source): it
    must not have expired meanwhile.

    `bump` (major, minor, patch: see `catalog.selectors.changes.commit_bump`) chooses the next
    semantic version; an explicit one that understates it is refused unless
    `semver_override` gives the reason, which the audit event records.

    The one way a version comes to exist, whether its files were pushed from a local
    folder or listed by a remote client whose packs are already registered (it then
    passes no packs). Every pack named here must already be stored, and every chunk
    a record or tree names must be in the index: callers check that first.

    The new version carries its parent's dataset card forward unless `card_id`
    names another (a card edit, ``cards.services.cards``). `created` dates it in
    the past (checked by the caller with ``check_commit_date``); the rows it
    writes are still stamped with the real time.
    """
    if dataset is None:
        permissions.require_role(user, permissions.STEWARD, "create datasets")
    else:
        permissions.require_write(user, dataset)
    now = timezone.now()
    # In UTC, as the database gives it back, so the id can be recomputed from the row.
    committed = created.astimezone(UTC) if created is not None else now
    # First transaction: the stored data. These rows are content-addressed and name
    # only packs already written, so they are safe on their own, and a push refused
    # below (a conflict) leaves its data registered: pushing again uploads nothing.
    with transaction.atomic():
        Pack.objects.bulk_create(
            [Pack(id=p.pack_id, size=p.size, chunk_count=len(p.entries), created=now) for p in report_packs],
            ignore_conflicts=True,
        )
        for pack in report_packs:
            chunks_register(pack.pack_id, pack.entries)
        FileManifest.objects.bulk_create(
            [
                FileManifest(
                    digest=record.digest,
                    size=record.size,
                    chunk_ids=b"".join(bytes.fromhex(c) for c in record.chunk_ids),
                )
                for record in records.values()
                if len(record.chunk_ids) > 1
            ],
            ignore_conflicts=True,
            batch_size=500,
        )
        manifest_chunks_add(records.values())
        Tree.objects.bulk_create(
            [tree_row(data, count) for data, count in trees.values()], ignore_conflicts=True, batch_size=500
        )

    # Second transaction: the version, and the branch moved by compare-and-swap.
    # Chunks this commit relies on but did not write must still be indexed, under
    # the lock garbage collection takes to delete (catalog.services.collection).
    relied = list(dict.fromkeys(relied_on))
    with reusing() if relied or relies_on_version else contextlib.nullcontext():
        if relied:
            _check_still_indexed(relied, dataset_name)
        if (
            relies_on_version is not None
            and Version.objects.filter(pk=relies_on_version.pk, expired__isnull=False).exists()
        ):
            raise ConflictError(
                f"{relies_on_version} expired under the retention policy while this push ran;"
                " nothing was committed: push again."
            )
        try:
            with transaction.atomic():
                if dataset is None:
                    dataset = Dataset.objects.create(
                        name=dataset_name, default_branch=branch_name, created=now, updated=now
                    )
                    if user is not None:
                        dataset.owners.add(user)
                    AuditEvent.objects.create(
                        user=user,
                        actor=author,
                        action="dataset.create",
                        dataset=dataset,
                        object_type="dataset",
                        object_id=dataset.name,
                        after={"name": dataset.name},
                    )
                if explicit_semver is not None:
                    # Checked before any work too; again here, against concurrent pushes,
                    # and now against the kind of change as well.
                    _check_explicit_semver(
                        dataset,
                        start_head,
                        explicit_semver,
                        bump=bump,
                        reasons=bump_reasons,
                        override=semver_override,
                    )
                    numbers = explicit_semver
                else:
                    numbers = _next_semver(dataset, start_head, bump)
                semver = ".".join(map(str, numbers))
                final_stage = stage or (start_head.stage if start_head else Stage.RAW)
                parents = [start_head.id] if start_head else []
                final_card = card_id or (start_head.card_id if start_head else None)
                id_fields: dict[str, object] = {
                    "dataset": dataset_name,
                    "tree": root_id,
                    "parents": parents,
                    "author": author,
                    "message": message,
                    "created": committed.isoformat(),
                    "semver": semver,
                    "stage": final_stage,
                }
                if final_card:
                    # Only when there is a card, so versions without one keep their ids.
                    id_fields["card"] = final_card
                version_id = version_id_for(id_fields)
                version = Version.objects.create(
                    id=version_id,
                    dataset=dataset,
                    parent=start_head,
                    tree_id=root_id,
                    author=author,
                    message=message,
                    created=committed,
                    semver=semver,
                    semver_major=numbers[0],
                    semver_minor=numbers[1],
                    semver_patch=numbers[2],
                    stage=final_stage,
                    file_count=file_count,
                    logical_bytes=logical,
                    new_bytes=new_bytes,
                    stored_bytes=stored_bytes,
                    card_id=final_card,
                )
                if start_head is None:
                    if Branch.objects.filter(dataset=dataset, name=branch_name).exists():
                        raise ConflictError(
                            f"branch {branch_name} of {dataset_name} was created by another push"
                            " meanwhile; your data is stored, push again."
                        )
                    Branch.objects.create(
                        dataset=dataset, name=branch_name, head=version, created=now, updated=now
                    )
                else:
                    # Compare-and-swap: move the head only if it is still where it was when
                    # this push began, so a concurrent commit is never silently replaced.
                    moved = Branch.objects.filter(
                        dataset=dataset, name=branch_name, head_id=start_head.id
                    ).update(head=version, updated=now)
                    if moved != 1:
                        raise ConflictError(
                            f"branch {branch_name} of {dataset_name} moved while you were pushing;"
                            " your data is stored, push again to commit on top of the new head."
                        )
                Dataset.objects.filter(pk=dataset.pk).update(updated=now)
                # What the dataset now holds: possession for later remote pushes.
                dataset_files_add(
                    dataset_id=dataset.pk,
                    root_id=root_id,
                    parent_root_id=start_head.tree_id if start_head else None,
                )
                AuditEvent.objects.create(
                    user=user,
                    actor=author,
                    action="version.create",
                    dataset=dataset,
                    object_type="version",
                    object_id=version.id,
                    before={"branch": branch_name, "head": start_head.id if start_head else None},
                    after={
                        "branch": branch_name,
                        "head": version.id,
                        "semver": semver,
                        "bump": bump,
                        "bump_reasons": list(bump_reasons)[:20],
                        **({"semver_override": semver_override} if semver_override else {}),
                    },
                )
        except IntegrityError as error:
            raise ConflictError(
                f"another push to {dataset_name} committed at the same moment ({error}); push again."
            ) from None
    return version


def version_touch(*, version: Version, now: datetime | None = None) -> None:
    """Note that a version was read, at most once an hour (a pull of a big version
    must not write a row per file, nor every pull one row)."""
    now = now or timezone.now()
    if version.last_accessed is None or now - version.last_accessed >= timedelta(hours=1):
        Version.objects.filter(pk=version.pk).filter(
            Q(last_accessed__isnull=True) | Q(last_accessed__lte=now - timedelta(hours=1))
        ).update(last_accessed=now)
        version.last_accessed = now
