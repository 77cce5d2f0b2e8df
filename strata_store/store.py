"""Writing files into packs (with dedup) and reading them back, verified.

The chunk index — which pack holds which chunk — belongs to the catalog's database;
this module sees it through the small `ChunkIndex` protocol, so that it stays free of
Django and can be driven by a test with a dict.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, cast

from blake3 import blake3

from strata_store.backends import Backend
from strata_store.chunker import MAX_SIZE, iter_chunk_batches
from strata_store.errors import MissingObject, StoreError
from strata_store.hashing import EMPTY_DIGEST, digest_hex
from strata_store.packs import (
    CODEC_RAW,
    DEFAULT_PACK_SIZE,
    ChunkLocation,
    FinishedPack,
    PackWriter,
    Payload,
    SealedPack,
    decode_chunk,
    encode_chunk,
)

# Chunks of one window tried for compression before the others are.
_PROBES = 8
# How many chunks are looked up in the index at once while pushing.
_LOOKUP_BATCH = 512
_LOOKUP_BATCH_BYTES = 16 * 1024 * 1024
# Reads of neighbouring chunks in one pack are merged into one request when the
# gap between them is small; one request stays below _MAX_SPAN bytes.
_MAX_GAP = 1024 * 1024
_MAX_SPAN = 16 * 1024 * 1024


class ChunkIndex(Protocol):
    def missing(self, chunk_ids: Sequence[str]) -> set[str]:
        """The ids among `chunk_ids` that the store does not hold yet."""

    def locate(self, chunk_ids: Sequence[str]) -> dict[str, ChunkLocation]:
        """Where each chunk is stored; absent ids are left out."""


class PackSink(Protocol):
    """Where an ingest stores the packs it seals: the part of a `Backend` it uses,
    which a client's push offers too (it sends each pack to the server)."""

    def spool_dir(self) -> str:
        """A local folder where packs are written before `put_pack`."""

    def put_pack(self, pack_id: str, path: str) -> None:
        """Store the sealed pack at `path` under `pack_id`; consumes the file."""


class ProgressSink(Protocol):
    def start(self, files: int, nbytes: int) -> None: ...

    def advance(self, files: int, nbytes: int) -> None: ...

    def finish(self) -> None: ...


@dataclass(slots=True)
class FileRecord:
    """What a pushed file became: its full-content digest and its chunks."""

    digest: str
    size: int
    chunk_ids: list[str]


@dataclass(slots=True)
class IngestReport:
    packs: list[FinishedPack] = field(default_factory=list)
    new_bytes: int = 0  # stored (compressed) bytes of chunks new to the store
    new_raw_bytes: int = 0  # raw bytes of chunks new to the store
    reused_bytes: int = 0  # raw bytes of chunks the store already had
    # Chunks found already stored (not written by this ingest): the commit checks
    # they are still there, under garbage collection's lock.
    reused_chunks: set[str] = field(default_factory=set)


class FileChangedError(StoreError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} changed while it was being pushed; push again")


