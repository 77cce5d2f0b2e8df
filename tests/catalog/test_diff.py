"""File-level compare of two versions: correct changes, and identical subtrees are
never loaded."""

from __future__ import annotations

import pytest

from catalog.selectors.diff import ADDED, MODIFIED, REMOVED, diff_trees, diff_versions
from strata_store import tree as treeformat
from tests.factories.datasets import push

F, X, L, D = treeformat.FILE, treeformat.EXECUTABLE, treeformat.LINK, treeformat.TREE


class Trees:
    """An in-memory tree store that records what was loaded."""

    def __init__(self) -> None:
        self.trees: dict[str, list[treeformat.Entry]] = {}
        self.loaded: list[str] = []

    def add(self, entries: list[treeformat.Entry]) -> str:
        data = treeformat.encode(entries)
        tree_id = treeformat.tree_id(data)
        self.trees[tree_id] = treeformat.decode(data)
        return tree_id

    def load(self, tree_ids):
        tree_ids = list(tree_ids)
        self.loaded.extend(tree_ids)
        return {tree_id: self.trees[tree_id] for tree_id in tree_ids}


def entry(name: str, kind: str = F, size: int = 1, digest: str = "a" * 64) -> treeformat.Entry:
    return treeformat.Entry(name, kind, size, digest)


def test_identical_subtrees_are_skipped_without_loading():
    trees = Trees()
    big = trees.add([entry(f"f{i}", digest=f"{i:064x}") for i in range(100)])
    old_docs = trees.add([entry("a.md", size=10, digest="1" * 64)])
    new_docs = trees.add([entry("a.md", size=14, digest="2" * 64), entry("b.md", size=3, digest="3" * 64)])
    old = trees.add([entry("big", D, 100, big), entry("docs", D, 10, old_docs), entry("gone.txt", size=7)])
    new = trees.add([entry("big", D, 100, big), entry("docs", D, 17, new_docs)])
    result = diff_trees(old, new, load=trees.load)
    assert [(c.path, c.status, c.size_delta) for c in result.changes] == [
        ("docs/a.md", MODIFIED, 4),
        ("docs/b.md", ADDED, 3),
        ("gone.txt", REMOVED, -7),
    ]
    assert big not in trees.loaded  # the shared folder was never read
    assert (result.added, result.removed, result.modified, result.size_delta) == (1, 1, 1, 0)
    assert (result.bytes_added, result.bytes_removed) == (3, 7)


def test_equal_roots_load_nothing():
    trees = Trees()
    root = trees.add([entry("x")])
    result = diff_trees(root, root, load=trees.load)
    assert result.unchanged and trees.loaded == []


def test_folders_appearing_and_disappearing_list_every_file_inside():
    trees = Trees()
    inner = trees.add([entry("deep.txt", size=5)])
    folder = trees.add([entry("a.txt", size=2), entry("inner", D, 5, inner)])
    old = trees.add([entry("old", D, 7, folder)])
    new = trees.add([entry("new", D, 7, folder)])
    result = diff_trees(old, new, load=trees.load)
    assert [(c.path, c.status) for c in result.changes] == [
        ("new/a.txt", ADDED),
        ("new/inner/deep.txt", ADDED),
        ("old/a.txt", REMOVED),
        ("old/inner/deep.txt", REMOVED),
    ]
    assert diff_trees(None, old, load=trees.load).added == 2


def test_kind_changes_count_file_to_folder_and_mode_changes():
    trees = Trees()
    inner = trees.add([entry("x.txt")])
    old = trees.add([entry("data"), entry("run.sh", F), entry("link", L, 0, "a")])
    new = trees.add([entry("data", D, 1, inner), entry("run.sh", X), entry("link", L, 0, "b")])
    result = diff_trees(old, new, load=trees.load)
    assert [(c.path, c.status) for c in result.changes] == [
        ("data", REMOVED),
        ("data/x.txt", ADDED),
        ("link", MODIFIED),
        ("run.sh", MODIFIED),
    ]


@pytest.mark.django_db
def test_diff_of_real_versions(personas, settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    files = {f"shard-{i}/part.csv": f"id\n{i}\n" for i in range(20)}
    first = push(tmp_path, "shards", files, user=personas["alice"])
    files["shard-3/part.csv"] = "id\n3\n33\n"
    files["shard-3/extra.csv"] = "id\n"
    second = push(tmp_path, "shards", files, user=personas["alice"])
    result = diff_versions(first, second)
    assert [(c.path, c.status) for c in result.changes] == [
        ("shard-3/extra.csv", ADDED),
        ("shard-3/part.csv", MODIFIED),
    ]
    # The root on each side and the one changed folder on each side: 4 of 42 trees.
    assert result.trees_loaded == 4
