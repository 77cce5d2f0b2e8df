"""Three-way merge of two versions' folders: which file each path ends up as.

Plain Python over trees (``strata_store.tree``), no Django: the trees come
through a loader, so it can be tested and benchmarked on its own.

The merge walks the base (the common ancestor), the target (the branch merged
into) and the source (the branch merged from) together, folder by folder. A
folder whose tree is the same on two of the three sides is settled without
being opened — unchanged on one side, the other side's folder is taken whole —
so the work grows with what changed, not with the size of the dataset.

For each path that changed:

- changed on one side only (added, removed, modified): that side's change is taken;
- the same change on both sides: taken once;
- changed differently on both sides: a conflict — unless it is a table with a
  key column on all sides, in which case its rows are merged (the caller does that,
  ``catalog.domain.table_merge``), or a strategy settles it for one side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from strata_store import tree as treeformat
from strata_store.tree import Entry

TreeLoader = Callable[[Iterable[str]], dict[str, list[Entry]]]

SOURCE, TARGET = "source", "target"
STRATEGIES = (SOURCE, TARGET)

# What happened to a path, as a conflict or a resolution names it.
BOTH_CHANGED = "changed on both sides"
BOTH_ADDED = "added on both sides"
DELETED_CHANGED = "deleted on target, changed on source"
CHANGED_DELETED = "changed on target, deleted on source"
NO_KEY = "changed on both sides; give its key column to merge its rows"


@dataclass(frozen=True, slots=True)
class PathChange:
    """One path where the merge takes something other than the target's entry,
    or cannot decide. Entries are None where the path does not exist."""

    path: str
    base: Entry | None
    target: Entry | None
    source: Entry | None
    # "source": the source's entry is taken (a change made only there);
    # "rows": a table whose rows merge by key (`key` names the column);
    # "conflict": changed differently on both sides (`reason` says how);
    # "settled": a conflict a strategy settled for `taken`.
    outcome: str
    reason: str = ""
    key: str | None = None
    taken: str | None = None

    def as_dict(self) -> dict[str, object]:
        def entry(e: Entry | None) -> dict[str, object] | None:
            if e is None:
                return None
            return {"kind": _KIND_NAMES[e.kind], "size": e.size, "digest": e.digest}

        out: dict[str, object] = {
            "path": self.path,
            "outcome": self.outcome,
            "base": entry(self.base),
            "target": entry(self.target),
            "source": entry(self.source),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.key:
            out["key"] = self.key
        if self.taken:
            out["taken"] = self.taken
        return out


_KIND_NAMES = {
    treeformat.FILE: "file",
    treeformat.EXECUTABLE: "file",
    treeformat.LINK: "link",
    treeformat.TREE: "folder",
}


@dataclass(slots=True)
class TreeMerge:
    """What a three-way merge of two trees found: every path the target does not
    keep as it is. Paths changed only on the target are not listed (nothing to do)."""

    changes: list[PathChange] = field(default_factory=list)

    @property
    def conflicts(self) -> list[PathChange]:
        return [c for c in self.changes if c.outcome == "conflict"]

    @property
    def table_merges(self) -> list[PathChange]:
        return [c for c in self.changes if c.outcome == "rows"]

    @property
    def taken(self) -> list[PathChange]:
        return [c for c in self.changes if c.outcome in ("source", "settled")]


@dataclass(frozen=True, slots=True)
class MergeRules:
    """How a merge settles what it cannot decide alone.

    `strategy` settles every conflict for one side; `path_strategies` does so for
    one path or every path under a folder (the longest prefix wins, and wins over
    `strategy`). `keys` names the key column of tables, by path ("" for every
    table); `is_table` says which paths are tables."""

    strategy: str | None = None
    path_strategies: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    is_table: Callable[[str], bool] = lambda path: False

    def strategy_for(self, path: str) -> str | None:
        best, best_len = self.strategy, -1
        for prefix, strategy in self.path_strategies.items():
            prefix = prefix.strip("/")
            if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > best_len:
                best, best_len = strategy, len(prefix)
        return best

    def key_for(self, path: str) -> str | None:
        return self.keys.get(path) or self.keys.get("")


def _same(a: Entry | None, b: Entry | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.kind == b.kind and a.digest == b.digest


def _is_dir(e: Entry | None) -> bool:
    return e is not None and e.is_tree


def merge_trees(
    base_root: str | None, target_root: str, source_root: str, *, load: TreeLoader, rules: MergeRules
) -> TreeMerge:
    """Three-way merge of three root trees (`base_root` None: no common ancestor,
    every path is new on both sides)."""
    result = TreeMerge()
    # Folders to open, level by level, so trees load in one query per level.
    level: list[tuple[str, str | None, str | None, str | None]] = [("", base_root, target_root, source_root)]
    while level:
        wanted = {tid for _, *ids in level for tid in ids if tid}
        trees = load(wanted)
        following: list[tuple[str, str | None, str | None, str | None]] = []
        for prefix, base_id, target_id, source_id in level:
            listings = [
                {e.name: e for e in trees[tid]} if tid else {} for tid in (base_id, target_id, source_id)
            ]
            base, target, source = listings
            for name in sorted(set(base) | set(target) | set(source)):
                path = f"{prefix}/{name}" if prefix else name
                descend = _merge_entry(
                    result, path, base.get(name), target.get(name), source.get(name), rules
                )
                if descend is not None:
                    following.append((path, *descend))
        level = following
    result.changes.sort(key=lambda c: c.path)
    return result


def _merge_entry(
    result: TreeMerge, path: str, b: Entry | None, t: Entry | None, s: Entry | None, rules: MergeRules
) -> tuple[str | None, str | None, str | None] | None:
    """Decide one path; return the three tree ids to open when it must be decided
    folder by folder."""
    if _same(t, s) or _same(b, s):
        return None  # the same on both sides, or changed only on the target
    if _same(b, t):
        result.changes.append(PathChange(path, b, t, s, "source"))
        return None
    if _is_dir(t) and _is_dir(s):
        assert t is not None and s is not None
        return (b.digest if _is_dir(b) and b is not None else None, t.digest, s.digest)
    if t is not None and s is not None and t.is_file and s.is_file and (b is None or b.is_file):
        key = rules.key_for(path) if rules.is_table(path) else None
        if key:
            result.changes.append(PathChange(path, b, t, s, "rows", key=key))
            return None
        reason = NO_KEY if rules.is_table(path) else (BOTH_ADDED if b is None else BOTH_CHANGED)
    elif t is None:
        reason = DELETED_CHANGED
    elif s is None:
        reason = CHANGED_DELETED
    else:
        reason = BOTH_ADDED if b is None else BOTH_CHANGED
    strategy = rules.strategy_for(path)
    if strategy == SOURCE:
        result.changes.append(PathChange(path, b, t, s, "settled", reason=reason, taken=SOURCE))
    elif strategy == TARGET:
        # The target's entry stays; recorded so the outcome lists what was settled.
        result.changes.append(PathChange(path, b, t, s, "settled", reason=reason, taken=TARGET))
    else:
        result.changes.append(PathChange(path, b, t, s, "conflict", reason=reason))
    return None


# -- building the merged tree ----------------------------------------------------------


@dataclass(slots=True)
class BuiltTree:
    """A tree made by editing another: its root, the trees it needs that are new,
    and how many files and bytes it holds."""

    root_id: str
    trees: dict[str, tuple[bytes, int]]
    file_count: int
    logical: int


def tree_edit(
    root_id: str, edits: dict[str, Entry | None], *, load: TreeLoader, file_count: int
) -> BuiltTree:
    """`root_id` with each path of `edits` set to its entry (None removes it).

    Only the folders on the way to an edited path are rebuilt; every other
    subtree keeps its id. A path whose folders do not exist gets them. `file_count`
    is the file count of `root_id`; the result's is worked out from what the edits
    add and remove (subtrees counted by walking them)."""
    by_folder: dict[str, dict[str, Entry | None]] = defaultdict(dict)
    folders = {""}
    for path, entry in edits.items():
        parent, _, name = path.rpartition("/")
        by_folder[parent][name] = entry
        while parent:
            folders.add(parent)
            parent = parent.rpartition("/")[0]
    # The existing tree id of every folder on an edited path, found top-down.
    existing: dict[str, str | None] = {"": root_id}
    for depth in range(max(f.count("/") + 1 if f else 0 for f in folders) + 1):
        at_depth = [f for f in folders if (f.count("/") + 1 if f else 0) == depth]
        ids = {existing[f] for f in at_depth if existing.get(f)}
        trees = load(i for i in ids if i)
        for folder in at_depth:
            tid = existing.get(folder)
            listing = {e.name: e for e in trees[tid]} if tid else {}
            for child in folders:
                if child and child.rpartition("/")[0] == folder:
                    entry = listing.get(child.rpartition("/")[2])
                    existing[child] = entry.digest if entry is not None and entry.is_tree else None
    removed_files = added_files = 0
    new_trees: dict[str, tuple[bytes, int]] = {}
    built: dict[str, Entry | None] = {}
    # Deepest first, so a folder's new subtrees are named before it is.
    for folder in sorted(folders, key=lambda f: (f.count("/") + 1) if f else 0, reverse=True):
        tid = existing.get(folder)
        listing = {e.name: e for e in load([tid])[tid]} if tid else {}
        changes = dict(by_folder.get(folder, {}))
        for child in folders:
            if child and child.rpartition("/")[0] == folder:
                changes[child.rpartition("/")[2]] = built[child]
        for name, entry in changes.items():
            old = listing.get(name)
            if name in by_folder.get(folder, {}):
                removed_files += _files_in(old, load)
                added_files += _files_in(entry, load)
            if entry is None:
                listing.pop(name, None)
            else:
                listing[name] = entry
        if not listing and folder:
            built[folder] = None  # an emptied folder goes with its last file
            continue
        entries = list(listing.values())
        data = treeformat.encode(entries)
        new_id = treeformat.tree_id(data)
        new_trees[new_id] = (data, len(entries))
        total = sum(e.size for e in entries)
        if folder:
            built[folder] = Entry(folder.rpartition("/")[2], treeformat.TREE, total, new_id)
        else:
            return BuiltTree(new_id, new_trees, file_count - removed_files + added_files, total)
    raise AssertionError("the root folder is always built")


def _files_in(entry: Entry | None, load: TreeLoader) -> int:
    """How many files `entry` is: one for a file, every file under a folder."""
    if entry is None or entry.kind == treeformat.LINK:
        return 0
    if not entry.is_tree:
        return 1
    count, level = 0, [entry.digest]
    while level:
        trees = load(set(level))
        following = []
        for tid in level:
            for child in trees[tid]:
                if child.is_tree:
                    following.append(child.digest)
                elif child.is_file:
                    count += 1
        level = following
    return count
