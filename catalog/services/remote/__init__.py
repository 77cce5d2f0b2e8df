"""Pushing and pulling for remote clients: the server's half of the transfer protocol.

A remote client (``strata_client``) chunks and packs files itself, with the same
``catalog.storage`` code a local push uses, so the server only ever handles metadata:

1. ``upload_open`` starts an ``Upload`` for a dataset and branch.
2. ``upload_missing``: the client sends the ids of its chunks (and the digests of
   files it knows from its stat cache); the answer is what the store lacks. Every
   pack holding something the client was told exists is leased to the upload, so
   garbage collection cannot take it away before the commit.
3. ``upload_pack_target``: for each pack of missing chunks, where to PUT it — a
   presigned S3 URL that signs the Content-MD5 (S3 refuses damaged bytes) and
   ``If-None-Match: *`` (packs are write-once), or, with a local folder store, a
   signed URL of this server's own pack endpoint.
4. ``upload_pack_register``: the server reads only the pack's index from the end of
   the stored object, checks it against the chunk ids the client declared, and
   registers the pack and its chunks. Data before metadata: nothing is registered
   that is not already stored.
5. ``upload_stage``: the client stages its file list in parts (any size of tree,
   small requests).
6. ``upload_commit``: the server checks that every chunk named is stored ("chunk …
   missing" otherwise, and nothing is created), refuses unsafe paths, builds the
   trees itself and commits through ``version_commit`` — the same compare-and-swap
   as a local push.

Pulling: the API's manifest (``catalog.api.reads``) lists a page of a version's entries with, for every
chunk, where its bytes are inside a *span* — an exact byte range of one pack that
holds only chunks this version needs — and a URL for each span (presigned S3 GET
with the Range signed, or this server's signed endpoint). The client verifies
every chunk by its hash and every file by its digest.

Trust: a pack is named by the hash of its index, so the server checks a pack that
went straight to S3 from its tail alone — the name against the index, the index
against the pack's layout and the chunk ids the client declared — without reading
the payload. Chunk payloads are verified by their hashes on every read (damage is
reported, never served) and by ``strata verify``.
"""

from __future__ import annotations

from .packs import (
    MAX_SPAN_BYTES,
    TRANSFER_URL_SECONDS,
    LocalUrl,
    Transfer,
    pack_receive,
    pack_send,
    span_transfer,
    upload_pack_register,
    upload_pack_target,
)
from .uploads import (
    KIND_CODES,
    KIND_NAMES,
    UNSET,
    CommitResult,
    OpenedUpload,
    StagedEntry,
    StagedManifest,
    check_entry_path,
    check_link_target,
    check_object_id,
    upload_commit,
    upload_get,
    upload_missing,
    upload_open,
    upload_stage,
)

__all__ = [
    "KIND_CODES",
    "KIND_NAMES",
    "MAX_SPAN_BYTES",
    "TRANSFER_URL_SECONDS",
    "UNSET",
    "CommitResult",
    "LocalUrl",
    "OpenedUpload",
    "StagedEntry",
    "StagedManifest",
    "Transfer",
    "check_entry_path",
    "check_link_target",
    "check_object_id",
    "pack_receive",
    "pack_send",
    "span_transfer",
    "upload_commit",
    "upload_get",
    "upload_missing",
    "upload_open",
    "upload_pack_register",
    "upload_pack_target",
    "upload_stage",
]
