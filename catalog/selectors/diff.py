"""What changed between two versions, file by file.

Both trees are walked together, one level at a time, and a subtree whose id is the
same on both sides is skipped without being loaded: trees are named by their content,
so equal ids mean equal folders. Comparing two versions therefore costs in proportion
to what changed, not to their size. Files are compared by digest (content) and kind
(an executable bit or a link's target is a change too).

This module knows trees and entries only. Row-level comparison of tables (CSV,
Parquet) is built on top of it, from the `FileChange` pairs it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from catalog.models import Version
from catalog.store import trees_load
from strata_store import tree as treeformat

ADDED, REMOVED, MODIFIED = "added", "removed", "modified"

TreeLoader = Callable[[Iterable[str]], dict[str, list[treeformat.Entry]]]


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file (or link) that differs: `old` is None when added, `new` when removed."""

    path: str
    status: str
    old: treeformat.Entry | None
    new: treeformat.Entry | None

    @property
    def old_size(self) -> int:
        return self.old.size if self.old is not None else 0

    @property
    def new_size(self) -> int:
        return self.new.size if self.new is not None else 0

    @property
    def size_delta(self) -> int:
        return self.new_size - self.old_size


@dataclass(slots=True)
class TreeDiff:
    """Every changed file, sorted by path, with totals for the summary line."""

    changes: list[FileChange] = field(default_factory=list)
    trees_loaded: int = 0  # how much of the two trees had to be read

    def count(self, status: str) -> int:
        return sum(1 for change in self.changes if change.status == status)

    @property
    def added(self) -> int:
        return self.count(ADDED)

    @property
    def removed(self) -> int:
        return self.count(REMOVED)

    @property
    def modified(self) -> int:
        return self.count(MODIFIED)

    @property
    def bytes_added(self) -> int:
        return sum(change.new_size for change in self.changes if change.status == ADDED)

    @property
    def bytes_removed(self) -> int:
        return sum(change.old_size for change in self.changes if change.status == REMOVED)

    @property
    def size_delta(self) -> int:
        return sum(change.size_delta for change in self.changes)

    @property
    def unchanged(self) -> bool:
        return not self.changes


def _same(old: treeformat.Entry, new: treeformat.Entry) -> bool:
    return old.kind == new.kind and old.digest == new.digest


def diff_trees(old_root: str | None, new_root: str | None, *, load: TreeLoader = trees_load) -> TreeDiff:
    """Compare two root trees (None is an empty folder).

    Walks breadth-first so that each level of both sides is loaded with one call to
    `load`; pairs of subtrees with the same id are never loaded at all.
    """
    result = TreeDiff()
    # Each pending item is (path prefix, old subtree id or None, new subtree id or None).
    level: list[tuple[str, str | None, str | None]] = []
    if old_root != new_root:
        level.append(("", old_root, new_root))
    while level:
        wanted = {tree_id for _, old_id, new_id in level for tree_id in (old_id, new_id) if tree_id}
        trees = load(wanted) if wanted else {}
        result.trees_loaded += len(trees)
        next_level: list[tuple[str, str | None, str | None]] = []
        for prefix, old_id, new_id in level:
            old_entries = {entry.name: entry for entry in trees[old_id]} if old_id else {}
            new_entries = {entry.name: entry for entry in trees[new_id]} if new_id else {}
            for name in sorted(old_entries.keys() | new_entries.keys()):
                old, new = old_entries.get(name), new_entries.get(name)
                path = prefix + name
                if old is not None and new is not None and _same(old, new):
                    continue  # equal file, or a subtree with the same id: skipped
                old_tree = old.digest if old is not None and old.is_tree else None
                new_tree = new.digest if new is not None and new.is_tree else None
                if old_tree or new_tree:
                    next_level.append((path + "/", old_tree, new_tree))
                old_leaf = old if old is not None and not old.is_tree else None
                new_leaf = new if new is not None and not new.is_tree else None
                if old_leaf and new_leaf:
                    result.changes.append(FileChange(path, MODIFIED, old_leaf, new_leaf))
                elif old_leaf:
                    result.changes.append(FileChange(path, REMOVED, old_leaf, None))
                elif new_leaf:
                    result.changes.append(FileChange(path, ADDED, None, new_leaf))
        level = next_level
    result.changes.sort(key=lambda change: change.path)
    return result


def diff_versions(old: Version, new: Version) -> TreeDiff:
    """What changed from version `old` to version `new` (of any datasets)."""
    return diff_trees(old.tree_id, new.tree_id)
