"""Endpoints of the push and pull protocol for remote clients (``strata_client``).

The protocol is described in ``catalog.services.remote``. With an S3 store the web
process moves metadata only: packs go up and come down through presigned URLs. The
two ``/store/packs/`` endpoints exist for a local folder store, which has no other
way in or out; with S3 they refuse, so no pack byte can pass through here.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Query

from catalog.api import reads
from catalog.api.common import local_pack_url, readable_dataset, router, user_of, version_out
from catalog.api.datasets import ERRORS, IDEMPOTENCY, READ_ERRORS
from catalog.api.idempotency import run_idempotent
from catalog.api.schemas import (
    CommitIn,
    CommitOut,
    ErrorOut,
    ManifestOut,
    MissingIn,
    MissingOut,
    PackIn,
    PackRegisterIn,
    PackRegisterOut,
    PackTargetOut,
    RestoringOut,
    StageIn,
    StageOut,
    UploadIn,
    UploadOut,
    UploadStateOut,
    VerifyingOut,
)
from catalog.services import remote
from catalog.services.remote.verification import result_fields
from catalog.services.remote.verification import upload_state as upload_state_of

TAGS = ["push and pull"]


def _staged(entries) -> list[remote.StagedEntry]:
    return [
        remote.StagedEntry(
            path=entry.path,
            kind=entry.kind,
            size=entry.size,
            digest=entry.digest or "",
            chunks=tuple(entry.chunks),
            target=entry.target or "",
        )
        for entry in entries
    ]


@router.post("/datasets/{name}/uploads", response={201: UploadOut, **ERRORS}, tags=TAGS)
def open_upload(
    request: HttpRequest, name: str, payload: UploadIn, idempotency_key: str | None = IDEMPOTENCY
):
    """Start a push to a branch (stewards; a first push creates the dataset)."""

    def work():
        opened = remote.upload_open(user=user_of(request), dataset_name=name, branch=payload.branch)
        upload = opened.upload
        return 201, {
            "id": upload.id,
            "dataset": upload.dataset_name,
            "branch": upload.branch,
            "head": opened.head.id if opened.head else None,
            "expires": upload.expires,
            "pack_size": opened.pack_size,
            "store": opened.store,
            "max_request_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2**31,
        }

    return run_idempotent(request, UploadOut, work)


@router.post("/uploads/{upload_id}/missing", response={200: MissingOut, **ERRORS}, tags=TAGS)
def missing(request: HttpRequest, upload_id: str, payload: MissingIn):
    """Which of these chunks and file digests the store lacks; what it has is leased
    to the upload until it commits or expires."""
    chunks, files = remote.upload_missing(
        user=user_of(request), upload_id=upload_id, chunk_ids=payload.chunks, file_digests=payload.files
    )
    return {"chunks": chunks, "files": files}


@router.post("/uploads/{upload_id}/packs", response={200: PackTargetOut, **ERRORS}, tags=TAGS)
def pack_target(request: HttpRequest, upload_id: str, payload: PackIn):
    """Where to PUT a pack, with the headers to send (Content-MD5, If-None-Match)."""
    transfer = remote.upload_pack_target(
        user=user_of(request),
        upload_id=upload_id,
        pack_id=payload.pack_id,
        size=payload.size,
        md5=payload.md5,
        local_url=local_pack_url(request),
    )
    if transfer is None:
        return {"pack_id": payload.pack_id, "stored": True, "upload": None}
    return {
        "pack_id": payload.pack_id,
        "stored": False,
        "upload": {"url": transfer.url, "method": transfer.method, "headers": transfer.headers},
    }


@router.post(
    "/uploads/{upload_id}/packs/{pack_id}/register",
    response={200: PackRegisterOut, **ERRORS, 502: ErrorOut},
    tags=TAGS,
)
def pack_register(request: HttpRequest, upload_id: str, pack_id: str, payload: PackRegisterIn):
    """Register an uploaded pack: its index is read from the store and must list
    exactly the declared chunks."""
    count = remote.upload_pack_register(
        user=user_of(request),
        upload_id=upload_id,
        pack_id=pack_id,
        size=payload.size,
        chunk_ids=payload.chunks,
    )
    return {"pack_id": pack_id, "chunk_count": count}


@router.post("/uploads/{upload_id}/files", response={200: StageOut, **ERRORS}, tags=TAGS)
def stage(request: HttpRequest, upload_id: str, payload: StageIn):
    """Stage a part of the file list the commit will store."""
    manifests = [remote.StagedManifest(m.digest, m.size, tuple(m.chunks)) for m in payload.manifests]
    number = remote.upload_stage(
        user=user_of(request),
        upload_id=upload_id,
        entries=_staged(payload.entries),
        manifests=manifests,
        number=payload.part,
    )
    return {"part": number, "entries": len(payload.entries)}


@router.post(
    "/datasets/{name}/versions",
    response={200: CommitOut, 201: CommitOut, 202: VerifyingOut, **ERRORS},
    tags=["versions"],
)
def commit(request: HttpRequest, name: str, payload: CommitIn, idempotency_key: str | None = IDEMPOTENCY):
    """Commit the staged file list (and any `entries`) as a new version: 201 with
    the version, or 200 with the branch head when nothing changed.

    A commit naming bytes this upload sent answers 202: a worker verifies every
    chunk and every new file against its hash first; poll the upload
    (`GET /uploads/{id}`) for the version, or for the refusal."""
    parent = payload.parent if "parent" in payload.model_fields_set else remote.UNSET

    def work():
        result = remote.upload_commit(
            user=user_of(request),
            dataset_name=name,
            upload_id=payload.upload,
            entries=_staged(payload.entries),
            branch=payload.branch,
            parent=parent,
            message=payload.message,
            stage=payload.stage,
            semver=payload.semver,
            code=payload.code,
        )
        if isinstance(result, remote.Verifying):
            return 202, {
                "upload": result.upload_id,
                "dataset": result.dataset,
                "branch": result.branch,
                "state": "verifying",
                "poll": f"/api/v1/uploads/{result.upload_id}",
            }
        return (201 if result.created else 200), {
            **result_fields(result),
            "version": version_out(result.version),
        }

    return run_idempotent(request, {200: CommitOut, 201: CommitOut, 202: VerifyingOut}, work)


@router.get("/uploads/{upload_id}", response={200: UploadStateOut, **ERRORS, 502: ErrorOut}, tags=TAGS)
def upload_state(request: HttpRequest, upload_id: str):
    """Where a push stands: open, verifying, or committed with the commit's answer.
    A push the verification refused answers with that refusal (400, or 409 when
    the branch moved meanwhile)."""
    upload = upload_state_of(user=user_of(request), upload_id=upload_id)
    return {
        "id": upload.id,
        "dataset": upload.dataset_name,
        "branch": upload.branch,
        "state": upload.state,
        "commit": {**upload.result, "version": version_out(upload.committed)}
        if upload.result and upload.committed
        else None,
    }


@router.get(
    "/datasets/{name}/versions/{version}/manifest",
    response={200: ManifestOut, **READ_ERRORS, 502: ErrorOut, 503: RestoringOut},
    tags=TAGS,
)
def manifest(
    request: HttpRequest,
    name: str,
    version: str,
    cursor: str | None = Query(None, max_length=4200, description="`next` of the previous page"),
    limit: int = Query(10_000, ge=1, le=20_000),
):
    """What a client needs to pull a version, a page at a time: entries by path, the
    chunks of each file and, per span of a pack, a signed URL to fetch it from.

    A page whose packs are in cold storage starts their restore and answers 503
    with `restoring: true` and a Retry-After of when they should be readable."""
    dataset = readable_dataset(request, name)
    found = reads.version_in(dataset, version)
    page = reads.version_manifest(
        version=found, cursor=cursor, limit=limit, local_url=local_pack_url(request)
    )
    return {
        "version": version_out(found),
        "total": page.total,
        "entries": page.entries,
        "spans": page.spans,
        "next": page.next,
    }


# -- pack bytes, for a local folder store only ------------------------------------------------


@router.put("/store/packs/{pack_id}", auth=None, include_in_schema=False, url_name="store_pack", tags=TAGS)
def pack_put(request: HttpRequest, pack_id: str, token: str = Query(..., max_length=2000)):
    length = request.META.get("CONTENT_LENGTH")
    remote.pack_receive(
        token=token,
        pack_id=pack_id,
        body=request,
        content_length=int(length) if length and length.isdigit() else None,
    )
    return HttpResponse(status=201)


@router.get("/store/packs/{pack_id}", auth=None, include_in_schema=False, tags=TAGS)
def pack_get(request: HttpRequest, pack_id: str, token: str = Query(..., max_length=2000)):
    data = remote.pack_send(token=token, pack_id=pack_id)
    return HttpResponse(data, content_type="application/octet-stream")
