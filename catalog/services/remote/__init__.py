"""Pushing and pulling for remote clients: the server's half of the transfer protocol.

A remote client (``strata_client``) chunks and packs files itself, with the same
``strata_store`` code a local push uses, so the server only ever handles metadata:

1. ``upload_open`` starts an ``Upload`` for a dataset and branch.
2. ``upload_missing``: the client sends the ids of its chunks (and the digests of
   files it knows from its stat cache); the answer is what it must send: anything
   not stored, or stored only where the user cannot read
   (``catalog.services.possession``). Every pack holding what it was told is
   present is leased to the upload, so garbage collection cannot take it away
   before the commit.
3. ``upload_pack_target``: for each pack of missing chunks, where to PUT it — a
   presigned S3 URL that signs the Content-MD5 (S3 refuses damaged bytes) and
   ``If-None-Match: *`` (packs are write-once), or, with a local folder store, a
   signed URL of this server's own pack endpoint. A pack whose name the store
   already holds goes to a proof object of the upload's own.
4. ``upload_pack_register``: the server reads only the pack's index from the end of
   the stored object and checks it against the chunk ids the client declared. The
   pack is then *pending* on the upload: none of its chunks is in the shared index.
5. ``upload_stage``: the client stages its file list in parts (any size of tree,
   small requests).
6. ``upload_commit``: the server checks the list (paths, links, possession of
   every file and chunk named, sizes) and, if it names bytes nobody has verified,
   marks the upload "verifying" and answers 202. A worker
   (``verification.upload_verify``) re-hashes every pending chunk and every new
   file, indexes the packs, builds the trees and commits through
   ``version_commit`` — the same compare-and-swap as a local push. The client
   polls the upload for the version or the refusal.

Pulling: the API's manifest (``catalog.api.reads``) lists a page of a version's entries with, for every
chunk, where its bytes are inside a *span* — an exact byte range of one pack that
holds only chunks this version needs — and a URL for each span (presigned S3 GET
with the Range signed, or this server's signed endpoint). The client verifies
every chunk by its hash and every file by its digest.

Trust: nothing a client claims is believed unchecked (docs/security.md, "What the
remote push protocol verifies"). The web process checks names, indexes, paths and
possession; pack payloads are read only by the worker. Chunks are verified again
on every read (damage is reported, never served) and by ``strata verify``.
"""

from __future__ import annotations

from catalog.services.remote.packs import (
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
from catalog.services.remote.uploads import (
    KIND_CODES,
    KIND_NAMES,
    UNSET,
    CommitResult,
    OpenedUpload,
    StagedEntry,
    StagedManifest,
    Verifying,
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
    "Verifying",
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
