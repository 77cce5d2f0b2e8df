"""Retention against the real catalog and store, on a simulated clock.

Pushes happen now; their rows are then dated on a simulated calendar (day 0 is
T0) and every plan is made with `now=` a day of that calendar, so 400 days pass
in seconds without patching time anywhere.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from catalog.errors import RestoreInProgress, UserError
from catalog.models import AuditEvent, Branch, Pack, Version
from catalog.services.pull import version_pull
from catalog.services.refs import branch_create
from catalog.services.verify import store_verify
from catalog.services.versions import version_push
from catalog.store import get_backend
from lifecycle.models import RetentionRun
from lifecycle.services.retention import retention_advance, retention_approve, retention_plan
from tests.factories.files import tree_digests, write_random
from tests.factories.retention import Calendar, day, default_policies, pack_of, run_retention, tier


def test_four_hundred_days_of_pushes_move_expire_and_delete_as_the_policies_say(retention_store, tmp_path):
    cal = Calendar(tmp_path / "work")
    v1 = cal.push("main", 0, {"m1.bin": 1})
    v2 = cal.push("main", 100, {"m2.bin": 2})
    v3 = cal.push("main", 300, {"m2.bin": 2, "m3.bin": 3})
    # Experiments live in a second dataset, branched from its first version.
    s0 = cal.push("main", 0, {"s0.bin": 100}, dataset="trials")
    cal.branch("trials", "exp/a", s0)
    e1 = cal.push("exp/a", 50, {"e1.bin": 11}, dataset="trials")
    e2 = cal.push("exp/a", 60, {"e1.bin": 11, "e2.bin": 12}, dataset="trials")
    Version.objects.filter(pk=e1.pk).update(golden=True)
    cal.branch("trials", "exp/b", s0)
    b1 = cal.push("exp/b", 380, {"b1.bin": 21}, dataset="trials")
    p1, p2, p3 = pack_of(v1, "m1.bin"), pack_of(v3, "m2.bin"), pack_of(v3, "m3.bin")
    pe1, pe2, pb1 = pack_of(e2, "e1.bin"), pack_of(e2, "e2.bin"), pack_of(b1, "b1.bin")
    assert len({p1, p2, p3, pe1, pe2, pb1}) == 6
    backend = get_backend()

    run = run_retention(400)
    assert run.state == RetentionRun.State.DONE, run.error
    expired = set(Version.objects.filter(expired__isnull=False).values_list("id", flat=True))
    # exp/a last committed on day 60, so its versions expired on day 90 — but the
    # golden e1 is protected; exp/b committed on day 380 keeps its head to day 410.
    assert expired == {e2.pk}
    assert run.report["versions_expired"] == 1
    assert [item["pack"] for item in run.report["deleting"]] == [pe2]
    assert run.report["freed_bytes"]["hot"] == run.report["deleting"][0]["bytes"]
    assert tier(pe2) is None and backend.pack_size(pe2) is None  # rows and bytes gone
    assert tier(pe1) == "hot"  # golden; exp/* has no tiering
    assert tier(p1) == "cold"  # only v1, idle 400 days, reaches it
    assert tier(p2) == "warm"  # v2 alone would be cold; v3, idle 100 days, needs warm
    assert tier(p3) == "warm"
    assert tier(pb1) == "hot"
    assert backend.tier_of(p1) == "cold" and backend.tier_of(p2) == "warm"
    assert v2.pk not in expired
    # Every kept version still verifies, once its cold packs are restored.
    for pack_id in Pack.objects.filter(tier="cold").values_list("id", flat=True):
        backend.request_restore(pack_id)
    backend.restore_seconds = 0
    kept = list(Version.objects.filter(expired__isnull=True).select_related("dataset"))
    assert store_verify(versions=kept, list_unreferenced=False).ok
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"retention.plan", "version.expire", "pack.tier", "pack.delete", "retention.done"} <= actions


def test_daily_runs_over_four_hundred_days_give_the_expected_moves(retention_store, tmp_path):
    """The same calendar, with a run every 10 simulated days as pushes happen."""
    cal = Calendar(tmp_path / "work")
    moves: list[tuple[int, str, str, str]] = []
    pushes = {
        0: [("reviews", "main", {"m1.bin": 1}), ("trials", "main", {"s0.bin": 100})],
        50: [("trials", "exp/a", {"e1.bin": 11})],
        60: [("trials", "exp/a", {"e1.bin": 11, "e2.bin": 12})],
        100: [("reviews", "main", {"m2.bin": 2})],
        300: [("reviews", "main", {"m2.bin": 2, "m3.bin": 3})],
    }
    versions: dict[int, Version] = {}
    packs: dict[str, str] = {}
    for today in range(0, 401, 10):
        for dataset, branch, files in pushes.get(today, []):
            if branch == "exp/a" and not Branch.objects.filter(name="exp/a").exists():
                cal.branch(dataset, branch, Version.objects.get(dataset__name="trials", semver="1.0.0"))
            pushed = cal.push(branch, today, files, dataset=dataset)
            versions.setdefault(today, pushed)
            packs.update({name: pack_of(pushed, name) for name in files})
        run = run_retention(today + 0.5)
        assert run.state == RetentionRun.State.DONE, run.error
        moves.extend((today, move["pack"], move["from"], move["to"]) for move in run.report["moving"])
    p1, p2, p3, pe1, pe2 = (packs[name] for name in ("m1.bin", "m2.bin", "m3.bin", "e1.bin", "e2.bin"))
    by_pack = {pack: [(d, a, b) for d, p, a, b in moves if p == pack] for pack in (p1, p2, p3)}
    # m1: warm 30 days after its last access, cold at 180 (day 180, 150 days in warm).
    assert by_pack[p1] == [(30, "hot", "warm"), (180, "warm", "cold")]
    # m2: pushed day 100; warm at 130, cold at 280 (v(100) idle 180 days); hot
    # again when v(300) needs it, warm 30 days after that.
    assert by_pack[p2] == [
        (130, "hot", "warm"),
        (280, "warm", "cold"),
        (300, "cold", "hot"),
        (330, "hot", "warm"),
    ]
    assert by_pack[p3] == [(330, "hot", "warm")]
    # exp/a last committed day 60: expired by the run of day 90, its packs swept.
    expired_on = dict(Version.objects.filter(expired__isnull=False).values_list("id", "expired"))
    assert set(expired_on) == {versions[50].pk, versions[60].pk}
    assert all(when == day(90.5) for when in expired_on.values())
    assert tier(pe1) is None and tier(pe2) is None
    assert Version.objects.filter(expired__isnull=True).count() == 4  # 3 on reviews, trials' first


def test_a_cold_version_says_it_is_restoring_then_pulls_byte_identical(retention_store, tmp_path, settings):
    cal = Calendar(tmp_path / "work")
    version = cal.push("main", 0, {"a.bin": 1, "b.bin": 2})
    source = tree_digests(cal.folders[("reviews", "main")])
    run = run_retention(200)
    assert run.state == RetentionRun.State.DONE
    assert set(Pack.objects.values_list("tier", flat=True)) == {"cold"}

    with pytest.raises(RestoreInProgress) as raised:
        version_pull(version=version, dest=str(tmp_path / "out"))
    assert "restoring, ready in about 1 h" in str(raised.value)
    assert raised.value.exit_code == 3
    assert not (tmp_path / "out").exists()

    from lifecycle.models import PackRestore
    from lifecycle.services.retention import restores_poll

    assert PackRestore.objects.filter(state="restoring").count() == 1
    assert restores_poll() == 0
    get_backend().restore_seconds = 0  # the restore has finished (AWS: hours later)
    assert restores_poll() == 1
    assert PackRestore.objects.get().state == "ready"
    version_pull(version=version, dest=str(tmp_path / "out"))
    assert tree_digests(tmp_path / "out") == source
    version.refresh_from_db()
    assert version.last_accessed is not None


def test_an_expired_version_refuses_to_pull_in_one_sentence(retention_store, tmp_path):
    cal = Calendar(tmp_path / "work")
    v1 = cal.push("main", 0, {"a.bin": 1})
    branch_create(dataset=v1.dataset, name="exp/x", start=v1, actor="alice")
    gone = cal.push("exp/x", 1, {"a.bin": 1, "x.bin": 5})
    assert run_retention(40).state == RetentionRun.State.DONE
    gone.refresh_from_db()
    with pytest.raises(UserError, match="expired under the retention policy"):
        version_pull(version=gone, dest=str(tmp_path / "out"))


def test_a_large_sweep_waits_for_an_approver(retention_store, tmp_path, settings, personas):
    settings.STRATA_RETENTION_APPROVAL_BYTES = 1000
    cal = Calendar(tmp_path / "work")
    v1 = cal.push("main", 0, {"a.bin": 1})
    branch_create(dataset=v1.dataset, name="exp/x", start=v1, actor="alice")
    cal.push("exp/x", 1, {"a.bin": 1, "x.bin": 5})
    run = retention_plan(now=day(40))
    assert run.state == RetentionRun.State.AWAITING
    assert run.report["deleting"] and run.sweep_bytes > 1000
    with pytest.raises(UserError):
        retention_approve(user=personas["bob"], run=run)
    newer = retention_plan(now=day(41))
    run.refresh_from_db()
    assert run.state == RetentionRun.State.CANCELLED  # a newer plan replaces a waiting one
    with pytest.raises(UserError):
        retention_approve(user=personas["carol"], run=run)
    run = newer
    retention_approve(user=personas["carol"], run=run)
    assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE
    assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE  # twice: no change


def test_protected_versions_survive_their_branch_expiring(retention_store, tmp_path, personas):
    from catalog.services.refs import tag_create

    cal = Calendar(tmp_path / "work")
    v1 = cal.push("main", 0, {"a.bin": 1})
    branch_create(dataset=v1.dataset, name="exp/x", start=v1, actor="alice")
    tagged = cal.push("exp/x", 1, {"a.bin": 1, "t.bin": 5})
    tag_create(dataset=v1.dataset, name="keep-me", version=tagged, actor="alice")
    head = cal.push("exp/x", 2, {"a.bin": 1, "t.bin": 5, "h.bin": 6})
    run = run_retention(100)
    assert run.state == RetentionRun.State.DONE
    assert set(Version.objects.filter(expired__isnull=False).values_list("id", flat=True)) == {head.pk}
    assert tier(pack_of(tagged, "t.bin")) == "hot"
    assert store_verify(versions=[tagged], list_unreferenced=False).ok


def test_a_mostly_dead_pack_is_repacked_and_still_verifies(retention_store, tmp_path, settings):
    settings.STRATA_PACK_SIZE = 10 * 1024 * 1024  # one pack per push
    cal = Calendar(tmp_path / "work")
    v1 = cal.push("main", 0, {"a.bin": 1})
    branch_create(dataset=v1.dataset, name="exp/x", start=v1, actor="alice")
    # One push, one pack: a small kept file beside three big ones that expire.
    folder = tmp_path / "mixed"
    write_random(folder / "small.bin", 20_000, 40)
    for index in range(3):
        write_random(folder / f"big{index}.bin", 60_000, 50 + index)
    mixed = version_push(path=str(folder), dataset_name="reviews", author="alice", branch="exp/x").version
    mixed_pack = pack_of(mixed, "small.bin")
    assert pack_of(mixed, "big0.bin") == mixed_pack
    (folder / "big0.bin").unlink()
    (folder / "big1.bin").unlink()
    (folder / "big2.bin").unlink()
    kept = version_push(path=str(folder), dataset_name="reviews", author="alice", branch="main").version
    Version.objects.filter(pk=mixed.pk).update(created=day(1))
    Branch.objects.filter(name="exp/x").update(updated=day(1))
    Pack.objects.update(created=day(0), tier_since=day(0))
    Version.objects.filter(pk=kept.pk).update(created=day(40))
    run = run_retention(40)
    assert run.state == RetentionRun.State.DONE, run.error
    assert mixed_pack in [item["pack"] for item in run.report["repacking"]]
    assert not Pack.objects.filter(pk=mixed_pack).exists()
    assert get_backend().pack_size(mixed_pack) is None
    assert pack_of(kept, "small.bin") != mixed_pack
    assert store_verify(versions=[kept], list_unreferenced=False).ok


def test_pushing_again_a_file_whose_bytes_were_swept_stores_it_again(retention_store, tmp_path):
    """The push trusts files the store still has; after a sweep it must not trust
    a file whose chunks are gone (its manifest goes with them)."""
    from catalog.models import FileManifest
    from catalog.store import walk_tree

    cal = Calendar(tmp_path / "work")
    s0 = cal.push("main", 0, {"s0.bin": 100}, dataset="trials")
    cal.branch("trials", "exp/x", s0)
    folder = tmp_path / "big"
    write_random(folder / "big.bin", 400_000, 7)  # several chunks: a manifest
    gone = version_push(path=str(folder), dataset_name="trials", author="alice", branch="exp/x").version
    Version.objects.filter(pk=gone.pk).update(created=day(1))
    Pack.objects.update(created=day(0), tier_since=day(0))
    digest = next(item.entry.digest for item in walk_tree(gone.tree_id))
    assert FileManifest.objects.filter(digest=digest).exists()
    assert run_retention(40).state == RetentionRun.State.DONE
    assert not FileManifest.objects.filter(digest=digest).exists()

    again = version_push(path=str(folder), dataset_name="trials", author="alice", branch="main").version
    assert store_verify(versions=[again], list_unreferenced=False).ok
    version_pull(version=again, dest=str(tmp_path / "out"))
    assert tree_digests(tmp_path / "out") == tree_digests(folder)


@pytest.mark.parametrize("store_url", ["local"], indirect=True)
def test_strata_pull_of_a_cold_version_exits_3_saying_it_is_restoring_then_pulls(cli, tmp_path):
    """End to end through the command line: the exit code scripts can wait on."""
    from django.utils import timezone

    default_policies()
    data = tmp_path / "data"
    write_random(data / "a.bin", 200_000, 1)
    cli("push", str(data), "reviews", check=True)
    run = retention_plan(now=timezone.now() + timedelta(days=200))
    assert retention_advance(run_id=run.pk).state == RetentionRun.State.DONE
    assert set(Pack.objects.values_list("tier", flat=True)) == {"cold"}

    cli.env["STRATA_LOCAL_RESTORE_SECONDS"] = "1"
    first = cli("pull", "reviews@main", str(tmp_path / "out"))
    assert first.returncode == 3, first.stderr
    assert "restoring, ready in under a minute" in first.stderr
    assert not (tmp_path / "out").exists()
    deadline = time.monotonic() + 30
    while (second := cli("pull", "reviews@main", str(tmp_path / "out"))).returncode == 3:
        assert time.monotonic() < deadline, second.stderr
        time.sleep(0.5)
    assert second.returncode == 0, second.stderr
    assert tree_digests(tmp_path / "out") == tree_digests(data)
