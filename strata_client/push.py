"""The client's half of a push: chunk and pack with the store's own code, ask the
server what it lacks, send packs where it says, stage the file list, commit."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from strata_client import http
from strata_client.errors import ClientError, StrataClientError, TransferError
from strata_client.scan import Scan
from strata_store import chunker, packs
from strata_store.errors import StoreError
from strata_store.hashing import digest_hex
from strata_store.statcache import StatCache
from strata_store.store import FileChangedError, FileRecord, Ingest

# A file with more chunks than this sends its chunk list in separate pieces.
_INLINE_CHUNKS = 1000
_PIECE_CHUNKS = 15_000
# Digests asked about per request (each about 67 bytes of JSON).
_ASK_BATCH = 15_000


@dataclass(slots=True)
class PushResult:
    dataset: str
    branch: str
    version: str
    semver: str
    created: bool
    file_count: int
    logical_bytes: int
    new_bytes: int  # content bytes the store did not have before
    uploaded_packs: int  # packs this push sent to the store
    uploaded_bytes: int  # their size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the push protocol ----------------------------------------------------------------------


class _RemoteIndex:
    """The store's ChunkIndex, answered by the server for this upload.

    The store asks about a few hundred chunks at a time, which for small files
    would mean a request per few megabytes; their answers are asked for up front,
    in large batches (`learn`), and only other chunks cost a request here.
    """

    def __init__(self, session: PushSession) -> None:
        self.session = session
        self.known_missing: set[str] = set()
        self.known_present: set[str] = set()

    def learn(self, chunk_ids: list[str]) -> None:
        missing, _ = self.session.ask(chunks=chunk_ids)
        self.known_missing.update(missing)
        self.known_present.update(set(chunk_ids) - self.known_missing)

    def missing(self, chunk_ids):
        unknown = [c for c in chunk_ids if c not in self.known_missing and c not in self.known_present]
        if unknown:
            self.learn(unknown)
        return {c for c in chunk_ids if c in self.known_missing}

    def locate(self, chunk_ids):  # not needed to push
        raise NotImplementedError


class _RemoteBackend:
    """The store's Backend as a push sees it: packs are spooled locally, then sent
    to wherever the server says and registered with it."""

    url = "strata-api"

    def __init__(self, session: PushSession, spool: str) -> None:
        self.session = session
        self.spool = spool

    def spool_dir(self) -> str:
        return self.spool

    def put_pack(self, pack_id: str, path: str) -> None:
        try:
            self.session.send_pack(pack_id, path)
        finally:
            if os.path.exists(path):
                os.unlink(path)


def _small_file_chunks(files) -> list[str]:
    """The chunk ids of the files small enough to read whole, in one quick pass
    (they are read again from the page cache when packed)."""
    ids: dict[str, None] = {}
    for scanned in files:
        if scanned.stat.st_size > chunker.MAX_SIZE:
            continue
        try:
            with open(scanned.abspath, "rb") as handle:
                data = handle.read(chunker.MAX_SIZE + 1)
        except OSError:
            continue  # reported, with its path, when the file is packed
        for piece in chunker.chunk_bytes(data):
            ids[digest_hex(piece)] = None
    return list(ids)


def _pack_chunk_ids(pack_id: str, path: str) -> list[str]:
    """The chunk ids a sealed pack on disk lists in its index."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(size - packs.footer_size())
        count, _ = packs.read_footer(pack_id, handle.read())
        tail = count * packs.index_entry_size() + packs.footer_size()
        handle.seek(size - tail)
        return [entry.chunk_id for entry in packs.parse_index(pack_id, handle.read())]


