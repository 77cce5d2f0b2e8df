"""A local cache from a file's stat to its content digest, so unchanged files are
not read again (the idea of git's index and DVC's state database).

It also remembers, per pushed folder, a fingerprint of the whole scan (every path
with its stat) and the root tree it gave, so an unchanged folder of 20,000 files is
recognised without building a single tree.

A row is trusted only while device, inode, size, mtime and ctime all match. A file
modified within the clock's resolution of when it was hashed could look unchanged
("racy git"), so entries for files modified in the two seconds before hashing are
not recorded.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable

_RACY_SECONDS = 2.0


class StatCache:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS stat ("
            " path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER,"
            " mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS snapshot (root TEXT PRIMARY KEY, fingerprint TEXT, tree_id TEXT)"
        )

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _key(stat: os.stat_result) -> tuple[int, int, int, int, int]:
        return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    def lookup(self, root: str, items: Iterable[tuple[str, os.stat_result]]) -> dict[str, str]:
        """Digests of the files below `root` whose stat still matches, by path.

        One range scan over the primary key reads every row below `root`, which is
        much faster than looking files up one by one.
        """
        wanted = {path: self._key(stat) for path, stat in items}
        prefix = root.rstrip(os.sep) + os.sep
        rows = self._db.execute(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest FROM stat WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + chr(ord(os.sep) + 1)),
        )
        found: dict[str, str] = {}
        for path, dev, ino, size, mtime_ns, ctime_ns, digest in rows:
            if wanted.get(path) == (dev, ino, size, mtime_ns, ctime_ns):
                found[path] = digest
        return found

    def snapshot_tree(self, root: str, fingerprint: str) -> str | None:
        """The root tree id recorded for this exact scan of `root`, if any."""
        row = self._db.execute(
            "SELECT tree_id FROM snapshot WHERE root = ? AND fingerprint = ?", (root, fingerprint)
        ).fetchone()
        return row[0] if row else None

    def record_snapshot(self, root: str, fingerprint: str, tree_id: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO snapshot VALUES (?, ?, ?)", (root, fingerprint, tree_id))

    @staticmethod
    def is_settled(stat: os.stat_result) -> bool:
        """False for a file changed so recently that its stat cannot be trusted."""
        horizon = time.time_ns() - int(_RACY_SECONDS * 1e9)
        return stat.st_mtime_ns < horizon and stat.st_ctime_ns < horizon

    def record(self, items: Iterable[tuple[str, os.stat_result, str]]) -> None:
        """Remember digests of files hashed just now (skipping racy ones)."""
        rows = [(path, *self._key(stat), digest) for path, stat, digest in items if self.is_settled(stat)]
        if rows:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO stat VALUES (?,?,?,?,?,?,?)", rows)
            self._db.execute("COMMIT")


class NullStatCache(StatCache):
    """A stat cache that remembers nothing: for folders that exist once (a browser
    upload's temporary copy), whose rows could never match again."""

    def __init__(self) -> None:  # no database at all
        pass

    def close(self) -> None:
        pass

    def lookup(self, root: str, items: Iterable[tuple[str, os.stat_result]]) -> dict[str, str]:
        return {}

    def snapshot_tree(self, root: str, fingerprint: str) -> str | None:
        return None

    def record_snapshot(self, root: str, fingerprint: str, tree_id: str) -> None:
        pass

    def record(self, items: Iterable[tuple[str, os.stat_result, str]]) -> None:
        pass
