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
from catalog.domain.tabular import TableError
from catalog.errors import NotFound, UserError
from catalog.models import (
    Chunk,
    FileManifest,
    Stage,
    Upload,
    UploadLease,
    UploadPart,
    Version,
)
from catalog.selectors.changes import commit_bump, stored_schema
from catalog.services.collection import reusing
from catalog.services.commits import (
    UNSET,
    CommitContent,
    CommitRequest,
    branch_head,
    commit_prepare,
    dataset_writable,
    version_commit,
)
from catalog.services.jobs import job_enqueue
from catalog.services.possession import readable_chunks, readable_files
from catalog.services.validation import check_dataset_name, check_ref_name, parse_code_ref, parse_semver
from catalog.services.versions import build_trees_from
from catalog.store import batched, file_chunks, get_backend
from strata_store import packs as packformat
from strata_store import paths
from strata_store import tree as treeformat
from strata_store.backends import Backend
from strata_store.backends.s3 import S3Backend
from strata_store.errors import StoreError
from strata_store.hashing import EMPTY_DIGEST
from strata_store.packs import ChunkLocation
from strata_store.store import FileRecord

# An upload lives this long after its last call; its leases hold until then.
UPLOAD_LIFETIME = timedelta(hours=24)
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
    (``strata_store.paths``): relative, '/'-separated, safe names only."""
    try:
        paths.check_path(path)
    except paths.UnsafePath as error:
        raise UserError(str(error)) from None


def check_link_target(path: str, target: str) -> None:
    """A link must point inside the pushed folder, relatively (as a local push stores
    it). Where it really leads, through the other links, is judged at the commit,
    with the whole list (``paths.check_links`` in `_tree_inputs`)."""
    try:
        paths.check_link_target(path, target)
        paths.resolve_link(path, {path: target})
    except paths.UnsafePath as error:
        raise UserError(str(error)) from None


# -- the upload session -------------------------------------------------------------


@dataclass(slots=True)
class OpenedUpload:
    upload: Upload
    head: Version | None
    pack_size: int
    store: str  # "s3" or "local"


def store_kind(backend: Backend) -> str:
    return "s3" if isinstance(backend, S3Backend) else "local"


def upload_open(*, user: permissions.User, dataset_name: str, branch: str | None = None) -> OpenedUpload:
    """Start a remote push to `branch` of `dataset_name` (its default branch if None).

    Needs the steward role and read access (or the steward role alone for a dataset
    the push will create). Nothing is stored yet.
    """
    from django.conf import settings

    if user is None or not user.is_authenticated:
        raise UserError("a remote push needs a signed-in user.")
    dataset = dataset_writable(user, dataset_name, remote=True)
    if branch is not None:
        check_ref_name(branch)
    branch_name = branch or (dataset.default_branch if dataset else "main")
    head = branch_head(dataset, branch_name, remote=True)
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
    """The open upload `upload_id` of `user`; another user's upload does not exist.

    An upload being verified, committed or refused takes no more packs or files."""
    query = Upload.objects.filter(id=upload_id)
    if lock:
        query = query.select_for_update()
    upload = query.first() if user is not None else None
    if upload is None or user is None or upload.user_id != user.pk:
        raise NotFound(f"there is no upload {upload_id[:40]}.")
    if upload.committed_id is not None:
        raise UserError(
            f"upload {upload.id} was already committed as version {upload.committed_id}; start a new push."
        )
    if upload.state == Upload.State.VERIFYING:
        raise UserError(f"upload {upload.id} is being verified; ask for its state, then start a new push.")
    if upload.state == Upload.State.FAILED:
        raise UserError(f"upload {upload.id} was refused ({upload.error}); start a new push.")
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
    """Which of `chunk_ids` and `file_digests` the client must send, in the order asked.

    Present means stored *and* held by a dataset the user may read
    (``catalog.services.possession``): content that exists only where the user
    cannot read is answered "missing" exactly as content that does not exist, so
    the answer reveals nothing, and the client proves possession by sending it.
    The packs holding what is present are leased to the upload, so they stay
    until it commits or expires.
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
        indexed: dict[str, str] = {}
        for batch in batched(list(dict.fromkeys(chunk_ids)), _LOOKUP_BATCH):
            indexed.update(Chunk.objects.filter(id__in=batch).values_list("id", "pack_id"))
        readable = readable_chunks(user, list(indexed))
        present_chunks = {chunk_id: pack_id for chunk_id, pack_id in indexed.items() if chunk_id in readable}
        wanted_files = [d for d in dict.fromkeys(file_digests) if d != EMPTY_DIGEST]
        readable_digests = readable_files(user, wanted_files)
        present_files: set[str] = set()
        file_pack_ids: set[str] = set()
        manifest_chunks: list[str] = []
        candidates = [d for d in wanted_files if d in readable_digests]
        for batch in batched(candidates, _LOOKUP_BATCH):
            for digest, raw in FileManifest.objects.filter(digest__in=batch).values_list(
                "digest", "chunk_ids"
            ):
                present_files.add(digest)
                raw = bytes(raw)
                manifest_chunks.extend(raw[i : i + 32].hex() for i in range(0, len(raw), 32))
        # A file with no manifest is present when its single chunk is.
        for batch in batched([d for d in candidates if d not in present_files], _LOOKUP_BATCH):
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