class PushSession:
    def __init__(self, transport: http.Transport, upload: dict[str, Any], cache: StatCache, progress) -> None:
        self.transport = transport
        self.upload = upload
        self.cache = cache
        self.progress = progress
        self.uploaded_packs = 0
        self.uploaded_bytes = 0
        self.tree = ""
        self._lock = threading.Lock()
        # How long to wait for the server's worker to verify what was sent.
        self.verify_timeout = float(os.environ.get("STRATA_VERIFY_TIMEOUT", "1800"))
        # Requests stay well under what the server accepts in one body.
        self.request_budget = max(64 * 1024, min(int(upload["max_request_bytes"]), 8 << 20) * 3 // 4)

    @property
    def base(self) -> str:
        return f"/uploads/{self.upload['id']}"

    def ask(self, *, chunks: Sequence[str] = (), files: Sequence[str] = ()) -> tuple[list[str], list[str]]:
        missing_chunks: list[str] = []
        missing_files: list[str] = []
        chunks, files = list(chunks), list(files)
        while chunks or files:
            batch_chunks, chunks = chunks[:_ASK_BATCH], chunks[_ASK_BATCH:]
            batch_files, files = (
                files[: _ASK_BATCH - len(batch_chunks)],
                files[_ASK_BATCH - len(batch_chunks) :],
            )
            _, answer = self.transport.call(
                "POST",
                f"{self.base}/missing",
                body={"chunks": batch_chunks, "files": batch_files},
                retry=True,
            )
            missing_chunks += answer["chunks"]
            missing_files += answer["files"]
        return missing_chunks, missing_files

    def send_pack(self, pack_id: str, path: str) -> None:
        size = os.path.getsize(path)
        md5 = hashlib.md5()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                md5.update(block)
        chunk_ids = _pack_chunk_ids(pack_id, path)
        _, target = self.transport.call(
            "POST",
            f"{self.base}/packs",
            body={"pack_id": pack_id, "size": size, "md5": base64.b64encode(md5.digest()).decode()},
            retry=True,
        )
        if target["stored"]:
            return
        transfer = target["upload"]
        sent = http.put_file(transfer["url"], path, size, transfer["headers"])
        self.transport.call(
            "POST",
            f"{self.base}/packs/{pack_id}/register",
            body={"size": size, "chunks": chunk_ids},
            retry=True,
        )
        if sent:
            with self._lock:
                self.uploaded_packs += 1
                self.uploaded_bytes += size

    def run(
        self,
        scanned: Scan,
        dataset: str,
        *,
        message: str,
        stage: str | None,
        semver: str | None,
        code: str = "",
    ) -> PushResult:
        files = scanned.files
        cached = self.cache.lookup(scanned.root, ((f.abspath, f.stat) for f in files))
        digests = {f.relpath: cached[f.abspath] for f in files if f.abspath in cached}
        if digests:
            _, lacking = self.ask(files=list(dict.fromkeys(digests.values())))
            lacking_set = set(lacking)
            digests = {relpath: digest for relpath, digest in digests.items() if digest not in lacking_set}
        to_read = [f for f in files if f.relpath not in digests]
        records = self._ingest(to_read)
        for f in to_read:
            digests[f.relpath] = records[f.relpath].digest
        self._stage(scanned, digests, records)
        body: dict[str, Any] = {
            "upload": self.upload["id"],
            "parent": self.upload["head"],
            "message": message,
        }
        if stage:
            body["stage"] = stage
        if semver:
            body["semver"] = semver
        if code:
            body["code"] = code
        status, result = self.transport.call(
            "POST",
            f"/datasets/{dataset}/versions",
            body=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            retry=True,
        )
        if status == 202:
            result = self._wait_for_verification()
        by_relpath = {f.relpath: f for f in to_read}
        self.cache.record(
            (by_relpath[r].abspath, by_relpath[r].stat, rec.digest) for r, rec in records.items()
        )
        version = result["version"]
        self.tree = version["tree"]
        return PushResult(
            dataset=result["dataset"],
            branch=result["branch"],
            version=version["id"],
            semver=version["semver"],
            created=result["created"],
            file_count=result["file_count"],
            logical_bytes=result["logical_bytes"],
            new_bytes=result["new_bytes"],
            uploaded_packs=self.uploaded_packs,
            uploaded_bytes=self.uploaded_bytes,
        )

    def _wait_for_verification(self) -> dict[str, Any]:
        """The server verifies every byte this push sent before it commits (a
        worker hashes each chunk and each new file): wait for its answer. A
        refusal comes back as the error it is (a forged or damaged pack, a branch
        that moved meanwhile)."""
        delay = 0.05
        deadline = time.monotonic() + self.verify_timeout
        while True:
            _, state = self.transport.call("GET", self.base, retry=True)
            if state["state"] == "committed" and state.get("commit"):
                return state["commit"]
            if time.monotonic() > deadline:
                raise TransferError(
                    f"the server has not finished verifying upload {self.upload['id']} after "
                    f"{self.verify_timeout:.0f} s; is a Strata worker running?"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _ingest(self, to_read) -> dict[str, FileRecord]:
        records: dict[str, FileRecord] = {}
        if not to_read:
            return records
        progress = self.progress
        if progress is not None:
            progress.start(len(to_read), sum(f.stat.st_size for f in to_read))
        spool = tempfile.mkdtemp(prefix="strata-push-")
        index = _RemoteIndex(self)
        index.learn(_small_file_chunks(to_read))
        ingest = Ingest(
            _RemoteBackend(self, spool),
            index,
            pack_size=int(self.upload["pack_size"]),
            progress=progress,
        )
        try:
            for scanned in to_read:
                try:
                    records[scanned.relpath] = ingest.add_file(scanned.abspath, scanned.stat.st_size)
                except PermissionError:
                    raise ClientError(f"cannot read {scanned.abspath}: permission denied.") from None
                except FileNotFoundError:
                    raise ClientError(f"{scanned.abspath} disappeared while it was being pushed.") from None
                except FileChangedError as error:
                    raise ClientError(f"{error}.") from None
            ingest.finish()
        except StoreError as error:
            ingest.abort()
            cause = error.__cause__
            if isinstance(cause, StrataClientError):
                raise cause from None  # the server's or the store's own sentence
            raise TransferError(f"the push failed: {error}.") from None
        except BaseException:
            ingest.abort()
            raise
        finally:
            if progress is not None:
                progress.finish()
            shutil.rmtree(spool, ignore_errors=True)
        return records

    def _stage(self, scanned: Scan, digests: dict[str, str], records: dict[str, FileRecord]) -> None:
        """Send the file list in parts that each fit in one request."""
        entries: list[dict[str, Any]] = []
        pieces: list[dict[str, Any]] = []
        for f in scanned.files:
            entry: dict[str, Any] = {
                "path": f.relpath,
                "kind": "executable" if f.executable else "file",
                "size": f.stat.st_size,
                "digest": digests[f.relpath],
            }
            record = records.get(f.relpath)
            if record is not None:
                entry["size"] = record.size
                if 1 < len(record.chunk_ids) <= _INLINE_CHUNKS:
                    entry["chunks"] = record.chunk_ids
                elif len(record.chunk_ids) > _INLINE_CHUNKS:
                    for start in range(0, len(record.chunk_ids), _PIECE_CHUNKS):
                        pieces.append(
                            {
                                "digest": record.digest,
                                "size": record.size,
                                "chunks": record.chunk_ids[start : start + _PIECE_CHUNKS],
                            }
                        )
            entries.append(entry)
        entries += [{"path": p, "kind": "link", "target": t} for p, t in sorted(scanned.links.items())]
        entries += [{"path": d, "kind": "dir"} for d in sorted(scanned.dirs) if d]
        part = 0
        for piece in pieces:
            part += 1
            self._send_part(part, [], [piece])
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for entry in entries:
            size = len(json.dumps(entry)) + 1
            if batch and (batch_bytes + size > self.request_budget or len(batch) >= 10_000):
                part += 1
                self._send_part(part, batch, [])
                batch, batch_bytes = [], 0
            batch.append(entry)
            batch_bytes += size
        if batch:
            part += 1
            self._send_part(part, batch, [])

    def _send_part(self, number: int, entries: list[dict[str, Any]], manifests: list[dict[str, Any]]) -> None:
        self.transport.call(
            "POST",
            f"{self.base}/files",
            body={"part": number, "entries": entries, "manifests": manifests},
            retry=True,
        )
