"""Spool files that a killed push left behind, found and removed.

A pack is written whole into a spool file before the backend stores it: a push
or a repack names it ``pack-*.tmp`` (`packs.SealedPack.write`), a server receiving
a pack from a remote push ``recv-*.tmp``. The writer removes its file once the pack
is stored or the write fails, but a process killed in between cannot, and nothing
else would. A spool file is only taken for a leftover once it is old: a push that
is still running keeps writing (or has only just written) its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

SPOOL_PREFIXES = ("pack-", "recv-")
SPOOL_SUFFIX = ".tmp"
# Far longer than any push takes to write and upload one pack.
LEFTOVER_AGE_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class SpoolFile:
    path: str
    size: int
    age_seconds: float
    removed: bool


def spool_sweep(
    folders: Iterable[str],
    *,
    older_than: float = LEFTOVER_AGE_SECONDS,
    remove: bool = True,
    now: float | None = None,
) -> list[SpoolFile]:
    """The spool files in `folders` last written more than `older_than` seconds
    ago, removed unless `remove` is false. Only the folders themselves are looked
    at, and only names a pack writer gives, so a spool folder shared with other
    programs (the system's temporary folder) loses nothing of theirs."""
    now = time.time() if now is None else now
    found: list[SpoolFile] = []
    for folder in dict.fromkeys(os.path.abspath(folder) for folder in folders):
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except FileNotFoundError:
            continue
        for entry in entries:
            if not (entry.name.startswith(SPOOL_PREFIXES) and entry.name.endswith(SPOOL_SUFFIX)):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # its writer just removed it
            age = now - stat.st_mtime
            if age <= older_than:
                continue
            found.append(SpoolFile(entry.path, stat.st_size, age, remove and _remove(entry.path)))
    return found


def _remove(path: str) -> bool:
    """Remove a leftover; False if it cannot be (it stays listed, as kept)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass  # another verify running at the same time took it first
    except OSError:
        return False
    return True