def _decode_part(data: bytes | memoryview) -> tuple[list[StagedEntry], list[StagedManifest]]:
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
    try:
        paths.check_links(links)  # where each link leads through the others, as a pull would
    except paths.UnsafePath as error:
        raise UserError(str(error)) from None
    return files, links, dirs


@dataclass(slots=True)
class SentChunk:
    """A chunk inside a pack this upload sent: where it is, before it is indexed."""

    location: ChunkLocation
    raw_length: int


def sent_chunks(upload: Upload) -> dict[str, SentChunk]:
    """The chunks of every pack the upload's client sent and registered, from the
    indexes read at registration (the payloads are checked by the verification)."""
    sent: dict[str, SentChunk] = {}
    for storage_id, index in upload.pending_packs.exclude(index=None).values_list("storage_id", "index"):
        assert index is not None  # excluded above
        for entry in packformat.parse_index(storage_id, bytes(index)):
            location = ChunkLocation(
                entry.chunk_id, storage_id, entry.offset, entry.stored_length, entry.raw_length, entry.codec
            )
            sent.setdefault(entry.chunk_id, SentChunk(location, entry.raw_length))
    return sent


@dataclass(slots=True)
class FilePlan:
    """What a commit's files need: manifests to write, and the files whose bytes
    must be hashed against their digests before any of it may be written."""

    records: dict[str, FileRecord]
    claims: dict[str, FileRecord]  # new multi-chunk files, not yet verified


