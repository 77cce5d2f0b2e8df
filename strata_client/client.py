"""The Python client: push a folder as a version, pull a version into a folder,
resolve a ref — against a Strata server's REST API, with no Django.

Pushing chunks and packs files here, with the store's own code (``catalog.storage``),
so only chunks the server lacks travel, straight to the object store through the
URLs the server signs; the web server sees ids and file lists. Pulling fetches only
the byte ranges of packs that the version's chunks occupy, verifies every chunk by
its hash and every file by its digest, and writes nothing into DEST until all of it
has been checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from catalog.storage import chunker, packs
from catalog.storage import tree as treeformat
from catalog.storage.errors import StoreError
from catalog.storage.hashing import digest_hex, new_hasher
from catalog.storage.packs import ChunkLocation, decode_chunk
from catalog.storage.statcache import StatCache
from catalog.storage.store import FileChangedError, FileRecord, Ingest, ProgressSink

from . import http
from .errors import ClientError, IntegrityError, TransferError
from .errors import NotFound as NotFoundError
from .scan import Scan, scan, scan_fingerprint

# A file with more chunks than this sends its chunk list in separate pieces.
_INLINE_CHUNKS = 1000
_PIECE_CHUNKS = 15_000
# Digests asked about per request (each about 67 bytes of JSON).
_ASK_BATCH = 15_000
# Spans fetched ahead of the one being written.
_PREFETCH = 4


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


@dataclass(slots=True)
class PullResult:
    dataset: str
    version: str
    semver: str
    dest: str
    file_count: int
    bytes_written: int
    bytes_fetched: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_ref(spec: str) -> tuple[str, str | None]:
    """'reviews@1.2.0' -> ('reviews', '1.2.0'); 'reviews' -> ('reviews', None)."""
    name, sep, ref = spec.partition("@")
    if not name:
        raise ClientError(f"{spec!r} names no dataset: use DATASET[@REF].")
    if sep and not ref:
        raise ClientError(f"{spec!r} names no ref after '@': use DATASET@REF.")
    return name, (ref if sep else None)


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("STRATA_CLIENT_CACHE") or os.path.join(base, "strata-client")


class Client:
    """A Strata server, as the user a personal API token belongs to."""

    def __init__(self, url: str, token: str, *, cache_dir: str | None = None, timeout: float = 120.0) -> None:
        if not token:
            raise ClientError("an API token is needed: create one on your account's token page.")
        self.transport = http.Transport(url, token, timeout=timeout)
        self.cache_dir = cache_dir or default_cache_dir()

    # -- reading ------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The id of the version `DATASET[@REF]` names (a branch, tag, semantic
        version or id prefix; the default branch's head without one)."""
        return self._resolve(ref)["id"]

    def _resolve(self, ref: str) -> dict[str, Any]:
        dataset, name = split_ref(ref)
        _, version = self.transport.call("GET", f"/datasets/{dataset}/resolve", params={"ref": name})
        return version

    # -- pushing ------------------------------------------------------------------------

    def push(
        self,
        path: str,
        dataset: str,
        *,
        branch: str | None = None,
        message: str = "",
        stage: str | None = None,
        semver: str | None = None,
        progress: ProgressSink | None = None,
    ) -> PushResult:
        """Store the file or folder `path` as a new version of `dataset`.

        Creates the dataset on its first push. Only chunks the server lacks are
        uploaded; a push of unchanged content uploads nothing and makes no version.
        """
        scanned = scan(path)
        fingerprint = scan_fingerprint(scanned)
        os.makedirs(self.cache_dir, exist_ok=True)
        cache = StatCache(os.path.join(self.cache_dir, "stat.sqlite3"))
        try:
            unchanged = self._unchanged(cache, scanned, fingerprint, dataset, branch)
            if unchanged is not None:
                return unchanged
            _, upload = self.transport.call(
                "POST",
                f"/datasets/{dataset}/uploads",
                body={"branch": branch} if branch else {},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                retry=True,
            )
            session = _PushSession(self.transport, upload, cache, progress)
            result = session.run(scanned, dataset, message=message, stage=stage, semver=semver)
            if all(cache.is_settled(f.stat) for f in scanned.files):
                cache.record_snapshot(scanned.root, fingerprint, session.tree)
            return result
        finally:
            cache.close()

    def _unchanged(
        self, cache: StatCache, scanned: Scan, fingerprint: str, dataset: str, branch: str | None
    ) -> PushResult | None:
        """The branch head, if this exact folder was pushed before and the branch still
        holds its tree: then nothing needs reading, asking or sending."""
        tree = cache.snapshot_tree(scanned.root, fingerprint)
        if tree is None:
            return None
        try:
            _, branches = self.transport.call("GET", f"/datasets/{dataset}/branches")
        except NotFoundError:
            return None
        found = next((b for b in branches if (b["name"] == branch if branch else b["default"])), None)
        if found is None or found["tree"] != tree:
            return None
        _, head = self.transport.call("GET", f"/datasets/{dataset}/versions/{found['head']}")
        return PushResult(
            dataset=dataset,
            branch=found["name"],
            version=head["id"],
            semver=head["semver"],
            created=False,
            file_count=head["file_count"],
            logical_bytes=head["logical_bytes"],
            new_bytes=0,
            uploaded_packs=0,
            uploaded_bytes=0,
        )

    # -- pulling ------------------------------------------------------------------------

    def pull(
        self, ref: str, dest: str, *, force: bool = False, progress: ProgressSink | None = None
    ) -> PullResult:
        """Write exactly the version `DATASET[@REF]` names into `dest`, verified, or
        nothing at all."""
        dataset, _ = split_ref(ref)
        version = self._resolve(ref)
        return _Pull(self.transport, dataset, version, progress).run(dest, force)


