"""Bad input: one sentence on stderr, exit code 2, and nothing changed."""

from __future__ import annotations

import json
import os

import pytest

from catalog.models import AuditEvent, Branch, Dataset, Tree, Version
from catalog.services.commits import version_id_for
from catalog.store import tree_row
from strata_store import tree as treeformat
from strata_store.hashing import EMPTY_DIGEST


def _state() -> tuple:
    return (
        Dataset.objects.count(),
        Version.objects.count(),
        list(Branch.objects.values_list("name", "head_id")),
        AuditEvent.objects.count(),
    )


def _assert_refused(result, *phrases: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in message, message


@pytest.fixture
def pushed(cli, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    cli("push", str(source), "good", check=True)
    return source


def test_missing_path(cli, pushed, tmp_path):
    before = _state()
    _assert_refused(cli("push", str(tmp_path / "nope"), "good"), "does not exist")
    assert _state() == before


def test_symlink_pointing_outside_the_pushed_tree_is_refused(cli, pushed, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the dataset")
    os.symlink(secret, pushed / "escape")
    before = _state()
    _assert_refused(cli("push", str(pushed), "good"), "escape", "points outside")
    os.unlink(pushed / "escape")
    os.symlink("../secret.txt", pushed / "sneaky")
    _assert_refused(cli("push", str(pushed), "good"), "sneaky")
    assert _state() == before


def test_a_chain_of_links_that_leads_out_of_the_pushed_folder_is_refused(cli, pushed, tmp_path):
    # `d/up` is the pushed folder itself, so `esc` names the folder above it.
    (pushed / "d").mkdir()
    os.symlink("..", pushed / "d" / "up")
    os.symlink("d/up/../secret.txt", pushed / "esc")
    before = _state()
    _assert_refused(cli("push", str(pushed), "good"), "the link esc points outside the folder")
    assert _state() == before


def test_paths_no_filesystem_can_pull_are_refused_at_push(cli, pushed, tmp_path):
    """A folder may nest deeper than a pull could write (every name is under 255
    bytes, as the local filesystem insists, but the path is over 3072), and names
    may hold a backslash, which a Windows pull would take as a separator."""
    deep = pushed / "deep"
    for _ in range(13):
        deep = deep / ("d" * 250)
    deep.mkdir(parents=True)
    (deep / "a.txt").write_text("far down")
    before = _state()
    _assert_refused(cli("push", str(pushed), "good"), "is not a safe path", "over the 3072 allowed")
    for path in sorted((pushed / "deep").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (pushed / "deep").rmdir()
    (pushed / "dir\\file.txt").write_text("x")
    _assert_refused(cli("push", str(pushed), "good"), "'dir\\\\file.txt' is not a safe path", "backslash")
    assert _state() == before


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["pull", "nosuch", "DEST"], "no dataset named 'nosuch'"),
        (["pull", "good@nosuchref", "DEST"], "no branch, tag, version or id 'nosuchref'"),
        (["pull", "good@9.9.9", "DEST"], "'9.9.9'"),
        (["log", "nosuch"], "no dataset"),
        (["log", "good", "--branch", "nope"], "no branch 'nope'"),
        (["ls", "good", "missing/path"], "missing is not in good@1.0.0"),
        (["tag", "good@nosuchref", "v1"], "nosuchref"),
        (["tag", "good", "v1"], "DATASET@REF"),
        (["branch", "good", "exp", "--from", "zzz"], "'zzz'"),
        (["verify", "nosuch"], "no dataset"),
    ],
)
def test_unknown_dataset_or_ref(cli, pushed, tmp_path, args, phrase):
    args = [str(tmp_path / "dest") if arg == "DEST" else arg for arg in args]
    before = _state()
    _assert_refused(cli(*args), phrase)
    assert _state() == before
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("semver", ["1.2", "one.two.three", "1.2.3-beta", "01.2.3"])
def test_invalid_semver(cli, pushed, semver):
    (pushed / "b.txt").write_text("b")
    before = _state()
    _assert_refused(cli("push", str(pushed), "good", "--semver", semver), "not a semantic version")
    assert _state() == before


def test_semver_not_newer_or_taken_is_refused(cli, pushed):
    (pushed / "b.txt").write_text("b")
    before = _state()
    _assert_refused(cli("push", str(pushed), "good", "--semver", "0.9.0"), "not newer")
    _assert_refused(cli("push", str(pushed), "good", "--semver", "1.0.0"), "not newer")
    assert _state() == before


def test_invalid_names(cli, pushed):
    _assert_refused(cli("push", str(pushed), "bad name!"), "not a valid dataset name")
    _assert_refused(cli("push", str(pushed), "good", "--branch", "../x"), "not a valid branch name")
    _assert_refused(cli("push", str(pushed), "good", "--branch", "exp/new"), "has no branch exp/new")
    _assert_refused(cli("push", str(pushed), "good", "--stage", "baked"), "invalid choice")


def test_unwritable_or_non_empty_destination(cli, pushed, tmp_path):
    # Root may write almost anywhere; sysfs refuses new entries even to root.
    _assert_refused(cli("pull", "good", "/sys/strata-dest"), "cannot write to /sys/strata-dest")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    _assert_refused(cli("pull", "good", str(occupied)), "not empty", "--force")
    assert os.listdir(occupied) == ["keep.txt"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    _assert_refused(cli("pull", "good", str(a_file)), "not a folder")
    _assert_refused(cli("pull", "good", str(tmp_path / "no" / "parent")), "parent folder does not exist")


def _forged_version(root, *, logical_bytes: int) -> None:
    """Version 6.6.6 of "good" on tree `root`, written straight into the catalog
    as something other than Strata (a tampered database) would."""
    good = Dataset.objects.get(name="good")
    head = Branch.objects.get(dataset=good, name="main").head
    fields = {"dataset": "good", "tree": root.id, "parents": [head.id], "semver": "6.6.6"}
    Version.objects.create(
        id=version_id_for(fields),
        dataset=good,
        parent=head,
        tree=root,
        author="mallory",
        semver="6.6.6",
        semver_major=6,
        semver_minor=6,
        semver_patch=6,
        file_count=1,
        logical_bytes=logical_bytes,
    )


@pytest.mark.parametrize(
    "evil",
    [
        treeformat.Entry("..", "f", 5, "0" * 64),
        treeformat.Entry("/etc", "f", 5, "0" * 64),
        treeformat.Entry("a/../../escape", "f", 5, "0" * 64),
        treeformat.Entry("link", "l", 0, "../../outside"),
        treeformat.Entry("abs-link", "l", 0, "/etc/passwd"),
        treeformat.Entry("n" * 300, "f", 5, "0" * 64),
    ],
)
def test_a_stored_tree_with_escaping_paths_is_refused_at_pull(cli, pushed, tmp_path, evil):
    """A tree written by something other than Strata (a tampered database, a hostile
    remote) that names `..` or absolute paths is refused before anything is written."""
    payload = [[evil.name, evil.kind, evil.size, evil.digest], ["fine.txt", "f", 0, EMPTY_DIGEST]]
    data = json.dumps(sorted(payload), separators=(",", ":")).encode()
    row = tree_row(data, 2)
    row.save()
    _forged_version(row, logical_bytes=5)
    dest = tmp_path / "deep" / "dest"
    dest.parent.mkdir()
    before = sorted(os.listdir(tmp_path))
    _assert_refused(cli("pull", "good@6.6.6", str(dest)), "refusing")
    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(tmp_path / "deep") == []
    assert Tree.objects.filter(id=row.id).exists()


def test_a_stored_link_chain_that_leads_out_of_the_folder_is_refused_at_pull(cli, pushed, tmp_path):
    """Trees made by something other than Strata: `d/up` is the root, so `esc`
    would be written pointing above the pulled folder."""
    subtree = tree_row(json.dumps([["up", "l", 0, ".."]], separators=(",", ":")).encode(), 1)
    subtree.save()
    payload = [
        ["d", "d", 0, subtree.id],
        ["esc", "l", 0, "d/up/../outside"],
        ["fine.txt", "f", 0, EMPTY_DIGEST],
    ]
    root = tree_row(json.dumps(sorted(payload), separators=(",", ":")).encode(), 3)
    root.save()
    _forged_version(root, logical_bytes=0)
    dest = tmp_path / "dest"
    _assert_refused(
        cli("pull", "good@6.6.6", str(dest)),
        "refusing to pull good@6.6.6: the link esc points outside the folder",
        "nothing was written",
    )
    assert not dest.exists() and not [name for name in os.listdir(tmp_path) if name.startswith(".strata")]


def test_a_commit_date_out_of_order_or_without_a_zone_is_refused(cli, pushed):
    (pushed / "a.txt").write_text("changed\n")
    before = _state()
    _assert_refused(
        cli("push", str(pushed), "good", "--date", "2001-01-01T00:00:00Z"), "before the branch head"
    )
    _assert_refused(cli("push", str(pushed), "good", "--date", "2999-01-01T00:00:00Z"), "in the future")
    _assert_refused(cli("push", str(pushed), "good", "--date", "2026-01-01T00:00:00"), "no time zone")
    _assert_refused(cli("push", str(pushed), "good", "--date", "last tuesday"), "is not a date")
    assert _state() == before
