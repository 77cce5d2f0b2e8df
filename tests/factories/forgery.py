"""A hostile client, done by hand over the real API: packs and file lists built
byte by byte, so that a test can claim what an honest client never would."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from catalog.store import get_backend
from strata_store import packs
from strata_store.chunker import chunk_bytes
from strata_store.hashing import digest_hex


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def chunked(data: bytes) -> list[tuple[str, bytes]]:
    """The chunks a push cuts `data` into, with their ids."""
    return [(digest_hex(piece), piece) for piece in chunk_bytes(data)]


def pack_of(pieces: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A pack holding `pieces` as (claimed id, stored bytes), stored raw: the id
    need not be the hash of the bytes, which is the forgery."""
    writer = packs.PackWriter(get_backend().spool_dir())
    for chunk_id, data in pieces:
        writer.add_encoded(chunk_id, len(data), data, packs.CODEC_RAW)
    finished = writer.finish()
    assert finished is not None
    with open(finished.path, "rb") as handle:
        data = handle.read()
    return finished.pack_id, data


def put(api, transfer: dict, data: bytes) -> int:
    """PUT pack bytes where the server said: S3 directly, or its own endpoint."""
    url = transfer["url"]
    if url.startswith("http://testserver"):
        parsed = urllib.parse.urlsplit(url)
        response = api.client.put(
            f"{parsed.path}?{parsed.query}",
            data=data,
            content_type="application/octet-stream",
            headers=transfer["headers"],
        )
        return response.status_code
    request = urllib.request.Request(url, data=data, method="PUT", headers=transfer["headers"])
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@dataclass
class Push:
    """One upload of a dataset, step by step."""

    api: object
    dataset: str
    upload_id: str = ""
    entries: list[dict] = field(default_factory=list)

    def open(self) -> Push:
        answer = self.api.post(f"/datasets/{self.dataset}/uploads", {})
        assert answer.status_code == 201, answer.json()
        self.upload_id = answer.json()["id"]
        return self

    def missing(self, chunks=(), files=()) -> dict:
        answer = self.api.post(
            f"/uploads/{self.upload_id}/missing", {"chunks": list(chunks), "files": list(files)}
        )
        assert answer.status_code == 200, answer.json()
        return answer.json()

    def send_pack(self, pieces: list[tuple[str, bytes]], *, register: bool = True) -> str:
        pack_id, data = pack_of(pieces)
        target = self.api.post(
            f"/uploads/{self.upload_id}/packs", {"pack_id": pack_id, "size": len(data), "md5": md5_of(data)}
        )
        assert target.status_code == 200, target.json()
        if target.json()["upload"] is not None:
            assert put(self.api, target.json()["upload"], data) in (200, 201, 412)
        if register:
            answer = self.api.post(
                f"/uploads/{self.upload_id}/packs/{pack_id}/register",
                {"size": len(data), "chunks": [chunk_id for chunk_id, _ in pieces]},
            )
            assert answer.status_code == 200, answer.json()
        return pack_id

    def file(self, path: str, digest: str, size: int, chunk_ids: list[str]) -> Push:
        entry = {"path": path, "kind": "file", "size": size, "digest": digest}
        if len(chunk_ids) > 1:
            entry["chunks"] = chunk_ids
        self.entries.append(entry)
        return self

    def honest(self, path: str, data: bytes, *, send: bool = True) -> Push:
        """Stage a real file, sending its chunks (all of them, or none)."""
        pieces = chunked(data)
        if send and pieces:
            self.send_pack(pieces)
        return self.file(path, digest_hex(data), len(data), [chunk_id for chunk_id, _ in pieces])

    def commit(self, **fields):
        staged = self.api.post(f"/uploads/{self.upload_id}/files", {"part": 1, "entries": self.entries})
        assert staged.status_code == 200, staged.json()
        return self.api.post(f"/datasets/{self.dataset}/versions", {"upload": self.upload_id, **fields})
