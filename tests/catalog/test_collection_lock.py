"""A push that reuses stored chunks and garbage collection never lose data between
them (catalog.services.collection).

A push finds a chunk already stored and does not store it again. If a retention
run decides that chunk is dead and deletes it before the push's version exists, the
version must not be committed: otherwise it would name bytes that are gone.
"""

from __future__ import annotations

import pytest

from catalog.errors import ConflictError
from catalog.models import Dataset, Version
from catalog.services import versions
from catalog.services.collection import collecting
from catalog.services.pull import version_pull
from catalog.services.verify import store_verify
from catalog.services.versions import version_push
from lifecycle.models import RetentionRun
from lifecycle.services.retention import retention_advance, retention_plan
from tests.factories.files import tree_digests, write_random
from tests.factories.retention import Calendar, day


def _doomed_file(tmp_path):
    """A file stored only by a version on an experiment branch, which the next
    retention run expires and whose pack it deletes; and that run, planned."""
    from catalog.models import Pack

    cal = Calendar(tmp_path / "work")
    s0 = cal.push("main", 0, {"s0.bin": 100}, dataset="trials")
    cal.branch("trials", "exp/x", s0)
    folder = tmp_path / "big"
    write_random(folder / "big.bin", 400_000, 7)
    gone = version_push(path=str(folder), dataset_name="trials", author="alice", branch="exp/x").version
    Version.objects.filter(pk=gone.pk).update(created=day(1))
    Pack.objects.update(created=day(0), tier_since=day(0))
    run = retention_plan(now=day(40))
    assert run.state == RetentionRun.State.APPROVED
    assert run.actions.get("delete")
    return folder, run


@pytest.mark.usefixtures("retention_store")
def test_a_push_whose_reused_chunks_are_collected_before_it_commits_commits_nothing(tmp_path, monkeypatch):
    folder, run = _doomed_file(tmp_path)
    commit = versions.version_commit

    def collect_then_commit(request):
        # The push has found its chunks stored; the collector runs now, before the
        # version exists, and deletes them.
        assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE
        return commit(request)

    monkeypatch.setattr(versions, "version_commit", collect_then_commit)
    with pytest.raises(ConflictError, match="garbage collection removed .* nothing was committed"):
        version_push(path=str(folder), dataset_name="copies", author="alice")
    assert not Dataset.objects.filter(name="copies").exists()

    monkeypatch.setattr(versions, "version_commit", commit)
    again = version_push(path=str(folder), dataset_name="copies", author="alice").version
    assert store_verify(versions=[again], list_unreferenced=False).ok
    version_pull(version=again, dest=str(tmp_path / "out"))
    assert tree_digests(tmp_path / "out") == tree_digests(folder)


@pytest.mark.usefixtures("retention_store")
def test_a_push_committed_before_the_collection_keeps_its_chunks(tmp_path):
    folder, run = _doomed_file(tmp_path)
    kept = version_push(path=str(folder), dataset_name="copies", author="alice").version
    assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE
    assert store_verify(versions=[kept], list_unreferenced=False).ok
    version_pull(version=kept, dest=str(tmp_path / "out"))
    assert tree_digests(tmp_path / "out") == tree_digests(folder)


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_a_commit_waits_for_a_running_collection_then_refuses_in_one_sentence(cli, tmp_path):
    folder = tmp_path / "data"
    write_random(folder / "a.bin", 300_000, 3)
    cli("push", str(folder), "first", check=True)
    with collecting():
        # Everything of a.bin is stored: this push only reuses, and must wait.
        waited = cli("push", str(folder), "second", env_extra={"STRATA_COLLECTION_WAIT_SECONDS": "1"})
    assert waited.returncode == 1, waited.stderr
    assert "garbage collection has been running" in waited.stderr
    assert "nothing was committed" in waited.stderr
    assert not Dataset.objects.filter(name="second").exists()
    assert cli("push", str(folder), "second").returncode == 0
    assert Dataset.objects.filter(name="second").exists()
