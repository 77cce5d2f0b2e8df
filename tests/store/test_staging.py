"""Staging folders: a destination is refused in one sentence before anything is
written, and a verified folder lands whole (renamed, or merged with --force)."""

from __future__ import annotations

import os

import pytest

from strata_store.staging import DestinationError, publish, staging_for


def test_a_new_destination_is_the_staging_folder_renamed(tmp_path):
    dest = tmp_path / "out"
    staging, existed = staging_for(str(dest), force=False)
    assert not existed and os.path.dirname(staging) == str(tmp_path)
    (tmp_path / staging / "a.txt").write_text("a")
    publish(staging, str(dest), existed)
    assert (dest / "a.txt").read_text() == "a" and not os.path.exists(staging)


def test_force_merges_into_a_folder_replacing_same_named_entries(tmp_path):
    dest = tmp_path / "out"
    (dest / "keep").mkdir(parents=True)
    (dest / "keep" / "old.txt").write_text("old")
    (dest / "replaced").write_text("a file where the version has a folder")
    with pytest.raises(DestinationError, match="is not empty; pull into an empty folder, or pass --force"):
        staging_for(str(dest), force=False)
    staging, existed = staging_for(str(dest), force=True)
    assert existed and os.path.dirname(staging) == str(dest)
    os.makedirs(os.path.join(staging, "replaced"))
    (tmp_path / staging / "replaced" / "new.txt").write_text("new")
    os.makedirs(os.path.join(staging, "keep"))
    (tmp_path / staging / "keep" / "added.txt").write_text("added")
    publish(staging, str(dest), existed)
    assert sorted(os.listdir(dest)) == ["keep", "replaced"]
    assert sorted(os.listdir(dest / "keep")) == ["added.txt", "old.txt"]
    assert (dest / "replaced" / "new.txt").read_text() == "new"


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda root: (root / "file").write_text("x") and root / "file", "exists and is not a folder"),
        (lambda root: root / "missing" / "out", "its parent folder does not exist"),
    ],
)
def test_a_destination_that_cannot_take_the_files_is_refused(tmp_path, make, phrase):
    dest = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(DestinationError, match=phrase):
        staging_for(str(dest), force=True, verb="reproduce")
    assert sorted(os.listdir(tmp_path)) == before  # no staging folder left behind


def test_the_verb_names_what_the_folder_is_for(tmp_path):
    (tmp_path / "x").write_text("x")
    with pytest.raises(DestinationError, match="reproduce into an empty folder"):
        staging_for(str(tmp_path), force=False, verb="reproduce")
