"""Verifying a remote push before it becomes a version.

A client's commit that names bytes nobody has checked — packs its upload sent, or
new files of several chunks — leaves the upload "verifying" and queues
``catalog.tasks.upload_verify``. The worker, not the web process, reads those
bytes back from the store: every chunk payload is hashed against its id and every
new file against its digest (``strata_store.verification``), each byte read
once. Only then are the packs indexed (visible to deduplication and reads) and the
version committed, with the same checks and compare-and-swap as any commit.

A pack whose bytes fail is quarantined (moved aside in the store, kept for
inspection) and named in the audit log with the uploader; the upload is refused
with one sentence, and nothing it sent is indexed. The state lives on the upload
row: running the task twice, or after a worker died, ends as running it once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.errors import ConflictError, IntegrityFailure, NotFound, StrataError, UserError
from catalog.models import AuditEvent, Dataset, Pack, PendingPack, Upload
from catalog.services.collection import reusing
from catalog.services.commits import check_still_indexed
from catalog.services.remote.uploads import (
    CommitAsk,
    CommitResult,
    Prepared,
    _lease,
    commit_finish,
    upload_prepare,
)
from catalog.store import DatabaseChunkIndex, chunks_register, get_backend
from strata_store import packs as packformat
from strata_store.errors import CorruptObject, StoreError
from strata_store.packs import ChunkLocation
from strata_store.verification import FileClaim, FileMismatch, verify_claims

logger = logging.getLogger(__name__)

# A verification not finished this long after it started is taken as lost (a
# worker killed, a message dropped) and queued again by the resume task.
STALLED_AFTER = timedelta(minutes=10)

_KINDS: dict[str, type[StrataError]] = {
    "user": UserError,
    "conflict": ConflictError,
    "integrity": IntegrityFailure,
}


def result_fields(result: CommitResult) -> dict[str, object]:
    """What a finished commit reports besides its version (kept on the upload)."""
    return {
        "dataset": result.dataset,
        "branch": result.branch,
        "created": result.created,
        "file_count": result.file_count,
        "logical_bytes": result.logical_bytes,
        "new_bytes": result.new_bytes,
        "stored_bytes": result.stored_bytes,
    }


def upload_state(*, user, upload_id: str) -> Upload:
    """The upload `upload_id` of `user`, in any state, for a client polling its
    commit; a refused one raises its refusal, as the commit would have."""
    upload = Upload.objects.filter(id=upload_id).first() if user is not None else None
    if upload is None or upload.user_id != user.pk:
        raise NotFound(f"there is no upload {upload_id[:40]}.")
    if upload.state == Upload.State.FAILED:
        raise _KINDS.get(upload.error_kind, UserError)(upload.error)
    return upload


def _claims(prepared: Prepared) -> tuple[list[FileClaim], list[ChunkLocation]]:
    """What to read: each claimed file's chunks in order, then every chunk the
    upload sent that no claimed file covers."""
    sent = prepared.sent
    wanted = {c for record in prepared.plan.claims.values() for c in record.chunk_ids if c not in sent}
    indexed = DatabaseChunkIndex().locate(list(wanted))
    files = []
    covered: set[str] = set()
    for record in prepared.plan.claims.values():
        locations = [sent[c].location if c in sent else indexed[c] for c in record.chunk_ids]
        covered.update(record.chunk_ids)
        files.append(FileClaim(record.digest, record.size, locations))
    rest = [chunk.location for chunk_id, chunk in sent.items() if chunk_id not in covered]
    return files, rest


def _fail(upload: Upload, error: StrataError) -> str:
    kind = "conflict" if isinstance(error, ConflictError) else "user"
    if isinstance(error, IntegrityFailure):
        kind = "integrity"
    Upload.objects.filter(pk=upload.pk, state=Upload.State.VERIFYING).update(
        state=Upload.State.FAILED, error=str(error), error_kind=kind
    )
    # Its packs are nobody's: another upload of the same names sends its own.
    upload.pending_packs.all().delete()
    logger.info("upload %s refused: %s", upload.pk, error)
    return Upload.State.FAILED


def _audit_forgery(upload: Upload, *, object_type: str, object_id: str, detail: str, where: str = "") -> None:
    AuditEvent.objects.create(
        user=upload.user,
        actor=upload.user.get_username(),
        action="upload.refused",
        dataset=Dataset.objects.filter(name=upload.dataset_name).first(),
        object_type=object_type,
        object_id=object_id,
        before={"upload": upload.pk, "uploader": upload.user.get_username()},
        after={"reason": detail, **({"quarantined_as": where} if where else {})},
    )


def _quarantine(upload: Upload, error: CorruptObject, prepared: Prepared) -> StrataError:
    """Move the pack holding a forged chunk aside and say so in the audit log."""
    chunk = prepared.sent.get(error.name)
    if chunk is None:
        # A chunk the store indexed long ago failed: damage, not a forgery.
        return IntegrityFailure(f"stored {error}; nothing was committed.")
    storage_id = chunk.location.pack_id
    pending = upload.pending_packs.filter(storage_id=storage_id).first()
    pack_id = pending.pack_id if pending else storage_id
    where = ""
    # A pack the store has indexed under this name is someone else's verified
    # pack: never move it (the forged copy sits at this upload's proof key).
    if not Pack.objects.filter(id=storage_id).exists():
        try:
            where = get_backend().quarantine_pack(storage_id)
        except StoreError as move_error:
            logger.warning("could not quarantine pack %s: %s", storage_id, move_error)
    _audit_forgery(upload, object_type="pack", object_id=pack_id, detail=str(error), where=where)
    return UserError(
        f"pack {pack_id} holds bytes that do not hash to chunk {error.name}; "
        "it was quarantined and nothing was committed."
    )


def _register_sent(upload: Upload) -> list[str]:
    """Index the verified packs; returns the proof objects left to delete.

    A pack already indexed under its name keeps its rows: the proof object only
    proved possession. A proof object of a name nobody indexed (unverified bytes
    a client left there) is moved to that name, replacing them, and indexed.
    """
    now = timezone.now()
    backend = get_backend()
    proofs: list[str] = []
    for pending in upload.pending_packs.exclude(index=None):
        if pending.storage_id != pending.pack_id:
            if Pack.objects.filter(id=pending.pack_id).exists():
                proofs.append(pending.storage_id)
                continue
            backend.promote_pack(pending.storage_id, pending.pack_id)
            PendingPack.objects.filter(pk=pending.pk).update(storage_id=pending.pack_id)
        index = pending.index
        assert index is not None  # excluded by the query above
        entries = packformat.parse_index(pending.pack_id, bytes(index))
        Pack.objects.bulk_create(
            [Pack(id=pending.pack_id, size=pending.size, chunk_count=len(entries), created=now)],
            ignore_conflicts=True,
        )
        chunks_register(pending.pack_id, entries)
        _lease(upload, [pending.pack_id], uploaded=True)
    return proofs


def _drop_proofs(upload_id: str, storage_ids: list[str]) -> None:
    backend = get_backend()
    for storage_id in storage_ids:
        try:
            backend.delete_pack(storage_id)
        except StoreError as error:  # left for `strata verify` to list
            logger.warning("upload %s: could not delete proof object %s: %s", upload_id, storage_id, error)


def upload_verify(*, upload_id: str) -> str:
    """Verify a committed upload's bytes, then commit it; returns the upload's state.

    Transient store errors propagate (the task retries); every other outcome is
    recorded on the upload row."""
    upload = Upload.objects.select_related("user").filter(id=upload_id).first()
    if upload is None or upload.state != Upload.State.VERIFYING:
        return upload.state if upload else "missing"
    Upload.objects.filter(pk=upload.pk).update(verify_started=timezone.now())
    ask = CommitAsk.from_json(upload.commit_request or {})
    user = upload.user
    try:
        prepared = upload_prepare(
            user=user, dataset_name=upload.dataset_name, upload=upload, entries=(), branch=None, ask=ask
        )
    except (UserError, ConflictError) as error:
        return _fail(upload, error)
    files, chunks = _claims(prepared)
    backend = get_backend()
    try:
        read = verify_claims(backend, files, chunks)
    except FileMismatch as error:
        _audit_forgery(upload, object_type="file", object_id=error.name, detail=str(error))
        path = next((p for p, e in prepared.files.items() if e.digest == error.name), error.name)
        return _fail(
            upload,
            UserError(f"{path}: its chunks do not make the file its digest names; nothing was committed."),
        )
    except CorruptObject as error:
        return _fail(upload, _quarantine(upload, error, prepared))
    logger.info(
        "upload %s: verified %s bytes in %s files and %s chunks", upload_id, read, len(files), len(chunks)
    )
    proofs: list[str] = []
    try:
        # Data before metadata: the verified packs are indexed first, in their own
        # transaction, so a commit refused below (a moved branch) leaves them
        # stored and indexed.
        with transaction.atomic():
            locked = (
                Upload.objects.select_for_update().filter(pk=upload.pk, state=Upload.State.VERIFYING).first()
            )
            if locked is None:
                return Upload.objects.get(pk=upload.pk).state
            proofs = _register_sent(locked)
        with reusing(), transaction.atomic():
            locked = (
                Upload.objects.select_for_update().filter(pk=upload.pk, state=Upload.State.VERIFYING).first()
            )
            if locked is None:
                return Upload.objects.get(pk=upload.pk).state
            # The list was checked before the bytes were read; under the locks,
            # only what may have changed meanwhile: access, and the branch's head.
            prepared.upload = locked
            prepared.request = prepared.ask.prepare(user, upload.dataset_name, prepared.request.branch_name)
            # Chunks it names but did not send were indexed when the list was
            # checked; garbage collection could have run since (it cannot now).
            reused = {
                c
                for record in prepared.plan.records.values()
                for c in record.chunk_ids
                if c not in prepared.sent
            }
            check_still_indexed(sorted(reused), upload.dataset_name)
            result = commit_finish(prepared)
            Upload.objects.filter(pk=upload.pk).update(result=result_fields(result))
    except (UserError, ConflictError) as error:
        _drop_proofs(upload_id, proofs)
        return _fail(upload, error)
    _drop_proofs(upload_id, proofs)
    return Upload.State.COMMITTED


def resume_stalled() -> list[str]:
    """Uploads left verifying by a worker that died or a message that was lost."""
    cutoff = timezone.now() - STALLED_AFTER
    stalled = Upload.objects.filter(state=Upload.State.VERIFYING).filter(
        Q(verify_started__isnull=True) | Q(verify_started__lt=cutoff)
    )
    return list(stalled.values_list("pk", flat=True))