# -- the push protocol ----------------------------------------------------------------------


class _RemoteIndex:
    """The store's ChunkIndex, answered by the server for this upload.

    The store asks about a few hundred chunks at a time, which for small files
    would mean a request per few megabytes; their answers are asked for up front,
    in large batches (`learn`), and only other chunks cost a request here.
    """

    def __init__(self, session: _PushSession) -> None:
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

    def __init__(self, session: _PushSession, spool: str) -> None:
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


class _PushSession:
    def __init__(self, transport: http.Transport, upload: dict[str, Any], cache: StatCache, progress) -> None:
        self.transport = transport
        self.upload = upload
        self.cache = cache
        self.progress = progress
        self.uploaded_packs = 0
        self.uploaded_bytes = 0
        self.tree = ""
        self._lock = threading.Lock()
        # Requests stay well under what the server accepts in one body.
        self.request_budget = max(64 * 1024, min(int(upload["max_request_bytes"]), 8 << 20) * 3 // 4)

    @property
    def base(self) -> str:
        return f"/uploads/{self.upload['id']}"

    def ask(self, *, chunks: list[str] = (), files: list[str] = ()) -> tuple[list[str], list[str]]:
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
        self, scanned: Scan, dataset: str, *, message: str, stage: str | None, semver: str | None
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
        _, result = self.transport.call(
            "POST",
            f"/datasets/{dataset}/versions",
            body=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            retry=True,
        )
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
            if isinstance(cause, Exception) and hasattr(cause, "exit_code"):
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


# -- the pull protocol -------------------------------------------------------------------------


def _check_relpath(path: str) -> None:
    """Refuse a path from the server that could write outside DEST."""
    if not path or path.startswith("/"):
        raise IntegrityError(f"the server listed an unsafe path {path!r}; nothing was written.")
    for part in path.split("/"):
        try:
            treeformat.check_name(part)
        except treeformat.InvalidTree:
            raise IntegrityError(f"the server listed an unsafe path {path!r}; nothing was written.") from None


def _check_link(path: str, target: str) -> None:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if not target or posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
        raise IntegrityError(f"the link {path} points outside the pulled folder; nothing was written.")


def _prepare_dest(dest: str, force: bool) -> tuple[str, bool]:
    """Check DEST and make a staging folder beside (or in) it: (staging, existed)."""
    if os.path.lexists(dest):
        if not os.path.isdir(dest) or os.path.islink(dest):
            raise ClientError(f"{dest} exists and is not a folder.")
        if os.listdir(dest) and not force:
            raise ClientError(f"{dest} is not empty; pull into an empty folder, or pass --force.")
        parent, existed = dest, True
    else:
        parent, existed = os.path.dirname(dest), False
        if not os.path.isdir(parent):
            raise ClientError(f"cannot write to {dest}: its parent folder does not exist.")
    try:
        staging = tempfile.mkdtemp(prefix=".strata-pull-", dir=parent)
    except OSError as error:
        raise ClientError(f"cannot write to {dest}: {(error.strerror or str(error)).lower()}.") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging, existed


def _move_into(staging: str, dest: str) -> None:
    for name in os.listdir(staging):
        source, target = os.path.join(staging, name), os.path.join(dest, name)
        source_is_dir = os.path.isdir(source) and not os.path.islink(source)
        if source_is_dir and os.path.isdir(target) and not os.path.islink(target):
            _move_into(source, target)
        else:
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            os.replace(source, target)


class _Spans:
    """The spans of a manifest page, fetched a few ahead of use, each dropped once
    the chunks after it are being read (chunks use spans in order)."""

    def __init__(self, spans: list[dict[str, Any]], pool: ThreadPoolExecutor) -> None:
        self.spans = spans
        self.pool = pool
        self.futures: dict[int, Future[bytes]] = {}
        self.next_to_submit = 0
        self.fetched = 0

    def _submit_until(self, index: int) -> None:
        while self.next_to_submit < len(self.spans) and self.next_to_submit <= index + _PREFETCH:
            span = self.spans[self.next_to_submit]
            self.futures[self.next_to_submit] = self.pool.submit(
                http.get_bytes, span["url"], span["headers"], span["length"]
            )
            self.next_to_submit += 1

    def get(self, index: int) -> bytes:
        for done in [i for i in self.futures if i < index]:
            del self.futures[done]
        self._submit_until(index)
        data = self.futures[index].result()
        return data

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()


_SMALL_FILE = 1024 * 1024


def _small_and_whole(entry: dict[str, Any]) -> bool:
    return entry["size"] <= _SMALL_FILE and len(entry["chunks"]) == entry["chunk_count"]


def _decode(spans: _Spans, chunk: dict[str, Any]) -> bytes:
    """A chunk's content from its span, verified against its id."""
    data = spans.get(chunk["span"])
    location = ChunkLocation(
        chunk["id"],
        f"span {chunk['span']}",
        chunk["offset"],
        chunk["stored_length"],
        chunk["raw_length"],
        chunk["codec"],
    )
    return decode_chunk(
        location, memoryview(data)[chunk["offset"] : chunk["offset"] + chunk["stored_length"]]
    )


def _create(staging: str, entry: dict[str, Any]) -> int:
    """Create a new file for `entry` in the staging folder (its folder listed first)."""
    target = os.path.join(staging, entry["path"])
    mode = 0o755 if entry["kind"] == "executable" else 0o644
    try:
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)


