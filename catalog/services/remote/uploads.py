"""Remote pushes: the upload session, the chunk negotiation with its leases, the
staged file list and the commit. See ``catalog.services.remote`` for the protocol."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import zstandard
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from catalog import permissions
from catalog.models import (
    Branch,
    Chunk,
    Dataset,
    FileManifest,
    Stage,
    Upload,
    UploadLease,
    UploadPart,
    Version,
)
from catalog.storage import tree as treeformat
from catalog.storage.backends import Backend
from catalog.storage.hashing import EMPTY_DIGEST
from catalog.storage.store import FileRecord

from ..collection import reusing
from ..errors import NotFound, UserError
from ..store import batched, get_backend
from ..versions import (
    _check_explicit_semver,
    build_trees_from,
    check_dataset_name,
    check_ref_name,
    parse_semver,
    version_commit,
)

# An upload lives this long after its last call; its leases hold until then.
UPLOAD_LIFETIME = timedelta(hours=24)
MAX_PATH_LENGTH = 4096
# Ids looked up per query: a commit of 20,000 files is a handful of queries, well
# under SQLite's limit of 32,766 parameters.
_LOOKUP_BATCH = 5000

KIND_NAMES = {
    treeformat.FILE: "file",
    treeformat.EXECUTABLE: "executable",
    treeformat.LINK: "link",
    treeformat.TREE: "dir",
}
KIND_CODES = {name: code for code, name in KIND_NAMES.items()}

_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_decompressor_local = threading.local()


# -- small checks -----------------------------------------------------------------


def check_object_id(value: str, what: str = "chunk id") -> None:
    if not _HEX_RE.match(value):
        raise UserError(f"{value[:80]!r} is not a {what}: use 64 lowercase hex digits.")


def check_entry_path(path: str) -> None:
    """A path inside a version, by the rule every way into the store shares
    (``catalog.storage.paths``): relative, '/'-separated, safe names only."""
    from catalog.storage import paths

    try:
        paths.check_path(path)
    except paths.UnsafePath as error:
        raise UserError(str(error)) from None


def check_link_target(path: str, target: str) -> None:
    """A link must point inside the pushed folder, relatively (as a local push stores
    it). Where it really leads, through the other links, is judged at the commit,
    with the whole list (``paths.check_links`` in `_tree_inputs`)."""
    from catalog.storage import paths

    try:
        paths.check_link_target(path, target)
        paths.resolve_link(path, {path: target})
    except paths.UnsafePath as error:
        raise UserError(str(error)) from None


# -- the upload session -------------------------------------------------------------


def _writable_dataset(user: permissions.User, name: str) -> Dataset | None:
    """The dataset `user` may push to, or None when a steward's push will create it.

    Someone without the steward role gets NotFound for a name that does not exist,
    exactly as for a restricted dataset they cannot see, so answers never reveal
    which restricted names exist.
    """
    check_dataset_name(name)
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        if not permissions.has_role(user, permissions.STEWARD):
            raise NotFound(f"there is no dataset named {name!r}.")
        return None
    permissions.require_write(user, dataset)
    return dataset


def _branch_head(dataset: Dataset | None, branch: str) -> Version | None:
    """The head of `branch`, None for a dataset (or an empty one) that has no versions
    yet; an unknown branch of a dataset with versions is refused."""
    if dataset is None:
        return None
    row = Branch.objects.filter(dataset=dataset, name=branch).select_related("head").first()
    if row is not None:
        return row.head
    if not Branch.objects.filter(dataset=dataset).exists() and branch == dataset.default_branch:
        return None  # an empty dataset: its first commit creates the default branch
    raise UserError(
        f"dataset {dataset.name} has no branch {branch}; create it first "
        f"(POST /api/v1/datasets/{dataset.name}/branches)."
    )


@dataclass(slots=True)
class OpenedUpload:
    upload: Upload
    head: Version | None
    pack_size: int
    store: str  # "s3" or "local"


def store_kind(backend: Backend) -> str:
    from catalog.storage.backends.s3 import S3Backend

    return "s3" if isinstance(backend, S3Backend) else "local"


def upload_open(*, user: permissions.User, dataset_name: str, branch: str | None = None) -> OpenedUpload:
    """Start a remote push to `branch` of `dataset_name` (its default branch if None).

    Needs the steward role and read access (or the steward role alone for a dataset
    the push will create). Nothing is stored yet.
    """
    from django.conf import settings

    if user is None or not user.is_authenticated:
        raise UserError("a remote push needs a signed-in user.")
    dataset = _writable_dataset(user, dataset_name)
    if branch is not None:
        check_ref_name(branch)
    branch_name = branch or (dataset.default_branch if dataset else "main")
    head = _branch_head(dataset, branch_name)
    now = timezone.now()
    upload = Upload.objects.create(
        id=secrets.token_hex(16),
        user=user,
        dataset_name=dataset_name,
        branch=branch_name,
        created=now,
        expires=now + UPLOAD_LIFETIME,
    )
    return OpenedUpload(upload, head, settings.STRATA_PACK_SIZE, store_kind(get_backend()))


def upload_get(*, user: permissions.User, upload_id: str, lock: bool = False) -> Upload:
    """The open upload `upload_id` of `user`; another user's upload does not exist."""
    query = Upload.objects.filter(id=upload_id)
    if lock:
        query = query.select_for_update()
    upload = query.first() if user is not None else None
    if upload is None or upload.user_id != user.pk:
        raise NotFound(f"there is no upload {upload_id[:40]}.")
    if upload.committed_id is not None:
        raise UserError(
            f"upload {upload.id} was already committed as version {upload.committed_id}; start a new push."
        )
    if upload.expires <= timezone.now():
        raise UserError(f"upload {upload.id} expired; start the push again.")
    return upload