class Ingest:
    """Chunks files, skips chunks the store already has, packs and uploads the rest.

    Packs are sealed in memory, then written out and uploaded by a background
    thread while chunking goes on. Nothing here touches the catalog: the caller
    registers `report.packs` and the returned file records in one database
    transaction after `finish()` — data before metadata.
    """

    def __init__(
        self,
        backend: PackSink,
        index: ChunkIndex,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        progress: ProgressSink | None = None,
    ) -> None:
        self.backend = backend
        self.index = index
        self.report = IngestReport()
        self._writer = PackWriter(backend.spool_dir(), pack_size)
        self._progress = progress
        # Chunks written by this ingest (not yet in the index): id -> True.
        self._written: set[str] = set()
        # Chunks waiting for one index lookup: (id, raw length, payload, codec).
        self._pending: list[tuple[str, int, Payload, int]] = []
        self._pending_bytes = 0
        # Sealed packs wait here, in memory, for the uploading thread to write and
        # store them: at most one waiting, one being written and one filling.
        self._uploads: queue.Queue[SealedPack | None] = queue.Queue(maxsize=1)
        self._upload_error: BaseException | None = None
        self._uploader = threading.Thread(target=self._upload_loop, daemon=True)
        self._uploader.start()
        # Hashing and compressing chunks release the GIL: large files use both cores.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="strata-encode")

    # -- uploading ---------------------------------------------------------------

    def _upload_loop(self) -> None:
        spool_dir = self.backend.spool_dir()
        while True:
            sealed = self._uploads.get()
            if sealed is None:
                return
            if self._upload_error is not None:
                continue
            try:
                finished = sealed.write(spool_dir)
                del sealed  # its bytes are in the spool file now
                self.backend.put_pack(finished.pack_id, finished.path)
            except BaseException as error:  # reported on the pushing thread
                self._upload_error = error
                continue
            self.report.packs.append(finished)

    def _seal_pack(self) -> None:
        sealed = self._writer.seal()
        if sealed is None:
            return
        self._check_upload_error()
        self._uploads.put(sealed)

    def _check_upload_error(self) -> None:
        if self._upload_error is not None:
            raise StoreError(f"upload failed: {self._upload_error}") from self._upload_error

    # -- chunk batching ----------------------------------------------------------

    def _queue_chunk(self, chunk_id: str, raw_length: int, payload: Payload, codec: int) -> None:
        self._pending.append((chunk_id, raw_length, payload, codec))
        self._pending_bytes += raw_length
        if len(self._pending) >= _LOOKUP_BATCH or self._pending_bytes >= _LOOKUP_BATCH_BYTES:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        candidates = list({chunk_id for chunk_id, *_ in self._pending if chunk_id not in self._written})
        missing = self.index.missing(candidates) if candidates else set()
        for chunk_id, raw_length, payload, codec in self._pending:
            if chunk_id in missing and chunk_id not in self._written:
                entry = self._writer.add_encoded(chunk_id, raw_length, payload, codec)
                self._written.add(chunk_id)
                self.report.new_bytes += entry.stored_length
                self.report.new_raw_bytes += raw_length
                if self._writer.should_finish():
                    self._seal_pack()
            else:
                self.report.reused_bytes += raw_length
                if chunk_id not in self._written:
                    self.report.reused_chunks.add(chunk_id)
        self._pending = []
        self._pending_bytes = 0

    # -- files -------------------------------------------------------------------

    def add_file(self, path: str, expected_size: int) -> FileRecord:
        """Chunk and store one file; `expected_size` is its size when scanned.

        A file larger than one chunk can be is read in windows: the main thread
        cuts chunks while a pool names and compresses the previous windows', and
        the whole-file digest is fed as the bytes are read. A small file is
        handled inline, where a thread hand-off would cost more than it saves.
        """
        large = expected_size > MAX_SIZE
        whole = blake3(max_threads=blake3.AUTO) if large else None
        chunk_ids: list[str] = []
        size = 0
        in_flight: deque[Future[list[tuple[str, int, Payload, int]]]] = deque()
        with open(path, "rb") as handle:
            for batch in iter_chunk_batches(handle, hasher=whole, copy=False):
                if large:
                    in_flight.append(self._pool.submit(_encode_batch, batch))
                    if len(in_flight) > 2:
                        size += self._take(in_flight.popleft().result(), chunk_ids)
                else:
                    size += self._take(_encode_batch(batch), chunk_ids)
            while in_flight:
                size += self._take(in_flight.popleft().result(), chunk_ids)
        if size != expected_size:
            raise FileChangedError(path)
        if not chunk_ids:
            digest = EMPTY_DIGEST
        elif len(chunk_ids) == 1:
            # One chunk: the file's digest is the chunk's name.
            digest = chunk_ids[0]
        elif whole is not None:
            digest = whole.hexdigest()
        else:
            # A small file cut in several chunks: hash it whole, it is tiny.
            with open(path, "rb") as handle:
                content = handle.read(MAX_SIZE + 1)
            if len(content) != size:
                raise FileChangedError(path)
            digest = digest_hex(content)
        if self._progress is not None:
            self._progress.advance(1, size)
        return FileRecord(digest=digest, size=size, chunk_ids=chunk_ids)

    def _take(self, encoded: list[tuple[str, int, Payload, int]], chunk_ids: list[str]) -> int:
        size = 0
        for chunk_id, raw_length, payload, codec in encoded:
            chunk_ids.append(chunk_id)
            size += raw_length
            self._queue_chunk(chunk_id, raw_length, payload, codec)
        return size

    def finish(self) -> IngestReport:
        """Write out what is pending and wait until every pack is stored."""
        try:
            self._flush_pending()
            self._seal_pack()
        finally:
            self._uploads.put(None)
            self._uploader.join()
            self._pool.shutdown()
        self._check_upload_error()
        return self.report

    def abort(self) -> None:
        """Stop without registering anything; stored packs stay as orphans."""
        self._writer.abort()
        self._upload_error = self._upload_error or StoreError("aborted")
        self._uploads.put(None)
        self._uploader.join()
        self._pool.shutdown()


def _encode_batch(batch: Sequence[Payload]) -> list[tuple[str, int, Payload, int]]:
    """Name and encode chunks: (id, raw length, stored payload, codec) each.

    Compressing what does not compress (media, archives, weights) costs about a
    third of a push's CPU. A window of many chunks is first probed at
    `_PROBES` chunks spread across it; if not one of them compresses, the window
    is stored raw, which is what trying each chunk would almost surely give.
    """
    if len(batch) >= 4 * _PROBES:
        step = len(batch) // _PROBES
        if all(encode_chunk(batch[index])[1] == CODEC_RAW for index in range(0, len(batch), step)):
            return [(digest_hex(chunk), len(chunk), chunk, CODEC_RAW) for chunk in batch]
    return [(digest_hex(chunk), len(chunk), *encode_chunk(chunk)) for chunk in batch]


