"""Trees: the canonical, hashable form of a folder listing.

A tree lists its entries sorted by name; each entry is a file, an executable file, a
symbolic link or a subtree. Its name is the BLAKE3 hash of its canonical bytes, so
identical folders are one object however many versions contain them, and comparing two
versions only descends into subtrees whose names differ.

Names are checked both when a tree is built and when one is read back: a name is one
path segment — never empty, ``.``, ``..``, never containing ``/`` or NUL, and at most
255 bytes — so a tree can never write outside the folder it is materialised into,
nor hold a name the filesystem refuses. The rule is ``paths.segment_problem``, the
one every way into the store checks paths with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from strata_store.hashing import digest_hex
from strata_store.paths import segment_problem, shown

FILE = "f"
EXECUTABLE = "x"
LINK = "l"
TREE = "d"
KINDS = frozenset({FILE, EXECUTABLE, LINK, TREE})


class InvalidTree(ValueError):
    """A tree that cannot be used: malformed, or not matching its name."""


class UnsafeName(InvalidTree):
    """A tree entry whose name could write outside the folder (``..``, ``/``…)."""


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    kind: str
    size: int
    digest: str  # content digest (files), tree id (subtrees) or target (links)

    @property
    def is_tree(self) -> bool:
        return self.kind == TREE

    @property
    def is_file(self) -> bool:
        return self.kind in (FILE, EXECUTABLE)


def check_name(name: str) -> None:
    """Refuse a name that is not exactly one safe path segment."""
    problem = segment_problem(name)
    if problem is not None:
        raise UnsafeName(f"unsafe name {shown(name, 80)} in tree (it {problem})")


def _sort_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def encode(entries: list[Entry]) -> bytes:
    """Canonical bytes of a tree: entries sorted by the bytes of their names."""
    ordered = sorted(entries, key=lambda entry: _sort_key(entry.name))
    previous = None
    for entry in ordered:
        check_name(entry.name)
        if entry.kind not in KINDS:
            raise InvalidTree(f"unknown entry kind {entry.kind!r}")
        if entry.name == previous:
            raise InvalidTree(f"duplicate name {entry.name!r} in tree")
        previous = entry.name
    payload = [[entry.name, entry.kind, entry.size, entry.digest] for entry in ordered]
    # ensure_ascii keeps names that are not valid UTF-8 (surrogate escapes) exact.
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def tree_id(data: bytes) -> str:
    return digest_hex(data)


def decode(data: bytes, expected_id: str | None = None) -> list[Entry]:
    """Parse a tree, verifying its name and every entry's safety."""
    if expected_id is not None and tree_id(data) != expected_id:
        raise InvalidTree(f"tree {expected_id} is corrupt (hash mismatch)")
    try:
        payload = json.loads(data)
    except ValueError as error:
        raise InvalidTree(f"tree is not valid: {error}") from None
    if not isinstance(payload, list):
        raise InvalidTree("tree is not a list of entries")
    entries = []
    for item in payload:
        if not (isinstance(item, list) and len(item) == 4):
            raise InvalidTree("tree entry has the wrong shape")
        name, kind, size, digest = item
        check_name(name)
        if kind not in KINDS or not isinstance(size, int) or size < 0 or not isinstance(digest, str):
            raise InvalidTree(f"tree entry {name!r} is not valid")
        entries.append(Entry(name, kind, size, digest))
    return entries
