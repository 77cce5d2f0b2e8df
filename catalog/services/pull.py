"""Materialising a version into a folder, every byte verified.

Nothing is written into DEST until everything has been read and checked: the files
are assembled in a staging folder beside (or inside) DEST, each chunk re-hashed as it
is read and each file's full digest checked; only then are they moved into place.
A corrupt or missing chunk aborts the pull and removes the staging folder, so DEST
never holds a partly written file.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from catalog import hooks
from catalog.domain.formatting import about
from catalog.errors import IntegrityFailure, RestoreInProgress, UnsafeTree, UserError
from catalog.models import Pack, Version
from catalog.services.versions import version_touch
from catalog.store import DatabaseChunkIndex, file_chunks, get_backend, read_pulled, walk_tree
from strata_store import tree as treeformat
from strata_store.errors import CorruptObject, MissingObject, ObjectRestoring, StoreError
from strata_store.hashing import EMPTY_DIGEST, new_hasher
from strata_store.packs import Payload, write_all
from strata_store.paths import UnsafePath
from strata_store.staging import DestinationError, check_tree, publish, staging_for
from strata_store.store import ProgressSink, locate_all


@dataclass(slots=True)
class PullResult:
    version: Version
    dest: str
    file_count: int
    bytes_written: int

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.version.dataset.name,
            "version": self.version.id,
            "semver": self.version.semver,
            "dest": self.dest,
            "file_count": self.file_count,
            "bytes": self.bytes_written,
        }


_SMALL_FILE = 1024 * 1024
# A large file is hashed and written a few MiB at a time by a writer thread,
# while this one gathers the next pieces: copying into the page cache and the
# whole-file hash are most of a pull's time.
_WRITE_BATCH = 4 * 1024 * 1024


def _hash_and_write(hasher, fd: int, pieces: list[Payload]) -> None:
    for piece in pieces:
        hasher.update(piece)
    write_all(fd, pieces)


def _write_file(
    target: str, item, pieces: Iterable[Payload], writer: ThreadPoolExecutor | None = None
) -> None:
    """Write one file from its verified chunks, then check it whole.

    A one-chunk file was verified by its chunk's hash; a longer one is checked
    against its full digest; an empty file by having no chunks at all. With a
    `writer` (one thread, so batches keep their order) the bytes are hashed and
    written by it, in batches.
    """
    entry = item.entry
    mode = 0o755 if entry.kind == treeformat.EXECUTABLE else 0o644
    hasher = new_hasher()
    count = size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    in_flight: deque[Future[None]] = deque()
    try:
        batch: list[Payload] = []
        batch_bytes = 0
        for data in pieces:
            count += 1
            size += len(data)
            batch.append(data)
            batch_bytes += len(data)
            if writer is None:
                continue
            if batch_bytes >= _WRITE_BATCH:
                in_flight.append(writer.submit(_hash_and_write, hasher, fd, batch))
                batch, batch_bytes = [], 0
                if len(in_flight) > 2:
                    in_flight.popleft().result()
        if writer is None:
            _hash_and_write(hasher, fd, batch)
        elif batch:
            in_flight.append(writer.submit(_hash_and_write, hasher, fd, batch))
        while in_flight:
            in_flight.popleft().result()
    finally:
        # Never close the file under a write still running (after an error above).
        wait(in_flight)
        os.close(fd)
    if (
        size != entry.size
        or (count > 1 and hasher.hexdigest() != entry.digest)
        or (count == 0 and entry.digest != EMPTY_DIGEST)
    ):
        raise CorruptObject("file", entry.digest, f"{item.path} does not match its digest")


@dataclass(slots=True)
class _PullPlan:
    """What a pull writes, in the order it reads: every entry, the files sorted by
    where their first chunk lies, each file's chunks and where each chunk is."""

    walked: list
    files: list
    chunks_of: dict[str, list[str]]
    locations: dict


