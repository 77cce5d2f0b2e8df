"""The three-way merge of folders (catalog.domain.merge), on trees held in memory."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.domain.merge import MergeRules, merge_trees, tree_edit
from strata_store import tree as treeformat
from strata_store.hashing import digest_hex
from strata_store.tree import Entry


class Trees:
    """Trees built from {path: content}, and the loader the merge reads them with."""

    def __init__(self) -> None:
        self.stored: dict[str, list[Entry]] = {}
        self.loads = 0

    def build(self, files: dict[str, str]) -> str:
        children: dict[str, dict[str, Entry]] = defaultdict(dict)
        folders = {""}
        for path, content in files.items():
            parent, _, name = path.rpartition("/")
            children[parent][name] = Entry(name, treeformat.FILE, len(content), digest_hex(content.encode()))
            while parent:
                folders.add(parent)
                parent = parent.rpartition("/")[0]
        root = ""
        for folder in sorted(folders, key=lambda f: f.count("/") + (f != ""), reverse=True):
            entries = list(children[folder].values())
            data = treeformat.encode(entries)
            tid = treeformat.tree_id(data)
            self.stored[tid] = treeformat.decode(data)
            if folder:
                parent, _, name = folder.rpartition("/")
                children[parent][name] = Entry(name, treeformat.TREE, sum(e.size for e in entries), tid)
            else:
                root = tid
        return root

    def load(self, ids) -> dict[str, list[Entry]]:
        self.loads += 1
        return {i: self.stored[i] for i in set(ids)}

    def files(self, root: str, prefix: str = "") -> dict[str, str]:
        out = {}
        for entry in self.stored[root]:
            path = f"{prefix}{entry.name}"
            if entry.is_tree:
                out.update(self.files(entry.digest, path + "/"))
            else:
                out[path] = entry.digest
        return out


def _digests(files: dict[str, str]) -> dict[str, str]:
    return {path: digest_hex(content.encode()) for path, content in files.items()}


def _merge(trees: Trees, base: dict, target: dict, source: dict, **rules):
    b, t, s = trees.build(base), trees.build(target), trees.build(source)
    result = merge_trees(b, t, s, load=trees.load, rules=MergeRules(**rules))
    edits = {c.path: c.source for c in result.changes if c.outcome == "source" or c.taken == "source"}
    built = tree_edit(t, edits, load=trees.load, file_count=len(target))
    for tid, (data, _) in built.trees.items():
        trees.stored[tid] = treeformat.decode(data)
    return result, built


def test_changes_on_one_side_are_taken_and_folders_are_rebuilt_only_where_edited():
    trees = Trees()
    base = {"a": "1", "d/x": "x", "d/y": "y", "e/z": "z"}
    target = {**base, "a": "2"}
    source = {"a": "1", "d/x": "x2", "d/new/deep": "n", "e/z": "z", "f/g": "g"}
    result, built = _merge(trees, base, target, source)
    assert result.conflicts == []
    assert trees.files(built.root_id) == _digests(
        {"a": "2", "d/x": "x2", "d/new/deep": "n", "e/z": "z", "f/g": "g"}
    )
    assert built.file_count == 5
    assert built.logical == sum(len(v) for v in ["2", "x2", "n", "z", "g"])


def test_a_folder_emptied_by_the_merge_goes_and_a_file_can_replace_a_folder():
    trees = Trees()
    base = {"a": "1", "d/x": "x"}
    result, built = _merge(trees, base, {**base, "a": "2"}, {"a": "1"})
    assert trees.files(built.root_id) == _digests({"a": "2"})
    assert built.file_count == 1


def test_conflicts_name_how_the_sides_differ():
    trees = Trees()
    base = {"a": "1", "b": "1", "c": "1"}
    target = {"a": "t", "b": "t", "n": "t"}
    source = {"a": "s", "c": "s", "n": "s"}
    result, _ = _merge(trees, base, target, source)
    assert {c.path: c.reason for c in result.conflicts} == {
        "a": "changed on both sides",
        "b": "changed on target, deleted on source",
        "c": "deleted on target, changed on source",
        "n": "added on both sides",
    }


def test_unchanged_subtrees_are_never_opened():
    trees = Trees()
    big = {f"big/{i:04d}": str(i) for i in range(2000)}
    base = {**big, "small/a": "1"}
    trees.build(base)
    result, _ = _merge(trees, base, {**base, "small/a": "2"}, {**base, "small/b": "3"})
    assert [c.path for c in result.changes] == ["small/b"]
    # One load per level walked (root, small), and the edit's own: big/ is never listed.
    assert trees.loads <= 6


def test_a_table_with_a_key_is_left_to_the_row_merge_and_one_without_is_a_conflict():
    trees = Trees()
    base = {"t.csv": "1", "u.csv": "1"}
    rules = {"keys": {"t.csv": "id"}, "is_table": lambda p: p.endswith(".csv")}
    result, _ = _merge(trees, base, {"t.csv": "2", "u.csv": "2"}, {"t.csv": "3", "u.csv": "3"}, **rules)
    assert [(c.path, c.outcome, c.key) for c in result.changes] == [
        ("t.csv", "rows", "id"),
        ("u.csv", "conflict", None),
    ]


def test_the_longest_path_strategy_wins():
    rules = MergeRules(strategy="target", path_strategies={"data": "source", "data/keep": "target"})
    assert rules.strategy_for("data/x") == "source"
    assert rules.strategy_for("data/keep/y") == "target"
    assert rules.strategy_for("database") == "target"


names = st.sampled_from(["a", "b", "c", "d/x", "d/y", "e/f/g"])
contents = st.sampled_from(["0", "1", "2"])
edits = st.dictionaries(names, st.one_of(st.none(), contents), max_size=6)


def _apply(files: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    out = dict(files)
    for path, content in changes.items():
        if content is None:
            out.pop(path, None)
        else:
            out[path] = content
    return out


@settings(max_examples=150, deadline=None)
@given(base=st.dictionaries(names, contents, min_size=1, max_size=6), mine=edits, theirs=edits)
def test_a_merge_without_conflicts_applies_both_edit_sets(base, mine, theirs):
    target, source = _apply(base, mine), _apply(base, theirs)
    if not target or not source:
        return
    trees = Trees()
    result, built = _merge(trees, base, target, source)
    if result.conflicts:
        return
    expected = dict(base)
    for side in (target, source):
        for path in set(base) | set(side):
            if base.get(path) != side.get(path):
                if side.get(path) is None:
                    expected.pop(path, None)
                else:
                    expected[path] = side[path]
    assert trees.files(built.root_id) == _digests(expected)
    assert built.file_count == len(expected)