def _touch(upload: Upload) -> None:
    """Push the upload's expiry forward (at most every few minutes: it is a write)."""
    now = timezone.now()
    if upload.expires - now < UPLOAD_LIFETIME - timedelta(minutes=5):
        Upload.objects.filter(pk=upload.pk).update(expires=now + UPLOAD_LIFETIME)


def _lease(upload: Upload, pack_ids: Iterable[str], *, uploaded: bool = False) -> None:
    pack_ids = list(dict.fromkeys(pack_ids))
    UploadLease.objects.bulk_create(
        [UploadLease(upload=upload, pack_id=pack_id, uploaded=uploaded) for pack_id in pack_ids],
        ignore_conflicts=True,
        batch_size=500,
    )
    if uploaded and pack_ids:
        UploadLease.objects.filter(upload=upload, pack_id__in=pack_ids).update(uploaded=True)


def _pack_ids_of(chunk_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for batch in batched(list(chunk_ids), _LOOKUP_BATCH):
        found.update(Chunk.objects.filter(id__in=batch).values_list("pack_id", flat=True).distinct())
    return found


def upload_missing(
    *, user: permissions.User, upload_id: str, chunk_ids: Sequence[str], file_digests: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Which of `chunk_ids` and `file_digests` the store lacks, in the order asked.

    The packs holding everything the store has are leased to the upload, so the
    packs the client was told about stay until it commits or the upload expires.
    """
    for chunk_id in chunk_ids:
        check_object_id(chunk_id)
    for digest in file_digests:
        check_object_id(digest, "file digest")
    upload = upload_get(user=user, upload_id=upload_id)
    # Reading and leasing happen in one transaction, so a pack cannot be collected
    # between being found and being leased; when nothing is found (a push of new
    # data) there is nothing to lease and no write at all.
    with transaction.atomic():
        present_chunks: dict[str, str] = {}
        for batch in batched(list(dict.fromkeys(chunk_ids)), _LOOKUP_BATCH):
            present_chunks.update(Chunk.objects.filter(id__in=batch).values_list("id", "pack_id"))
        wanted_files = [d for d in dict.fromkeys(file_digests) if d != EMPTY_DIGEST]
        present_files: set[str] = set()
        file_pack_ids: set[str] = set()
        manifest_chunks: list[str] = []
        for batch in batched(wanted_files, _LOOKUP_BATCH):
            for digest, raw in FileManifest.objects.filter(digest__in=batch).values_list(
                "digest", "chunk_ids"
            ):
                present_files.add(digest)
                raw = bytes(raw)
                manifest_chunks.extend(raw[i : i + 32].hex() for i in range(0, len(raw), 32))
        # A file with no manifest is present when its single chunk is.
        for batch in batched([d for d in wanted_files if d not in present_files], _LOOKUP_BATCH):
            for chunk_id, pack_id in Chunk.objects.filter(id__in=batch).values_list("id", "pack_id"):
                present_files.add(chunk_id)
                file_pack_ids.add(pack_id)
        if manifest_chunks:
            file_pack_ids |= _pack_ids_of(manifest_chunks)
        leased = set(present_chunks.values()) | file_pack_ids
        if leased:
            _lease(upload, leased)
        _touch(upload)
    missing_chunks = [c for c in dict.fromkeys(chunk_ids) if c not in present_chunks]
    missing_files = [d for d in dict.fromkeys(file_digests) if d != EMPTY_DIGEST and d not in present_files]
    return missing_chunks, missing_files


# -- staging the file list and committing ---------------------------------------------


@dataclass(frozen=True, slots=True)
class StagedEntry:
    """One entry of a remote client's file list."""

    path: str
    kind: str  # file, executable, link, dir
    size: int = 0
    digest: str = ""
    chunks: tuple[str, ...] = ()
    target: str = ""


def _check_entry(entry: StagedEntry) -> None:
    check_entry_path(entry.path)
    if entry.kind not in KIND_CODES:
        raise UserError(f"{entry.path}: {entry.kind!r} is not a kind; use file, executable, link or dir.")
    if entry.kind in ("file", "executable"):
        check_object_id(entry.digest, "file digest")
        if entry.size < 0:
            raise UserError(f"{entry.path}: a size cannot be negative.")
        for chunk_id in entry.chunks:
            check_object_id(chunk_id)
    elif entry.kind == "link":
        check_link_target(entry.path, entry.target)
    if entry.kind != "link" and entry.target:
        raise UserError(f"{entry.path}: only a link has a target.")
    if entry.kind in ("link", "dir") and (entry.digest or entry.chunks or entry.size):
        raise UserError(f"{entry.path}: a {entry.kind} has no digest, chunks or size.")


@dataclass(frozen=True, slots=True)
class StagedManifest:
    """A piece of the chunk list of a file too long to list in one entry; pieces of
    the same digest are joined in the order they were staged."""

    digest: str
    size: int
    chunks: tuple[str, ...]


def _check_manifest(manifest: StagedManifest) -> None:
    check_object_id(manifest.digest, "file digest")
    if manifest.size < 0:
        raise UserError(f"file {manifest.digest}: a size cannot be negative.")
    for chunk_id in manifest.chunks:
        check_object_id(chunk_id)


def _encode_part(entries: Sequence[StagedEntry], manifests: Sequence[StagedManifest]) -> bytes:
    payload = {
        "e": [[e.path, e.kind, e.size, e.digest, list(e.chunks), e.target] for e in entries],
        "m": [[m.digest, m.size, list(m.chunks)] for m in manifests],
    }
    return zstandard.ZstdCompressor(level=3).compress(json.dumps(payload, separators=(",", ":")).encode())


def _decode_part(data: bytes) -> tuple[list[StagedEntry], list[StagedManifest]]:
    decompressor = getattr(_decompressor_local, "value", None)
    if decompressor is None:
        decompressor = _decompressor_local.value = zstandard.ZstdDecompressor()
    payload = json.loads(decompressor.decompress(bytes(data)))
    entries = [
        StagedEntry(path, kind, size, digest, tuple(chunks), target)
        for path, kind, size, digest, chunks, target in payload["e"]
    ]
    manifests = [StagedManifest(digest, size, tuple(chunks)) for digest, size, chunks in payload["m"]]
    return entries, manifests


def upload_stage(
    *,
    user: permissions.User,
    upload_id: str,
    entries: Sequence[StagedEntry],
    manifests: Sequence[StagedManifest] = (),
    number: int | None = None,
) -> int:
    """Add a part of the file list to an upload; returns the part's number.

    A client that numbers its parts may resend one (a retry after a lost answer):
    the part is replaced, never added twice. Each entry is checked now (so a bad
    path is refused at once); the list as a whole — duplicates, and whether its
    chunks are stored — at the commit.
    """
    for entry in entries:
        _check_entry(entry)
    for manifest in manifests:
        _check_manifest(manifest)
    with transaction.atomic():
        upload = upload_get(user=user, upload_id=upload_id, lock=True)
        if number is None:
            number = (upload.parts.aggregate(top=Max("number"))["top"] or 0) + 1
        else:
            upload.parts.filter(number=number).delete()
        UploadPart.objects.create(
            upload=upload,
            number=number,
            entry_count=len(entries),
            data=_encode_part(entries, manifests),
        )
        _touch(upload)
    return number


# `parent` left out of a commit: commit on whatever the branch head is then.
UNSET = object()


@dataclass(slots=True)
class CommitResult:
    dataset: str
    branch: str
    version: Version
    created: bool
    file_count: int
    logical_bytes: int
    new_bytes: int = 0
    stored_bytes: int = 0


def _tree_inputs(entries: Sequence[StagedEntry]):
    """Files, links and folders of a file list, every folder implied by a path added,
    and the list refused if a path comes twice or is both a file and a folder."""
    files: dict[str, StagedEntry] = {}
    links: dict[str, str] = {}
    dirs: set[str] = {""}
    seen: set[str] = set()
    for entry in entries:
        if entry.path in seen:
            raise UserError(f"{entry.path} is listed twice.")
        seen.add(entry.path)
        if entry.kind == "dir":
            dirs.add(entry.path)
        elif entry.kind == "link":
            links[entry.path] = entry.target
        else:
            files[entry.path] = entry
    for path in list(seen):
        parent = path.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    for path in dirs:
        if path in files or path in links:
            raise UserError(f"{path} is both a file and a folder.")
    from catalog.storage import paths

    try:
        paths.check_links(links)  # where each link leads through the others, as a pull would
    except paths.UnsafePath as error:
        raise UserError(str(error)) from None
    return files, links, dirs


def _file_records(
    files: dict[str, StagedEntry], staged_manifests: dict[str, tuple[int, list[str]]]
) -> dict[str, FileRecord]:
    """Check that every file's content is stored, and return the manifests to make.

    A digest the catalog knows (a manifest, or a stored single chunk) needs nothing
    more; otherwise the entry's chunk list must name stored chunks whose sizes add up
    to the file's. Raises "chunk … missing" for the first chunk never uploaded.
    """
    by_digest: dict[str, StagedEntry] = {}
    for entry in files.values():
        known = by_digest.setdefault(entry.digest, entry)
        if known.size != entry.size:
            raise UserError(f"{known.path} and {entry.path} have the same digest but different sizes.")
    manifests: dict[str, int] = {}
    wanted = [digest for digest in by_digest if digest != EMPTY_DIGEST]
    for batch in batched(wanted, _LOOKUP_BATCH):
        manifests.update(FileManifest.objects.filter(digest__in=batch).values_list("digest", "size"))
    needed: dict[str, list[str]] = {}
    for digest, entry in by_digest.items():
        if digest == EMPTY_DIGEST:
            if entry.size != 0 or entry.chunks:
                raise UserError(f"{entry.path} has the digest of an empty file but a size or chunks.")
        elif digest in manifests:
            if manifests[digest] != entry.size:
                raise UserError(
                    f"{entry.path} is {entry.size} bytes, but its digest names a file of {manifests[digest]}."
                )
        elif digest in staged_manifests:
            size, chunk_ids = staged_manifests[digest]
            if size != entry.size:
                raise UserError(f"{entry.path} is {entry.size} bytes, but its staged chunk list says {size}.")
            needed[digest] = chunk_ids
        elif len(entry.chunks) > 1:
            needed[digest] = list(entry.chunks)
        else:
            if entry.chunks and entry.chunks[0] != digest:
                raise UserError(f"{entry.path}: a file of one chunk has that chunk's id as its digest.")
            needed[digest] = [digest]
    lengths: dict[str, int] = {}
    all_chunks = list(dict.fromkeys(c for chunk_ids in needed.values() for c in chunk_ids))
    for batch in batched(all_chunks, _LOOKUP_BATCH):
        lengths.update(Chunk.objects.filter(id__in=batch).values_list("id", "raw_length"))
    records: dict[str, FileRecord] = {}
    for digest, chunk_ids in needed.items():
        entry = by_digest[digest]
        for chunk_id in chunk_ids:
            if chunk_id not in lengths:
                raise UserError(
                    f"chunk {chunk_id} missing: {entry.path} names it but it was never uploaded; "
                    "upload it and commit again."
                )
        if sum(lengths[c] for c in chunk_ids) != entry.size:
            raise UserError(f"{entry.path} is {entry.size} bytes, but its chunks add up to a different size.")
        records[digest] = FileRecord(digest=digest, size=entry.size, chunk_ids=chunk_ids)
    return records


def upload_commit(
    *,
    user: permissions.User,
    dataset_name: str,
    upload_id: str | None = None,
    entries: Sequence[StagedEntry] = (),
    branch: str | None = None,
    parent: object = UNSET,
    message: str = "",
    stage: str | None = None,
    semver: str | None = None,
) -> CommitResult:
    """Commit a remote client's file list — the upload's staged parts plus `entries` —
    as a new version, or report the branch head unchanged if the tree is the same.

    `parent` is the head the client saw: the commit moves the branch only if it is
    still there (None: only if the branch has no head yet); left out, the current
    head. Every check happens before anything is written: a missing chunk, an unsafe
    path or a moved branch leaves no version, tree or manifest behind.
    """
    check_dataset_name(dataset_name)
    if stage is not None and stage not in Stage.values:
        raise UserError(f"{stage!r} is not a stage: use one of {', '.join(Stage.values)}.")
    explicit_semver = parse_semver(semver) if semver else None
    if branch is not None:
        check_ref_name(branch)
    for entry in entries:
        _check_entry(entry)
    if user is None or not user.is_authenticated:
        raise UserError("a remote commit needs a signed-in user.")
    # One transaction from the first check to the branch move: a refusal at any
    # point leaves no tree, manifest or version, and the upload stays open. It runs
    # under garbage collection's lock (shared): the upload's leases keep its packs
    # until they are deleted below, and a collection that starts after the commit
    # sees the version (catalog.services.collection).
    with reusing(), transaction.atomic():
        dataset = _writable_dataset(user, dataset_name)
        upload = None
        staged_manifests: dict[str, tuple[int, list[str]]] = {}
        if upload_id is not None:
            upload = upload_get(user=user, upload_id=upload_id, lock=True)
            if upload.dataset_name != dataset_name:
                raise UserError(f"upload {upload.id} is for {upload.dataset_name}, not {dataset_name}.")
            if branch is not None and branch != upload.branch:
                raise UserError(f"upload {upload.id} is for branch {upload.branch}, not {branch}.")
            branch = upload.branch
            staged: list[StagedEntry] = []
            for part in upload.parts.all():
                part_entries, part_manifests = _decode_part(part.data)
                staged.extend(part_entries)
                for manifest in part_manifests:
                    size, chunk_ids = staged_manifests.setdefault(manifest.digest, (manifest.size, []))
                    if size != manifest.size:
                        raise UserError(
                            f"the chunk list of file {manifest.digest} was staged with two sizes."
                        )
                    chunk_ids.extend(manifest.chunks)
            entries = staged + list(entries)
        branch_name = branch or (dataset.default_branch if dataset else "main")
        current = _branch_head(dataset, branch_name)
        if parent is UNSET:
            start_head = current
        elif parent is None:
            start_head = None
            if current is not None:
                raise _moved(dataset_name, branch_name)
        else:
            start_head = Version.objects.filter(id=parent, dataset=dataset).first() if dataset else None
            if start_head is None:
                raise UserError(f"{str(parent)[:80]} is not a version of {dataset_name}.")
            if current is None or current.id != start_head.id:
                raise _moved(dataset_name, branch_name)
        if explicit_semver is not None and dataset is not None:
            _check_explicit_semver(dataset, start_head, explicit_semver)

        files, links, dirs = _tree_inputs(entries)
        records = _file_records(files, staged_manifests)
        try:
            root_id, trees, file_count, logical = build_trees_from(
                files=[(path, KIND_CODES[e.kind], e.size, e.digest) for path, e in files.items()],
                links=links,
                dirs=dirs,
            )
        except treeformat.InvalidTree as error:
            raise UserError(f"the file list cannot be stored: {error}.") from None

        new_bytes = stored_bytes = 0
        if upload is not None:
            totals = Chunk.objects.filter(
                pack_id__in=upload.leases.filter(uploaded=True).values("pack_id")
            ).aggregate(raw=Sum("raw_length"), stored=Sum("stored_length"))
            new_bytes, stored_bytes = totals["raw"] or 0, totals["stored"] or 0

        if start_head is not None and root_id == start_head.tree_id:
            version, created = start_head, False
            new_bytes = stored_bytes = 0
        else:
            bump, bump_reasons = _remote_bump(start_head, root_id, trees, files, records)
            version = version_commit(
                user=user,
                dataset=dataset,
                dataset_name=dataset_name,
                branch_name=branch_name,
                start_head=start_head,
                root_id=root_id,
                trees=trees,
                records=records,
                report_packs=[],
                author=user.get_username(),
                message=message,
                stage=stage,
                explicit_semver=explicit_semver,
                file_count=file_count,
                logical=logical,
                new_bytes=new_bytes,
                stored_bytes=stored_bytes,
                bump=bump,
                bump_reasons=bump_reasons,
            )
            created = True
        if upload is not None:
            # The version now reaches every pack it needs: the leases and staged list
            # have done their work.
            Upload.objects.filter(pk=upload.pk).update(committed=version)
            upload.parts.all().delete()
            upload.leases.all().delete()
        return CommitResult(
            dataset_name, branch_name, version, created, file_count, logical, new_bytes, stored_bytes
        )


def _remote_bump(start_head, root_id, trees, files, records) -> tuple[str, list[str]]:
    """Classify a remote commit as a local push is (`catalog.changes.commit_bump`).

    The new tables' schemas are read from the store (their packs are registered by
    now), as little of them as it takes: a Parquet file's ends, a text table's first
    rows — not the tables themselves through the web process.
    """
    from catalog.changes import commit_bump, stored_schema
    from catalog.storage.errors import StoreError
    from catalog.tabular import TableError

    from ..store import file_chunks

    def new_schema(path: str) -> dict[str, str]:
        entry = files[path]
        digest = entry.digest
        chunk_ids = records[digest].chunk_ids if digest in records else file_chunks([digest])[digest]
        try:
            return stored_schema(path, chunk_ids, entry.size)
        except StoreError as error:
            raise TableError(f"cannot read {path}: {error}") from None

    return commit_bump(start_head, root_id, trees, new_schema)


def _moved(dataset_name: str, branch: str):
    from ..errors import ConflictError

    return ConflictError(
        f"branch {branch} of {dataset_name} moved since your push began; "
        "your data is stored, push again to commit on top of the new head."
    )