def version_pull(
    *, version: Version, dest: str, force: bool = False, progress: ProgressSink | None = None
) -> PullResult:
    """Write exactly `version`'s files into `dest`, verified, or nothing at all."""
    plan = _pull_plan(version)
    check_restored(version, {location.pack_id for location in plan.locations.values()})
    try:
        staging, existed = staging_for(dest, force=force)
    except DestinationError as error:
        raise UserError(str(error)) from None
    if progress is not None:
        progress.start(len(plan.files), sum(item.entry.size for item in plan.files))
    dest = os.path.abspath(dest)
    try:
        written = _write_plan(plan, staging, progress)
        if progress is not None:
            progress.finish()
        publish(staging, dest, existed)
    except ObjectRestoring:
        shutil.rmtree(staging, ignore_errors=True)
        check_restored(version, {location.pack_id for location in plan.locations.values()})
        raise
    except StoreError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise IntegrityFailure(f"cannot pull {version}: {error}; nothing was written to {dest}.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    version_touch(version=version)
    return PullResult(version, dest, len(plan.files), written)


def _pull_plan(version: Version) -> _PullPlan:
    """Every check a pull makes before it writes: the version is live, its trees
    verify and are safe to write, and every chunk is indexed."""
    if version.expired is not None:
        raise UserError(
            f"{version} expired under the retention policy on {version.expired:%Y-%m-%d}; its data is gone."
        )
    walked = walk_tree(version.tree_id)  # verifies every tree and every name
    try:
        check_tree(
            (item.path for item in walked),
            {item.path: item.entry.digest for item in walked if item.entry.kind == treeformat.LINK},
        )
    except UnsafePath as error:
        raise UnsafeTree(f"refusing to pull {version}: {error.problem}; nothing was written.") from None
    files = [item for item in walked if item.entry.is_file]
    chunks_of = file_chunks(item.entry.digest for item in files)
    all_chunk_ids = [chunk_id for item in files for chunk_id in chunks_of[item.entry.digest]]
    try:
        locations = locate_all(DatabaseChunkIndex(), all_chunk_ids)
    except MissingObject as error:
        raise IntegrityFailure(f"cannot pull {version}: {error}.") from None

    def first_location(item):  # read files in pack order, so reads coalesce
        chunk_ids = chunks_of[item.entry.digest]
        if not chunk_ids:
            return ("", 0)
        location = locations[chunk_ids[0]]
        return (location.pack_id, location.offset)

    files.sort(key=first_location)
    return _PullPlan(walked, files, chunks_of, locations)


def _write_plan(plan: _PullPlan, staging: str, progress: ProgressSink | None) -> int:
    """Write the plan's folders, files and links under `staging`; returns the bytes written."""
    written = 0
    for item in plan.walked:
        if item.entry.is_tree:
            os.makedirs(os.path.join(staging, item.path), exist_ok=True)
    chunks_of, locations = plan.chunks_of, plan.locations
    stream = read_pulled(
        (locations[chunk_id] for item in plan.files for chunk_id in chunks_of[item.entry.digest]), views=True
    )
    # Small files are handed to a few writer threads (creating a file is a system
    # call that releases the GIL); a large one is streamed in place.
    with (
        ThreadPoolExecutor(max_workers=4, thread_name_prefix="strata-write") as writers,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-write-large") as large_writer,
    ):
        pending: deque[Future[None]] = deque()
        for item in plan.files:
            entry = item.entry
            chunk_ids = chunks_of[entry.digest]
            target = os.path.join(staging, item.path)
            if entry.size <= _SMALL_FILE:
                pieces = [next(stream) for _ in chunk_ids]
                pending.append(writers.submit(_write_file, target, item, pieces))
                if len(pending) > 256:
                    pending.popleft().result()
            else:
                _write_file(target, item, (next(stream) for _ in chunk_ids), large_writer)
            written += entry.size
            if progress is not None:
                progress.advance(1, entry.size)
        for future in pending:
            future.result()
    for item in plan.walked:
        if item.entry.kind == treeformat.LINK:
            os.symlink(item.entry.digest, os.path.join(staging, item.path))
    return written


def check_restored(version: Version, pack_ids: set[str]) -> None:
    """Start restoring the version's cold packs that cannot be read yet, and say
    when they will be ready, before anything is written."""
    cold = list(Pack.objects.filter(id__in=pack_ids, tier=Pack.Tier.COLD).values_list("id", "size"))
    if not cold:
        return
    backend = get_backend()
    waiting, longest = 0, 0.0
    for pack_id, _size in cold:
        state = backend.restore_state(pack_id)
        if not state.readable:
            state = backend.request_restore(pack_id)
            for track in hooks.restore_requested:
                track(pack_id, state, f"pull of {version}")
        if not state.readable:
            waiting += 1
            longest = max(longest, state.ready_in_seconds or 0.0)
    if waiting:
        packs = "1 pack is" if waiting == 1 else f"{waiting} packs are"
        raise RestoreInProgress(
            f"{version} is in cold storage: restoring, ready in {about(longest)} "
            f"({packs} being restored); pull again then.",
            ready_in_seconds=longest,
        )