# -- reading -----------------------------------------------------------------------


def _spans(locations: Iterable[ChunkLocation]) -> Iterator[list[ChunkLocation]]:
    """Group consecutive locations that one ranged read can serve."""
    group: list[ChunkLocation] = []
    for location in locations:
        if group:
            first, last = group[0], group[-1]
            gap = location.offset - (last.offset + last.stored_length)
            span = location.offset + location.stored_length - first.offset
            if location.pack_id == first.pack_id and 0 <= gap <= _MAX_GAP and span <= _MAX_SPAN:
                group.append(location)
                continue
            yield group
        group = [location]
    if group:
        yield group


def _read_span(backend: Backend, group: list[ChunkLocation], copy: bool) -> list[Payload]:
    start = group[0].offset
    end = group[-1].offset + group[-1].stored_length
    view = memoryview(backend.read_range(group[0].pack_id, start, end - start))
    # A short read (a truncated pack) fails in decode_chunk, naming the chunk.
    return [
        decode_chunk(
            location,
            view[location.offset - start : location.offset - start + location.stored_length],
            copy=copy,
        )
        for location in group
    ]


def _read(
    backend: Backend, locations: Iterable[ChunkLocation], workers: int, copy: bool
) -> Iterator[Payload]:
    spans = _spans(list(locations))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        window: list[Future[list[Payload]]] = []
        for group in spans:
            window.append(pool.submit(_read_span, backend, group, copy))
            if len(window) > workers * 2:
                yield from window.pop(0).result()
        for future in window:
            yield from future.result()


def read_chunks(backend: Backend, locations: Iterable[ChunkLocation], *, workers: int = 4) -> Iterator[bytes]:
    """Yield the verified content of each location, in the order given.

    Neighbouring chunks are fetched with one ranged read, several reads run at once,
    and each chunk is decompressed and re-hashed before it is yielded.
    """
    return cast("Iterator[bytes]", _read(backend, locations, workers, copy=True))


def read_chunk_views(
    backend: Backend, locations: Iterable[ChunkLocation], *, workers: int = 4
) -> Iterator[Payload]:
    """`read_chunks`, with each stored-raw chunk a read-only view into the span it
    was read with (kept in memory while the view is): for writing out, without a
    copy of every byte."""
    return _read(backend, locations, workers, copy=False)


def _read_span_checked(
    backend: Backend, group: list[ChunkLocation]
) -> list[tuple[ChunkLocation, Payload | StoreError]]:
    """`_read_span` that gives each location its content or its error, and goes on."""
    start = group[0].offset
    end = group[-1].offset + group[-1].stored_length
    try:
        view = memoryview(backend.read_range(group[0].pack_id, start, end - start))
    except StoreError as error:
        return [(location, error) for location in group]
    results: list[tuple[ChunkLocation, Payload | StoreError]] = []
    for location in group:
        begin = location.offset - start
        try:
            results.append(
                (location, decode_chunk(location, view[begin : begin + location.stored_length], copy=False))
            )
        except StoreError as error:
            results.append((location, error))
    return results


def read_chunks_checked(
    backend: Backend, locations: Iterable[ChunkLocation], *, workers: int = 4
) -> Iterator[tuple[ChunkLocation, Payload | StoreError]]:
    """`read_chunk_views` that goes on past a chunk it cannot read or verify: each
    location, in the order given, with its verified content or the error naming
    what is wrong with it. `locations` is consumed as the reads go, so a long list
    of them can be a generator."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        window: deque[Future[list[tuple[ChunkLocation, Payload | StoreError]]]] = deque()
        for group in _spans(locations):
            window.append(pool.submit(_read_span_checked, backend, group))
            if len(window) > workers * 2:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()


def verify_locations(
    backend: Backend, locations: Sequence[ChunkLocation], *, workers: int = 4
) -> Iterator[tuple[ChunkLocation, StoreError | None]]:
    """Re-read and re-hash every location; yield each with its error, if any.

    Unlike `read_chunks` this goes on past a bad chunk, so one run names them all.
    The content is dropped as soon as it is checked, so reads run ahead freely.
    """

    def check(group: list[ChunkLocation]) -> list[tuple[ChunkLocation, StoreError | None]]:
        return [
            (location, result if isinstance(result, StoreError) else None)
            for location, result in _read_span_checked(backend, group)
        ]

    ordered = sorted(locations, key=lambda location: (location.pack_id, location.offset))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for results in pool.map(check, _spans(ordered)):
            yield from results


def locate_all(index: ChunkIndex, chunk_ids: Sequence[str]) -> dict[str, ChunkLocation]:
    """Locate every chunk or raise MissingObject naming the first one missing."""
    found = index.locate(chunk_ids)
    for chunk_id in chunk_ids:
        if chunk_id not in found:
            raise MissingObject("chunk", chunk_id)
    return found
