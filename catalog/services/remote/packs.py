"""Remote pushes and pulls: moving pack bytes. Where a client PUTs a pack and GETs a
span (presigned S3 URLs, or this server's signed endpoint for a local folder
store), receiving and sending those bytes for a local store, and registering an
uploaded pack from its index alone."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from django.core import signing
from django.db import transaction
from django.utils import timezone

from catalog import permissions
from catalog.errors import IntegrityFailure, NotFound, UserError
from catalog.hooks import store_transferred
from catalog.models import Pack, PendingPack, Upload
from catalog.services.remote.uploads import _touch, check_object_id, store_kind, upload_get
from catalog.store import get_backend
from strata_store import chunker, packs
from strata_store.backends import Backend, pack_key
from strata_store.backends.s3 import S3Backend
from strata_store.errors import CorruptObject, MissingObject, StoreError
from strata_store.hashing import digest_hex


class Readable(Protocol):
    """A stream of bytes: an open file, or the body of an HTTP request."""

    def read(self, size: int | None = ..., /) -> bytes: ...


# Signed transfer URLs (S3 or this server's) are good for this long.
TRANSFER_URL_SECONDS = 3600
# PackWriter seals packs at 32 MiB by default; a client may choose larger ones,
# but one object stays well under S3's 5 GB single-PUT limit.
MAX_PACK_SIZE = 1024**3
# One span is one ranged GET: large enough for few requests, small enough that a
# client holding a few of them in memory stays flat.
MAX_SPAN_BYTES = 16 * 1024 * 1024


_SIGNING_SALT = "strata.pack-transfer"


# -- uploading packs ---------------------------------------------------------------


def _check_md5(md5: str) -> None:
    try:
        raw = base64.b64decode(md5, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise UserError("md5 must be the base64 of the pack's 16-byte MD5 digest.")


@dataclass(slots=True)
class Transfer:
    """Where a client sends or fetches bytes: a URL and the headers it must send."""

    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)


# `local_url(pack_id, token)` builds the URL of this server's pack endpoint; the API
# layer passes it, since only it knows the host the client reached.
LocalUrl = Callable[[str, str], str]

_presign_clients: dict[str, object] = {}
_presign_lock = threading.Lock()


def _presign_client():
    """A boto3 client that signs with SigV4, so signed headers (Content-MD5,
    If-None-Match, Range) are part of the signature and must be sent as signed."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    with _presign_lock:
        client = _presign_clients.get(endpoint)
        if client is None:
            client = boto3.client("s3", config=Config(signature_version="s3v4"))
            _presign_clients[endpoint] = client
    return client


def _s3_key(backend: S3Backend, pack_id: str) -> str:
    key = pack_key(pack_id)
    return f"{backend.prefix}/{key}" if backend.prefix else key


def proof_id(upload_id: str, pack_id: str) -> str:
    """Where an upload stores a pack whose name the store already holds: a key of
    its own, known only to the upload (whose id is a secret), so the bytes the
    worker verifies are the bytes this client sent."""
    return digest_hex(f"strata-proof:{upload_id}:{pack_id}".encode())


def upload_pack_target(
    *, user: permissions.User, upload_id: str, pack_id: str, size: int, md5: str, local_url: LocalUrl
) -> Transfer | None:
    """Where the client should PUT pack `pack_id`; None if this upload already sent
    and registered it (a retry).

    A pack the store already has under that name is not taken as sent: knowing a
    pack's name (the hash of its index) is not having its bytes. The client sends
    it again, to a proof object of this upload, and is charged for it.
    """
    check_object_id(pack_id, "pack id")
    _check_md5(md5)
    if not packs.footer_size() + len(packs.MAGIC) <= size <= MAX_PACK_SIZE:
        raise UserError(
            f"a pack must be between {len(packs.MAGIC) + packs.footer_size()} and {MAX_PACK_SIZE} bytes."
        )
    upload = upload_get(user=user, upload_id=upload_id)
    backend = get_backend()
    pending = PendingPack.objects.filter(upload=upload, pack_id=pack_id).first()
    if pending is not None and pending.index is not None:
        return None
    if pending is None or pending.size != size:
        taken = (
            Pack.objects.filter(id=pack_id).exists()
            # Another upload in flight sending the same pack: its bytes are not ours.
            or PendingPack.objects.filter(pack_id=pack_id, upload__expires__gt=timezone.now())
            .exclude(upload=upload)
            .exists()
            or backend.pack_size(pack_id) is not None
        )
        storage_id = proof_id(upload.id, pack_id) if taken else pack_id
        with transaction.atomic():
            PendingPack.objects.filter(upload=upload, pack_id=pack_id).delete()
            pending = PendingPack.objects.create(
                upload=upload, pack_id=pack_id, storage_id=storage_id, size=size
            )
            _touch(upload)
    headers = {"Content-MD5": md5}
    if isinstance(backend, S3Backend):
        headers["If-None-Match"] = "*"
        url = _presign_client().generate_presigned_url(
            "put_object",
            Params={
                "Bucket": backend.bucket,
                "Key": _s3_key(backend, pending.storage_id),
                "ContentMD5": md5,
                "IfNoneMatch": "*",
            },
            ExpiresIn=TRANSFER_URL_SECONDS,
        )
        return Transfer(url, "PUT", headers)
    token = signing.dumps(
        {"op": "put", "u": upload.id, "p": pack_id, "k": pending.storage_id, "s": size, "m": md5},
        salt=_SIGNING_SALT,
    )
    return Transfer(local_url(pack_id, token), "PUT", headers)


