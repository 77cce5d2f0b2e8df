"""The command line as a user meets it: versions, refs, history, listings, JSON."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from catalog.models import AuditEvent
from tests.factories.files import ROOT, write_random


def _push(strata, path, dataset, *extra):
    return json.loads(strata("push", str(path), dataset, "--json", *extra))


def test_semantic_versions_start_at_one_and_bump_minor(strata, tmp_path):
    source = tmp_path / "d"
    source.mkdir()
    (source / "a.txt").write_text("1")
    assert _push(strata, source, "sv")["semver"] == "1.0.0"
    (source / "a.txt").write_text("2")
    assert _push(strata, source, "sv")["semver"] == "1.1.0"
    (source / "a.txt").write_text("3")
    assert _push(strata, source, "sv", "--semver", "2.0.0")["semver"] == "2.0.0"
    (source / "a.txt").write_text("4")
    assert _push(strata, source, "sv")["semver"] == "2.1.0"


def test_log_lists_versions_newest_first_with_their_fields(strata, tmp_path):
    source = tmp_path / "d"
    source.mkdir()
    for index, stage in enumerate(["raw", "cleaned", "labelled"]):
        (source / "data.txt").write_text(str(index))
        _push(strata, source, "logged", "-m", f"step {index}", "--stage", stage, "--author", "alice")
    log = json.loads(strata("log", "logged", "--json"))
    assert [entry["message"] for entry in log] == ["step 2", "step 1", "step 0"]
    assert [entry["stage"] for entry in log] == ["labelled", "cleaned", "raw"]
    assert {"id", "semver", "message", "author", "created", "stage"} <= set(log[0])
    assert log[0]["author"] == "alice" and log[1]["parent"] == log[2]["id"]
    assert "step 2" in strata("log", "logged").splitlines()[0]


def test_every_kind_of_ref_resolves(strata, tmp_path):
    source = tmp_path / "d"
    source.mkdir()
    (source / "v.txt").write_text("one")
    first = _push(strata, source, "refs")
    (source / "v.txt").write_text("two")
    second = _push(strata, source, "refs")
    strata("tag", f"refs@{first['version'][:8]}", "golden-v1")
    strata("branch", "refs", "exp/filter", "--from", "1.0.0")
    for ref, expected in [
        ("", second),
        ("@main", second),
        ("@1.0.0", first),
        ("@v1.1.0", second),
        ("@golden-v1", first),
        ("@exp/filter", first),
        (f"@{second['version'][:10]}", second),
    ]:
        dest = tmp_path / f"out{abs(hash(ref))}"
        result = json.loads(strata("pull", f"refs{ref}", str(dest), "--json"))
        assert result["version"] == expected["version"], ref
        assert (dest / "v.txt").read_text() == ("one" if expected is first else "two")


def test_a_branch_gets_its_own_history(strata, tmp_path):
    source = tmp_path / "d"
    source.mkdir()
    (source / "x.txt").write_text("base")
    _push(strata, source, "br")
    strata("branch", "br", "exp/new-filter")
    (source / "x.txt").write_text("filtered")
    pushed = _push(strata, source, "br", "--branch", "exp/new-filter", "-m", "try a filter")
    assert pushed["branch"] == "exp/new-filter" and pushed["semver"] == "1.1.0"
    assert len(json.loads(strata("log", "br", "--json"))) == 1
    assert len(json.loads(strata("log", "br", "--branch", "exp/new-filter", "--json"))) == 2


def test_unchanged_content_makes_no_version_and_says_so(strata, tmp_path):
    source = tmp_path / "d"
    source.mkdir()
    (source / "x.txt").write_text("same")
    _push(strata, source, "same")
    text = strata("push", str(source), "same")
    assert text.startswith("No changes: same@main already holds this content as 1.0.0")
    assert len(json.loads(strata("log", "same", "--json"))) == 1


def test_ls_datasets_and_tag_output(strata, tmp_path):
    source = tmp_path / "d"
    (source / "images" / "cat").mkdir(parents=True)
    (source / "images" / "cat" / "1.png").write_bytes(b"\x89PNG" + b"0" * 100)
    (source / "labels.csv").write_text("id,label\n")
    _push(strata, source, "pets")
    root = json.loads(strata("ls", "pets", "--json"))
    assert [(e["name"], e["type"]) for e in root["entries"]] == [("images", "folder"), ("labels.csv", "file")]
    assert root["entries"][0]["size"] == 104
    inner = json.loads(strata("ls", "pets@1.0.0", "images/cat", "--json"))
    assert inner["entries"][0]["name"] == "1.png" and len(inner["entries"][0]["digest"]) == 64
    listed = json.loads(strata("datasets", "--json"))
    assert listed == [
        {
            "name": "pets",
            "default_branch": "main",
            "versions": 1,
            "head": root["version"],
            "semver": "1.0.0",
            "file_count": 2,
            "logical_bytes": 113,
            "updated": listed[0]["updated"],
        }
    ]
    assert "Tagged pets@1.0.0" in strata("tag", "pets@main", "reviewed")


def test_every_change_is_in_the_audit_log(strata, tmp_path):
    source = tmp_path / "d"
    source.mkdir()
    (source / "x.txt").write_text("x")
    _push(strata, source, "audited", "--author", "alice")
    strata("tag", "audited@main", "t1", "--author", "bob")
    strata("branch", "audited", "exp/a", "--author", "carol")
    events = list(AuditEvent.objects.order_by("created").values_list("actor", "action"))
    assert events == [
        ("alice", "dataset.create"),
        ("alice", "version.create"),
        ("bob", "tag.create"),
        ("carol", "branch.create"),
    ]


def test_a_long_push_draws_a_progress_bar_on_a_terminal(cli, tmp_path):
    write_random(tmp_path / "d" / "big.bin", 400 * 1024 * 1024, seed=3)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "strata", "push", str(tmp_path / "d"), "bar"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=str(ROOT),
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            piece = os.read(leader, 4096)
        except OSError:
            break
        if not piece:
            break
        drawn += piece
    process.wait()
    assert process.returncode == 0
    assert b"push [" in drawn and b"%" in drawn and b"files" in drawn


def test_json_output_is_machine_readable_on_errors_too(cli, tmp_path):
    result = cli("pull", "nothing-here", str(tmp_path / "x"), "--json")
    assert result.returncode == 2 and result.stdout == ""


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(strata, tmp_path):
    """The stat cache must never hide a change: restoring the old mtime after an
    edit of the same size still changes the inode's ctime, which is compared."""
    source = tmp_path / "d"
    source.mkdir()
    data = source / "data.bin"
    data.write_bytes(b"A" * 10_000)
    past = 1_600_000_000
    os.utime(data, (past, past))
    first = _push(strata, source, "sneaky")
    assert _push(strata, source, "sneaky")["created"] is False  # cached now
    data.write_bytes(b"B" * 10_000)
    os.utime(data, (past, past))
    second = _push(strata, source, "sneaky")
    assert second["created"] and second["version"] != first["version"]
    out = tmp_path / "out"
    strata("pull", "sneaky", str(out))
    assert (out / "data.bin").read_bytes() == b"B" * 10_000


def test_history_brought_from_another_tool_keeps_its_dates(strata, tmp_path):
    from catalog.models import Version
    from catalog.services.commits import version_id_for

    source = tmp_path / "d"
    source.mkdir()
    (source / "a.txt").write_text("first")
    first = _push(strata, source, "dated", "--date", "2025-03-01T09:00:00Z")
    (source / "a.txt").write_text("second")
    second = _push(strata, source, "dated", "--date", "2025-04-01T09:00:00+02:00")
    log = json.loads(strata("log", "dated", "--json"))
    assert [entry["created"][:19] for entry in log] == ["2025-04-01T07:00:00", "2025-03-01T09:00:00"]
    # The date is part of what the id names, as for any version.
    version = Version.objects.get(id=second["version"])
    assert version.parent_id == first["version"]
    assert (
        version_id_for(
            {
                "dataset": "dated",
                "tree": version.tree_id,
                "parents": [first["version"]],
                "author": version.author,
                "message": "",
                "created": version.created.isoformat(),
                "semver": version.semver,
                "stage": version.stage,
            }
        )
        == version.id
    )
