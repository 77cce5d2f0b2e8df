"""The client's half of a pull: read the manifest a page at a time, fetch only the
spans of packs the version uses, verify every chunk and file, write nothing into
DEST until all of it is checked."""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from strata_client import http
from strata_client.errors import ClientError, IntegrityError
from strata_store.errors import StoreError
from strata_store.hashing import new_hasher
from strata_store.packs import ChunkLocation, decode_chunk
from strata_store.paths import UnsafePath
from strata_store.staging import DestinationError, check_tree, publish, staging_for
from strata_store.store import ProgressSink

# Spans fetched ahead of the one being written.
_PREFETCH = 4


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


# -- the pull protocol -------------------------------------------------------------------------


def _check_relpath(path: str) -> None:
    """Refuse a path from the server that could write outside DEST, or that the
    filesystem cannot hold (the store's own rule, as `check_tree` applies it)."""
    try:
        check_tree([path], {})
    except UnsafePath as error:
        raise IntegrityError(
            f"the server listed an unsafe path: {error.problem}; nothing was written."
        ) from None


def _check_links(links: list[tuple[str, str]]) -> None:
    """Refuse links that lead outside DEST, each resolved through the others."""
    try:
        check_tree([], dict(links))
    except UnsafePath as error:
        raise IntegrityError(f"{error.problem}; nothing was written.") from None


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


class _Staged:
    """What a pull has written into its staging folder so far: small files by a
    few threads, a large file a page at a time (it may span pages), links last."""

    def __init__(self, staging: str, writers: ThreadPoolExecutor, progress: ProgressSink | None) -> None:
        self.staging = staging
        self.writers = writers
        self.progress = progress
        self.links: list[tuple[str, str]] = []
        self.files = 0
        self.written = 0
        self.current: dict[str, Any] | None = None  # the file being written, across pages
        self.pending: deque[Future[int]] = deque()

    def add(self, entry: dict[str, Any], spans: _Spans) -> None:
        """Write one entry of a manifest page (a link is only noted, for the end)."""
        path = entry["path"]
        _check_relpath(path)
        kind = entry["kind"]
        if kind == "dir":
            os.makedirs(os.path.join(self.staging, path), exist_ok=True)
        elif kind == "link":
            _check_links([(path, entry["target"])])
            self.links.append((path, entry["target"]))
        elif entry["chunk_start"] == 0 and _small_and_whole(entry):
            self._add_small(entry, spans)
        else:
            self._add_chunks(entry, spans)

    def _add_small(self, entry: dict[str, Any], spans: _Spans) -> None:
        # Creating a file is a system call that releases the GIL:
        # small files are written and checked by a few threads.
        pieces = [_decode(spans, chunk) for chunk in entry["chunks"]]
        self.pending.append(self.writers.submit(_write_small, self.staging, entry, pieces))
        if len(self.pending) > 256:
            self.written += self.pending.popleft().result()
        self.files += 1
        if self.progress is not None:
            self.progress.advance(1, entry["size"])

    def _add_chunks(self, entry: dict[str, Any], spans: _Spans) -> None:
        """Write the chunks a page lists of a large file: it is opened at its first
        chunk, and closed and checked at its last."""
        if entry["chunk_start"] == 0:
            self.current = self._open(entry)
        elif self.current is None or self.current["path"] != entry["path"]:
            raise IntegrityError(
                f"the server's manifest broke off inside {entry['path']}; nothing was written."
            )
        current = self.current
        for chunk in entry["chunks"]:
            content = _decode(spans, chunk)
            current["hasher"].update(content)
            current["size"] += len(content)
            current["handle"].write(content)
        if entry["chunk_start"] + len(entry["chunks"]) >= entry["chunk_count"]:
            self.written += self._close(current)
            self.files += 1
            self.current = None

    def finish(self) -> None:
        """Once every page is written: wait for the small files, then make the links."""
        if self.current is not None:
            raise IntegrityError(
                f"the server's manifest ended inside {self.current['path']}; nothing was written."
            )
        while self.pending:
            self.written += self.pending.popleft().result()
        _check_links(self.links)
        for path, target in self.links:
            os.makedirs(os.path.dirname(os.path.join(self.staging, path)), exist_ok=True)
            os.symlink(target, os.path.join(self.staging, path))

    def _open(self, entry: dict[str, Any]) -> dict[str, Any]:
        fd = _create(self.staging, entry)
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

    def discard(self) -> None:
        if self.current is not None and not self.current["handle"].closed:
            self.current["handle"].close()
        shutil.rmtree(self.staging, ignore_errors=True)


class PullJob:
    def __init__(
        self, transport: http.Transport, dataset: str, version: dict[str, Any], progress: ProgressSink | None
    ) -> None:
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
        try:
            staging, existed = staging_for(dest, force=force)
        except DestinationError as error:
            raise ClientError(str(error)) from None
        progress = self.progress
        if progress is not None:
            progress.start(self.version["file_count"], self.version["logical_bytes"])
        fetched = 0
        pool = ThreadPoolExecutor(max_workers=_PREFETCH, thread_name_prefix="strata-fetch")
        writers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="strata-write")
        pages_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-manifest")
        staged = _Staged(staging, writers, progress)
        try:
            for page in self._pages(pages_pool):
                spans = _Spans(page["spans"], pool)
                try:
                    for entry in page["entries"]:
                        staged.add(entry, spans)
                    fetched += sum(span["length"] for span in page["spans"])
                finally:
                    spans.close()
            staged.finish()
            if progress is not None:
                progress.finish()
            publish(staging, dest, existed)
        except StoreError as error:
            staged.discard()
            raise IntegrityError(
                f"cannot pull {self.dataset}@{self.version['semver']}: {error}; nothing was written to {dest}."
            ) from None
        except BaseException:
            staged.discard()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True, cancel_futures=True)
            pages_pool.shutdown(wait=True, cancel_futures=True)
        return PullResult(
            self.dataset,
            self.version["id"],
            self.version["semver"],
            dest,
            staged.files,
            staged.written,
            fetched,
        )