def _read_token(token: str, pack_id: str, op: str) -> dict:
    try:
        claims = signing.loads(token, salt=_SIGNING_SALT, max_age=TRANSFER_URL_SECONDS)
    except signing.SignatureExpired:
        raise UserError("this transfer URL has expired; ask the API for a new one.") from None
    except signing.BadSignature:
        raise NotFound("there is no such transfer URL.") from None
    if not isinstance(claims, dict) or claims.get("op") != op or claims.get("p") != pack_id:
        raise NotFound("there is no such transfer URL.")
    return claims


def pack_receive(*, token: str, pack_id: str, body: Readable, content_length: int | None) -> None:
    """Store a pack sent to this server's endpoint (local folder stores only).

    The URL's signature names the upload, the pack, its size and MD5; the bytes are
    spooled to disk, checked against all three and against the pack's name (the hash
    of its index), and only then published (write-once) by the backend.
    """
    backend = get_backend()
    if store_kind(backend) != "local":
        raise NotFound("packs go straight to S3 on this server; ask the API for an upload URL.")
    claims = _read_token(token, pack_id, "put")
    upload = Upload.objects.filter(id=claims["u"], committed__isnull=True, expires__gt=timezone.now()).first()
    if upload is None:
        raise UserError("the upload this pack belongs to is over; start the push again.")
    size = int(claims["s"])
    if content_length is not None and content_length != size:
        raise UserError(f"pack {pack_id} is {size} bytes, but {content_length} were sent.")
    md5 = hashlib.md5()
    received = 0
    spool = tempfile.NamedTemporaryFile(  # noqa: SIM115 (handed to put_pack, which consumes it)
        dir=backend.spool_dir(), prefix="recv-", suffix=".tmp", delete=False
    )
    try:
        with spool:
            while received < size:
                block = body.read(min(1 << 20, size - received))
                if not block:
                    break
                received += len(block)
                md5.update(block)
                spool.write(block)
            spool.flush()
            os.fsync(spool.fileno())
        if received != size or body.read(1):
            raise UserError(f"pack {pack_id} is {size} bytes, but a different amount arrived.")
        if base64.b64encode(md5.digest()).decode() != claims["m"]:
            raise UserError(f"pack {pack_id} does not match its Content-MD5: it was damaged on the way.")
        try:
            _check_name(pack_id, _tail_of_file(pack_id, spool.name, size))
        except CorruptObject as error:
            raise UserError(f"pack {pack_id} is not a valid pack ({error}); it was not stored.") from None
        backend.put_pack(str(claims.get("k") or pack_id), spool.name)
    finally:
        if os.path.exists(spool.name):
            os.unlink(spool.name)


def pack_send(*, token: str, pack_id: str) -> bytes:
    """The bytes of one span of a pack (local folder stores only), as signed in the
    URL the manifest gave: exactly the chunks a reader of that version needs.

    Not counted as pulled here: the manifest that handed out the span was."""
    backend = get_backend()
    if store_kind(backend) != "local":
        raise NotFound("packs come straight from S3 on this server; ask the API for the manifest.")
    claims = _read_token(token, pack_id, "get")
    try:
        return backend.read_range(pack_id, int(claims["o"]), int(claims["n"]))
    except MissingObject:
        raise IntegrityFailure(f"pack {pack_id} is missing from the store.") from None