def _file_records(
    user: permissions.User,
    files: dict[str, StagedEntry],
    staged_manifests: dict[str, tuple[int, list[str]]],
    sent: dict[str, SentChunk],
) -> FilePlan:
    """Check that the pusher possesses every file's content, and plan the manifests.

    A digest held by a dataset the user may read needs nothing more. Any other
    digest — new, or stored but only in datasets the user cannot read — must come
    with a chunk list whose every chunk this upload sent or the user may read, and
    whose sizes add up to the file's; a file of several chunks is then hashed by a
    worker before the commit (a "claim"). Content the user may not read is answered
    exactly like content that does not exist: "chunk … missing".
    """
    by_digest: dict[str, StagedEntry] = {}
    for entry in files.values():
        known = by_digest.setdefault(entry.digest, entry)
        if known.size != entry.size:
            raise UserError(f"{known.path} and {entry.path} have the same digest but different sizes.")
    wanted = [digest for digest in by_digest if digest != EMPTY_DIGEST]
    stored_sizes: dict[str, int] = {}
    for batch in batched(wanted, _LOOKUP_BATCH):
        stored_sizes.update(FileManifest.objects.filter(digest__in=batch).values_list("digest", "size"))
        rest = [digest for digest in batch if digest not in stored_sizes]
        stored_sizes.update(Chunk.objects.filter(id__in=rest).values_list("id", "raw_length"))
    readable = readable_files(user, [digest for digest in wanted if digest in stored_sizes])
    needed: dict[str, list[str]] = {}
    for digest, entry in by_digest.items():
        if digest == EMPTY_DIGEST:
            if entry.size != 0 or entry.chunks:
                raise UserError(f"{entry.path} has the digest of an empty file but a size or chunks.")
        elif digest in readable:
            if stored_sizes[digest] != entry.size:
                raise UserError(
                    f"{entry.path} is {entry.size} bytes, but its digest names a file of {stored_sizes[digest]}."
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
    lengths: dict[str, int] = {chunk_id: chunk.raw_length for chunk_id, chunk in sent.items()}
    others = list(dict.fromkeys(c for chunk_ids in needed.values() for c in chunk_ids if c not in lengths))
    indexed: dict[str, int] = {}
    for batch in batched(others, _LOOKUP_BATCH):
        indexed.update(Chunk.objects.filter(id__in=batch).values_list("id", "raw_length"))
    for chunk_id in readable_chunks(user, list(indexed)):
        lengths[chunk_id] = indexed[chunk_id]
    plan = FilePlan(records={}, claims={})
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
        record = FileRecord(digest=digest, size=entry.size, chunk_ids=chunk_ids)
        plan.records[digest] = record
        if len(chunk_ids) > 1:
            plan.claims[digest] = record
    return plan


@dataclass(slots=True)
class CommitAsk:
    """What the client asked of a commit, kept on the upload while it is verified."""

    parent: object = UNSET
    message: str = ""
    stage: str | None = None
    semver: str | None = None
    code: str = ""

    def as_json(self) -> dict[str, object]:
        parent = "unset" if self.parent is UNSET else self.parent
        return {
            "parent": parent,
            "message": self.message,
            "stage": self.stage,
            "semver": self.semver,
            "code": self.code,
        }

    def prepare(self, user: permissions.User, dataset_name: str, branch: str | None) -> CommitRequest:
        """The commit this asks for, checked against the catalog as it is now."""
        return commit_prepare(
            user=user,
            dataset_name=dataset_name,
            branch=branch,
            parent=self.parent,
            message=self.message,
            stage=self.stage,
            semver=self.semver,
            remote=True,
            code=self.code,
        )

    @classmethod
    def from_json(cls, data: dict) -> CommitAsk:
        parent = UNSET if data.get("parent") == "unset" else data.get("parent")
        return cls(
            parent, data.get("message", ""), data.get("stage"), data.get("semver"), data.get("code", "")
        )


@dataclass(slots=True)
class Verifying:
    """A commit accepted but waiting for a worker to verify the bytes it names."""

    upload_id: str
    dataset: str
    branch: str


@dataclass(slots=True)
class Prepared:
    """A commit checked and planned, not yet written."""

    request: CommitRequest
    upload: Upload | None
    ask: CommitAsk
    files: dict[str, StagedEntry]
    links: dict[str, str]
    dirs: set[str]
    plan: FilePlan
    sent: dict[str, SentChunk]

    @property
    def needs_verification(self) -> bool:
        return bool(self.plan.claims) or bool(self.sent)


def _staged_list(upload: Upload) -> tuple[list[StagedEntry], dict[str, tuple[int, list[str]]]]:
    staged: list[StagedEntry] = []
    manifests: dict[str, tuple[int, list[str]]] = {}
    for part in upload.parts.all():
        part_entries, part_manifests = _decode_part(part.data)
        staged.extend(part_entries)
        for manifest in part_manifests:
            size, chunk_ids = manifests.setdefault(manifest.digest, (manifest.size, []))
            if size != manifest.size:
                raise UserError(f"the chunk list of file {manifest.digest} was staged with two sizes.")
            chunk_ids.extend(manifest.chunks)
    return staged, manifests


def upload_prepare(
    *,
    user: permissions.User,
    dataset_name: str,
    upload: Upload | None,
    entries: Sequence[StagedEntry],
    branch: str | None,
    ask: CommitAsk,
) -> Prepared:
    """Every check of a remote commit, and its plan; writes nothing.

    Run by the web process for a commit that sent no bytes (so a bad list is
    refused at once), and by the worker before it reads the bytes the plan
    names; the worker then re-checks only access and the branch head, under the
    commit's locks.
    """
    staged_manifests: dict[str, tuple[int, list[str]]] = {}
    sent: dict[str, SentChunk] = {}
    if upload is not None:
        if upload.dataset_name != dataset_name:
            raise UserError(f"upload {upload.id} is for {upload.dataset_name}, not {dataset_name}.")
        if branch is not None and branch != upload.branch:
            raise UserError(f"upload {upload.id} is for branch {upload.branch}, not {branch}.")
        branch = upload.branch
        staged, staged_manifests = _staged_list(upload)
        entries = staged + list(entries)
        sent = sent_chunks(upload)
    request = ask.prepare(user, dataset_name, branch)
    files, links, dirs = _tree_inputs(entries)
    plan = _file_records(user, files, staged_manifests, sent)
    return Prepared(request, upload, ask, files, links, dirs, plan, sent)


def commit_finish(prepared: Prepared) -> CommitResult:
    """Build the trees and commit through ``version_commit``; mark the upload done.

    Runs inside the caller's transaction and garbage collection's shared lock."""
    request, upload = prepared.request, prepared.upload
    files, records = prepared.files, prepared.plan.records
    try:
        root_id, trees, file_count, logical = build_trees_from(
            files=[(path, KIND_CODES[e.kind], e.size, e.digest) for path, e in files.items()],
            links=prepared.links,
            dirs=prepared.dirs,
        )
    except treeformat.InvalidTree as error:
        raise UserError(f"the file list cannot be stored: {error}.") from None
    new_bytes = stored_bytes = 0
    if upload is not None:
        totals = Chunk.objects.filter(
            pack_id__in=upload.leases.filter(uploaded=True).values("pack_id")
        ).aggregate(raw=Sum("raw_length"), stored=Sum("stored_length"))
        new_bytes, stored_bytes = totals["raw"] or 0, totals["stored"] or 0
    start_head = request.start_head
    if start_head is not None and root_id == start_head.tree_id:
        version, created = start_head, False
        new_bytes = stored_bytes = 0
    else:
        request.bump, request.bump_reasons = _remote_bump(start_head, root_id, trees, files, records)
        request.content = CommitContent(
            root_id=root_id,
            file_count=file_count,
            logical=logical,
            trees=trees,
            records=records,
            new_bytes=new_bytes,
            stored_bytes=stored_bytes,
        )
        version = version_commit(request)
        created = True
    if upload is not None:
        # The version now reaches every pack it needs: the leases and staged list
        # have done their work.
        Upload.objects.filter(pk=upload.pk).update(committed=version, state=Upload.State.COMMITTED)
        upload.parts.all().delete()
        upload.leases.all().delete()
        upload.pending_packs.all().delete()
    return CommitResult(
        request.dataset_name,
        request.branch_name,
        version,
        created,
        file_count,
        logical,
        new_bytes,
        stored_bytes,
    )


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
    code: str = "",
) -> CommitResult | Verifying:
    """Commit a remote client's file list — the upload's staged parts plus `entries` —
    as a new version, or report the branch head unchanged if the tree is the same.

    `parent` is the head the client saw: the commit moves the branch only if it is
    still there (None: only if the branch has no head yet); left out, the current
    head. Every check happens before anything is written: a missing chunk, an unsafe
    path or a moved branch leaves no version, tree or manifest behind.

    When the commit names bytes nobody has verified yet — packs this upload sent,
    or new files of several chunks — nothing is written but the upload's state:
    it becomes "verifying", a worker hashes those bytes
    (``catalog.services.remote.verification.upload_verify``) and commits, and the
    answer is `Verifying`; the client polls the upload for the outcome.
    """
    check_dataset_name(dataset_name)
    if stage is not None and stage not in Stage.values:
        raise UserError(f"{stage!r} is not a stage: use one of {', '.join(Stage.values)}.")
    if semver:
        parse_semver(semver)
    parse_code_ref(code)
    if branch is not None:
        check_ref_name(branch)
    for entry in entries:
        _check_entry(entry)
    if user is None or not user.is_authenticated:
        raise UserError("a remote commit needs a signed-in user.")
    ask = CommitAsk(parent, message, stage, semver, code)
    # One transaction from the first check to the branch move: a refusal at any
    # point leaves no tree, manifest or version, and the upload stays open. It runs
    # under garbage collection's lock (shared): the upload's leases keep its packs
    # until they are deleted below, and a collection that starts after the commit
    # sees the version (catalog.services.collection).
    with reusing(), transaction.atomic():
        upload = upload_get(user=user, upload_id=upload_id, lock=True) if upload_id is not None else None
        if upload is not None and not entries and upload.pending_packs.exclude(index=None).exists():
            # Bytes were sent: a worker must verify them, and it checks the whole
            # list as it does. Here only what the client can fix at once (the
            # dataset, the branch and its head, the version number) is checked,
            # so the web process does not read the list twice.
            ask.prepare(user, dataset_name, upload.branch)
            return _hand_to_worker(upload, ask, dataset_name)
        prepared = upload_prepare(
            user=user, dataset_name=dataset_name, upload=upload, entries=entries, branch=branch, ask=ask
        )
        if prepared.needs_verification:
            if upload is None:
                raise UserError(
                    "this commit names new content: open an upload, send its packs and stage the file list."
                )
            if entries:
                raise UserError(
                    "a commit of an upload takes its files from the staged list: stage them first."
                )
            return _hand_to_worker(upload, ask, dataset_name)
        return commit_finish(prepared)


def _hand_to_worker(upload: Upload, ask: CommitAsk, dataset_name: str) -> Verifying:
    Upload.objects.filter(pk=upload.pk).update(
        state=Upload.State.VERIFYING, commit_request=ask.as_json(), verify_started=None
    )

    job_enqueue("catalog.tasks.upload_verify", upload.pk)
    return Verifying(upload.pk, dataset_name, upload.branch)


def _remote_bump(start_head, root_id, trees, files, records) -> tuple[str, list[str]]:
    """Classify a remote commit as a local push is (`catalog.selectors.changes.commit_bump`).

    The new tables' schemas are read from the store (their packs are registered by
    now), as little of them as it takes: a Parquet file's ends, a text table's first
    rows — not the tables themselves through the web process.
    """

    def new_schema(path: str) -> dict[str, str]:
        entry = files[path]
        digest = entry.digest
        chunk_ids = records[digest].chunk_ids if digest in records else file_chunks([digest])[digest]
        try:
            return stored_schema(path, chunk_ids, entry.size)
        except StoreError as error:
            raise TableError(f"cannot read {path}: {error}") from None

    return commit_bump(start_head, root_id, trees, new_schema)