def _check_file(entry: dict[str, Any], size: int, digest: str) -> None:
    if size != entry["size"] or digest != entry["digest"]:
        raise IntegrityError(f"{entry['path']} does not match its digest; nothing was written.")


def _write_small(staging: str, entry: dict[str, Any], pieces: list[bytes]) -> int:
    """Write a small file from its verified chunks, then check it whole."""
    hasher = new_hasher()
    fd = _create(staging, entry)
    try:
        for piece in pieces:
            hasher.update(piece)
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    size = sum(len(piece) for piece in pieces)
    _check_file(entry, size, hasher.hexdigest())
    return size


class _Pull:
    def __init__(self, transport: http.Transport, dataset: str, version: dict[str, Any], progress) -> None:
        self.transport = transport
        self.dataset = dataset
        self.version = version
        self.progress = progress

    def _pages(self, pool: ThreadPoolExecutor) -> Iterator[dict[str, Any]]:
        """The manifest's pages; the next one is asked for while this one is written."""

        def fetch(cursor: str | None) -> dict[str, Any]:
            _, page = self.transport.call(
                "GET",
                f"/datasets/{self.dataset}/versions/{self.version['id']}/manifest",
                params={"cursor": cursor},
            )
            return page

        page = fetch(None)
        while True:
            upcoming = pool.submit(fetch, page["next"]) if page["next"] else None
            yield page
            if upcoming is None:
                return
            page = upcoming.result()

    def run(self, dest: str, force: bool) -> PullResult:
        dest = os.path.abspath(dest)
        staging, existed = _prepare_dest(dest, force)
        progress = self.progress
        if progress is not None:
            progress.start(self.version["file_count"], self.version["logical_bytes"])
        links: list[tuple[str, str]] = []
        files = written = fetched = 0
        current: dict[str, Any] | None = None  # the file being written, across pages
        pool = ThreadPoolExecutor(max_workers=_PREFETCH, thread_name_prefix="strata-fetch")
        writers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="strata-write")
        pages_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-manifest")
        pending: deque[Future[int]] = deque()
        try:
            for page in self._pages(pages_pool):
                spans = _Spans(page["spans"], pool)
                try:
                    for entry in page["entries"]:
                        path = entry["path"]
                        _check_relpath(path)
                        kind = entry["kind"]
                        if kind == "dir":
                            os.makedirs(os.path.join(staging, path), exist_ok=True)
                            continue
                        if kind == "link":
                            _check_link(path, entry["target"])
                            links.append((path, entry["target"]))
                            continue
                        if entry["chunk_start"] == 0 and _small_and_whole(entry):
                            # Creating a file is a system call that releases the GIL:
                            # small files are written and checked by a few threads.
                            pieces = [_decode(spans, chunk) for chunk in entry["chunks"]]
                            pending.append(writers.submit(_write_small, staging, entry, pieces))
                            if len(pending) > 256:
                                written += pending.popleft().result()
                            files += 1
                            if progress is not None:
                                progress.advance(1, entry["size"])
                            continue
                        if entry["chunk_start"] == 0:
                            current = self._open(staging, entry)
                        elif current is None or current["path"] != path:
                            raise IntegrityError(
                                f"the server's manifest broke off inside {path}; nothing was written."
                            )
                        for chunk in entry["chunks"]:
                            content = _decode(spans, chunk)
                            current["hasher"].update(content)
                            current["size"] += len(content)
                            current["handle"].write(content)
                        if entry["chunk_start"] + len(entry["chunks"]) >= entry["chunk_count"]:
                            written += self._close(current)
                            files += 1
                            current = None
                    fetched += sum(span["length"] for span in page["spans"])
                finally:
                    spans.close()
            if current is not None:
                raise IntegrityError(
                    f"the server's manifest ended inside {current['path']}; nothing was written."
                )
            while pending:
                written += pending.popleft().result()
            for path, target in links:
                os.makedirs(os.path.dirname(os.path.join(staging, path)), exist_ok=True)
                os.symlink(target, os.path.join(staging, path))
            if progress is not None:
                progress.finish()
            if existed:
                _move_into(staging, dest)
                shutil.rmtree(staging)
            else:
                os.rename(staging, dest)
        except StoreError as error:
            self._discard(current, staging)
            raise IntegrityError(
                f"cannot pull {self.dataset}@{self.version['semver']}: {error}; nothing was written to {dest}."
            ) from None
        except BaseException:
            self._discard(current, staging)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True, cancel_futures=True)
            pages_pool.shutdown(wait=True, cancel_futures=True)
        return PullResult(
            self.dataset, self.version["id"], self.version["semver"], dest, files, written, fetched
        )

    def _open(self, staging: str, entry: dict[str, Any]) -> dict[str, Any]:
        fd = _create(staging, entry)
        return {
            "path": entry["path"],
            "entry": entry,
            "handle": os.fdopen(fd, "wb", buffering=1 << 20),
            "hasher": new_hasher(),
            "size": 0,
        }

    def _close(self, current: dict[str, Any]) -> int:
        current["handle"].close()
        _check_file(current["entry"], current["size"], current["hasher"].hexdigest())
        if self.progress is not None:
            self.progress.advance(1, current["size"])
        return current["size"]

    @staticmethod
    def _discard(current: dict[str, Any] | None, staging: str) -> None:
        if current is not None and not current["handle"].closed:
            current["handle"].close()
        shutil.rmtree(staging, ignore_errors=True)