def upload_pack_register(
    *, user: permissions.User, upload_id: str, pack_id: str, size: int, chunk_ids: Sequence[str]
) -> int:
    """Record a pack the client has stored, reading only its index; returns its
    chunk count.

    The object must exist with the declared size, start with the pack magic, and
    end with an index that lists exactly `chunk_ids`, in order, laid end to end from
    the header to the index, each no larger than the chunker makes. Its chunks stay
    out of the shared index — no one can deduplicate against them, read them or
    name them in a version — until a worker has verified every payload at the
    commit (``catalog.services.remote.verification``).
    """
    check_object_id(pack_id, "pack id")
    for chunk_id in chunk_ids:
        check_object_id(chunk_id)
    upload = upload_get(user=user, upload_id=upload_id)
    pending = PendingPack.objects.filter(upload=upload, pack_id=pack_id).first()
    if pending is None:
        raise UserError(f"pack {pack_id} was not uploaded; ask where to upload it, then register it.")
    if pending.index is not None:
        return len(packs.parse_index(pack_id, bytes(pending.index)))
    backend = get_backend()
    stored_size = backend.pack_size(pending.storage_id)
    if stored_size is None:
        raise UserError(f"pack {pack_id} was not uploaded; upload it before registering it.")
    if stored_size != size:
        raise UserError(f"pack {pack_id} is {stored_size} bytes in the store, not {size}.")
    try:
        entries, tail = _read_index(backend, pack_id, size, storage_id=pending.storage_id)
    except CorruptObject as error:
        raise UserError(f"pack {pack_id} is not a valid pack ({error}); it was not registered.") from None
    except StoreError as error:
        raise IntegrityFailure(f"cannot read pack {pack_id}: {error}") from None
    if [entry.chunk_id for entry in entries] != list(chunk_ids):
        raise UserError(f"pack {pack_id} does not hold the chunks declared for it; it was not registered.")
    with transaction.atomic():
        PendingPack.objects.filter(pk=pending.pk).update(index=tail, size=size)
        _touch(upload)
    # The bytes went from the client to the store (a presigned PUT, or pack_receive
    # for a local folder); this is where the server learns they arrived, so it is
    # where they are counted, once, whichever way they came.
    store_transferred("push", size)
    return len(entries)


def _tail_of_file(pack_id: str, path: str, size: int) -> bytes:
    """The index and footer of a pack spooled at `path`."""
    footer = packs.footer_size()
    if size < len(packs.MAGIC) + footer:
        raise CorruptObject("pack", pack_id, "too short")
    with open(path, "rb") as handle:
        handle.seek(size - footer)
        count, _ = packs.read_footer(pack_id, handle.read())
        length = min(size, count * packs.index_entry_size() + footer)
        handle.seek(size - length)
        return handle.read()


def _check_name(pack_id: str, tail: bytes) -> None:
    """A pack is named by the hash of its index and footer; the index names every
    chunk by the hash of its content, so a matching name pins every byte."""
    if packs.pack_id_of(tail) != pack_id:
        raise CorruptObject("pack", pack_id, "its index does not match its name")


def _read_index(
    backend: Backend, pack_id: str, size: int, *, storage_id: str
) -> tuple[list[packs.IndexEntry], bytes]:
    """A pack's index entries and its index bytes, read from the head and tail of
    the object `storage_id` only, and checked: the name against the index, and the
    index against the pack's layout."""
    footer = packs.footer_size()
    if size < len(packs.MAGIC) + footer:
        raise CorruptObject("pack", pack_id, "too short")
    count, index_offset = packs.read_footer(pack_id, backend.read_tail(storage_id, footer))
    index_bytes = count * packs.index_entry_size()
    if index_offset < len(packs.MAGIC) or index_offset + index_bytes + footer != size:
        raise CorruptObject("pack", pack_id, "its footer does not match its size")
    if backend.read_range(storage_id, 0, len(packs.MAGIC)) != packs.MAGIC:
        raise CorruptObject("pack", pack_id, "bad header")
    tail = backend.read_tail(storage_id, index_bytes + footer)
    _check_name(pack_id, tail)
    entries = packs.parse_index(pack_id, tail)
    position = len(packs.MAGIC)
    seen: set[str] = set()
    for entry in entries:
        if (
            entry.offset != position
            or entry.stored_length <= 0
            or not 0 < entry.raw_length <= chunker.MAX_SIZE
            or entry.codec not in (packs.CODEC_RAW, packs.CODEC_ZSTD)
            or (entry.codec == packs.CODEC_RAW and entry.stored_length != entry.raw_length)
            or entry.chunk_id in seen
        ):
            raise CorruptObject("pack", pack_id, f"bad index entry for chunk {entry.chunk_id}")
        seen.add(entry.chunk_id)
        position += entry.stored_length
    if position != index_offset:
        raise CorruptObject("pack", pack_id, "its chunks do not fill it")
    return entries, tail


# -- pulling ------------------------------------------------------------------------


def span_transfer(pack_id: str, offset: int, length: int, local_url: LocalUrl) -> Transfer:
    """Where a reader fetches exactly `length` bytes of a pack from `offset`: a
    presigned S3 GET with its Range signed, or this server's signed endpoint."""
    backend = get_backend()
    byte_range = f"bytes={offset}-{offset + length - 1}"
    if isinstance(backend, S3Backend):
        url = _presign_client().generate_presigned_url(
            "get_object",
            Params={"Bucket": backend.bucket, "Key": _s3_key(backend, pack_id), "Range": byte_range},
            ExpiresIn=TRANSFER_URL_SECONDS,
        )
        return Transfer(url, "GET", {"Range": byte_range})
    token = signing.dumps({"op": "get", "p": pack_id, "o": offset, "n": length}, salt=_SIGNING_SALT)
    return Transfer(local_url(pack_id, token), "GET", {"Range": byte_range})
