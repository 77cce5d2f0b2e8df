"""Invariant 3: a branch moves only by compare-and-swap; no commit is lost."""

from __future__ import annotations

import json

import pytest

from catalog.errors import ConflictError
from catalog.models import Branch, Version
from catalog.selectors import version_log
from catalog.services.versions import version_push
from tests.factories.files import write_random


class _PushInTheMiddle:
    """A progress sink that, when the first push has stored its data and is about
    to commit, lets a second push land first."""

    def __init__(self, other_path: str) -> None:
        self.other_path = other_path
        self.other = None

    def start(self, files: int, nbytes: int) -> None:
        pass

    def advance(self, files: int, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        self.other = version_push(path=self.other_path, dataset_name="shared", author="bob", message="bob's")


def test_a_push_whose_branch_moved_meanwhile_is_refused_and_loses_nothing(db, store_url, tmp_path):
    for name in ("base", "alice", "bob"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.txt").write_text(f"{name}\n")
    base = version_push(path=str(tmp_path / "base"), dataset_name="shared", author="carol").version

    sink = _PushInTheMiddle(str(tmp_path / "bob"))
    with pytest.raises(ConflictError, match="moved while you were pushing"):
        version_push(
            path=str(tmp_path / "alice"),
            dataset_name="shared",
            author="alice",
            message="alice's",
            progress=sink,
        )
    head = Branch.objects.get(name="main").head
    assert head == sink.other.version
    assert [v.message for v in version_log(head)] == ["bob's", ""]
    assert version_log(head)[-1] == base

    retried = version_push(
        path=str(tmp_path / "alice"), dataset_name="shared", author="alice", message="alice's"
    )
    assert retried.created and retried.version.parent == head
    assert retried.new_bytes == 0  # the data was stored by the refused push


def test_two_processes_pushing_to_one_branch_never_lose_a_version(cli, tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "x.txt").write_text("base")
    cli("push", str(tmp_path / "base"), "race", check=True)
    for name in ("one", "two"):
        write_random(tmp_path / name / "payload.bin", 8 * 1024 * 1024, seed=len(name) + ord(name[0]))
    for _round in range(3):
        first = cli.popen("push", str(tmp_path / "one"), "race", "-m", "one", "--json")
        second = cli.popen("push", str(tmp_path / "two"), "race", "-m", "two", "--json")
        outcomes = []
        for process in (first, second):
            stdout, stderr = process.communicate(timeout=120)
            if process.returncode == 0:
                outcomes.append(json.loads(stdout))
            else:
                assert process.returncode == 1, stderr
                assert "push again" in stderr and "Traceback" not in stderr
        assert outcomes, "at least one push lands"
        landed = {outcome["version"] for outcome in outcomes if outcome["created"]}
        head = Branch.objects.get(dataset__name="race", name="main").head
        history = {version.id for version in version_log(head)}
        assert landed <= history
        (tmp_path / "one" / "round.txt").write_text(str(_round))
        (tmp_path / "two" / "round.txt").write_text(str(_round))
    assert Version.objects.filter(dataset__name="race").count() == len(history)
    assert cli("verify").returncode == 0
