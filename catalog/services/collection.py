"""The lock between garbage collection and the commits that reuse stored chunks.

A push that finds a chunk already stored does not store it again: the new version
will point at the existing copy. Retention decides which chunks are still reached
by some version, then deletes or repacks the packs of the others. Without a lock a
push could find a chunk, the collector could decide it is dead (the push's version
does not exist yet) and delete it, and the push could then commit a version whose
bytes are gone.

So a retention run holds this lock exclusively from deciding what is live to the
last row it deletes (the repacking and sweeping phases), and a commit that relies
on chunks it did not write holds it shared while it checks they are all still
indexed and creates the version. Either the commit comes first, and the collector
then sees its version, or the collector does, and the commit finds the chunks gone
and refuses (pushing again stores them anew). Commits do not wait for each other.

PostgreSQL gives session-level advisory locks; on SQLite (one machine) a lock file
beside the database does the same with flock(2). Both are released if the process
dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import connection

from catalog.errors import ConflictError

# pg_advisory_lock takes a 64-bit key: b"strataGC" as an integer.
_KEY = int.from_bytes(b"strataGC", "big") - (1 << 63)
_POLL_SECONDS = 0.2


class CollectionRunning(ConflictError):
    """A commit waited too long for garbage collection to finish: try again."""

    def __init__(self, waited: float) -> None:
        super().__init__(
            f"garbage collection has been running for the {waited:.0f} s this commit waited;"
            " nothing was committed, and what was uploaded stays stored: push again in a few minutes."
        )


def _lock_path() -> str:
    return f"{connection.settings_dict['NAME']}.collection-lock"


@contextlib.contextmanager
def _flock(mode: int, wait: float | None) -> Iterator[None]:
    descriptor = os.open(_lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(descriptor, mode | (fcntl.LOCK_NB if wait is not None else 0))
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if wait is not None and waited >= wait:
                    raise CollectionRunning(waited) from None
                time.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextlib.contextmanager
def _advisory(shared: bool, wait: float | None) -> Iterator[None]:
    suffix = "_shared" if shared else ""
    with connection.cursor() as cursor:
        if wait is None:
            cursor.execute(f"SELECT pg_advisory_lock{suffix}(%s)", [_KEY])
        else:
            started = time.monotonic()
            while True:
                cursor.execute(f"SELECT pg_try_advisory_lock{suffix}(%s)", [_KEY])
                if cursor.fetchone()[0]:
                    break
                waited = time.monotonic() - started
                if waited >= wait:
                    raise CollectionRunning(waited)
                time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_advisory_unlock{suffix}(%s)", [_KEY])


def _lock(shared: bool, wait: float | None) -> contextlib.AbstractContextManager[None]:
    if connection.vendor == "postgresql":
        return _advisory(shared, wait)
    return _flock(fcntl.LOCK_SH if shared else fcntl.LOCK_EX, wait)


def collecting() -> contextlib.AbstractContextManager[None]:
    """Held by a retention run while it decides what is live and deletes the rest;
    waits for commits in progress to finish."""
    return _lock(shared=False, wait=None)


def reusing() -> contextlib.AbstractContextManager[None]:
    """Held by a commit that relies on chunks it did not write, around checking
    them and creating the version. Waits for a collection in progress, at most
    `STRATA_COLLECTION_WAIT_SECONDS`, then refuses in one sentence."""
    return _lock(shared=True, wait=settings.STRATA_COLLECTION_WAIT_SECONDS)
