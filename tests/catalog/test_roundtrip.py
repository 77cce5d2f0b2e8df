"""A pushed tree comes back byte for byte, on both backends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.factories.files import tree_digests, write_random


@pytest.fixture(scope="session")
def big_tree(tmp_path_factory) -> Path:
    """Nested folders, empty files and folders, unicode names and names with
    spaces, an executable, a link, one 300 MiB file and 10,000 small files."""
    root = tmp_path_factory.mktemp("big") / "tree"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty folder").mkdir()
    (root / "a" / "empty.txt").write_bytes(b"")
    (root / "a" / "b" / "c" / "deep.txt").write_text("deep\n")
    (root / "naïve café ☕.txt").write_text("unicode name\n")
    (root / "name with spaces.csv").write_text("id,label\n1,cat\n")
    (root / "日本語").mkdir()
    (root / "日本語" / "データ.json").write_text(json.dumps({"ok": True}))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("a/b/c/deep.txt", root / "link-to-deep")
    write_random(root / "large" / "weights.bin", 300 * 1024 * 1024, seed=7)
    small = root / "small"
    for index in range(10_000):
        folder = small / f"{index // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"item-{index:05d}.txt").write_bytes(f"example {index}\n".encode() * (1 + index % 50))
    return root


@pytest.mark.slow
def test_push_pull_round_trip_is_byte_identical(strata, big_tree, tmp_path):
    report = json.loads(strata("push", str(big_tree), "corpus", "--json", "-m", "first"))
    assert report["created"] and report["semver"] == "1.0.0"
    assert report["file_count"] == 10_000 + 7

    dest = tmp_path / "out"
    strata("pull", "corpus", str(dest))
    assert tree_digests(dest) == tree_digests(big_tree)
    assert os.access(dest / "run.sh", os.X_OK)
    assert os.readlink(dest / "link-to-deep") == "a/b/c/deep.txt"

    again = json.loads(strata("push", str(big_tree), "corpus", "--json"))
    assert again["created"] is False
    assert again["version"] == report["version"]


def test_pushing_a_single_file_stores_it_under_its_name(strata, tmp_path):
    source = tmp_path / "labels.csv"
    source.write_text("id,label\n1,cat\n")
    strata("push", str(source), "labels")
    listing = json.loads(strata("ls", "labels", "--json"))
    assert [entry["name"] for entry in listing["entries"]] == ["labels.csv"]
    strata("pull", "labels", str(tmp_path / "out"))
    assert (tmp_path / "out" / "labels.csv").read_text() == "id,label\n1,cat\n"


def test_pull_into_an_existing_empty_folder_and_with_force(strata, tmp_path):
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "x.txt").write_text("one")
    strata("push", str(source), "ds")
    dest = tmp_path / "dest"
    dest.mkdir()
    strata("pull", "ds", str(dest))
    assert (dest / "d" / "x.txt").read_text() == "one"
    (source / "d" / "x.txt").write_text("two")
    strata("push", str(source), "ds")
    (dest / "mine.txt").write_text("kept")
    strata("pull", "ds", str(dest), "--force")
    assert (dest / "d" / "x.txt").read_text() == "two"
    assert (dest / "mine.txt").read_text() == "kept"
    assert not [name for name in os.listdir(dest) if name.startswith(".strata")]
