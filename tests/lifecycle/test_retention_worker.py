"""Retention runs applied by a real Celery worker on Redis, killed half-way by
failpoints (catalog/failpoints.py), and started by a real beat on a short schedule.

The worker and beat are separate processes sharing the test database and store.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from catalog.models import Pack, Version
from catalog.services.verify import store_verify
from catalog.store import get_backend
from lifecycle.models import RetentionRun
from lifecycle.services.retention import retention_plan
from lifecycle.tasks import retention_apply
from tests.factories.files import ROOT
from tests.factories.retention import Calendar, day, default_policies, pack_of, tier
from tests.workers import CeleryWorker as Worker
from tests.workers import worker_environment

State = RetentionRun.State


@pytest.fixture
def local_store_url(tmp_path, settings):
    url = f"file://{tmp_path / 'store'}"
    settings.STRATA_STORAGE_URL = url
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    settings.STRATA_RETENTION_APPROVAL_BYTES = 10**12
    return url


@pytest.fixture
def worker_env(transactional_db, local_store_url, queue, redis_url, settings, tmp_path):
    default_policies()  # a transactional test starts from emptied tables
    return worker_environment(
        settings=settings,
        tmp_path=tmp_path,
        queue=queue,
        redis_url=redis_url,
        STRATA_LOCAL_RESTORE_SECONDS="0",
        STRATA_RETENTION_APPROVAL_BYTES=str(10**12),
    )


@pytest.fixture
def start_worker(worker_env, tmp_path):
    workers: list[Worker] = []

    def start(failpoints: str = "") -> Worker:
        env = dict(worker_env, STRATA_FAILPOINTS=failpoints) if failpoints else worker_env
        worker = Worker(env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _wait_for(run_id: int, states, timeout: float = 90) -> RetentionRun:
    deadline = time.monotonic() + timeout
    while True:
        run = RetentionRun.objects.get(pk=run_id)
        if run.state in states:
            return run
        assert time.monotonic() < deadline, f"still {run.state} ({run.phase}): {run.error}"
        time.sleep(0.2)


@pytest.fixture
def history(worker_env, tmp_path):
    """reviews main: v1 (day 0, to go cold), v2 (day 390); trials exp/x (day 1, to expire)."""
    cal = Calendar(tmp_path / "work")
    v1 = cal.push("main", 0, {"m1.bin": 1})
    s0 = cal.push("main", 0, {"s0.bin": 100}, dataset="trials")
    cal.branch("trials", "exp/x", s0)
    gone = cal.push("exp/x", 1, {"m1.bin": 1, "x.bin": 5}, dataset="trials")
    v2 = cal.push("main", 390, {"m2.bin": 2})
    return {"v1": v1, "gone": gone, "v2": v2, "p1": pack_of(v1, "m1.bin"), "px": pack_of(gone, "x.bin")}


@pytest.mark.parametrize(
    "point", ["retention.moving", "retention.moved-in-store", "retention.sweeping", "retention.swept-row"]
)
def test_a_worker_killed_during_a_tier_move_or_a_sweep_loses_nothing_and_the_rerun_completes(
    history, start_worker, point
):
    run = retention_plan(now=day(400))
    assert run.state == State.APPROVED
    crashing = start_worker(failpoints=point)
    retention_apply.delay(run.pk)
    crashing.process.wait(60)
    assert crashing.process.returncode == -9, "the failpoint should have killed the worker"
    assert RetentionRun.objects.get(pk=run.pk).state == State.APPLYING

    start_worker()  # its start re-queues the run left applying
    done = _wait_for(run.pk, {State.DONE, State.FAILED})
    assert done.state == State.DONE, done.error
    assert tier(history["p1"]) == "cold" and get_backend().tier_of(history["p1"]) == "cold"
    assert tier(history["px"]) is None and get_backend().pack_size(history["px"]) is None
    for pack in Pack.objects.all():
        assert get_backend().pack_size(pack.id) == pack.size
    kept = list(Version.objects.filter(expired__isnull=True).select_related("dataset"))
    for pack_id in Pack.objects.filter(tier="cold").values_list("id", flat=True):
        get_backend().request_restore(pack_id)
    get_backend().restore_seconds = 0
    assert store_verify(versions=kept, list_unreferenced=False).ok


def test_beat_schedule_triggers_a_retention_run(worker_env, start_worker, tmp_path):
    """A real beat with the schedule from settings (every 2 s here) plans a run and
    the worker applies it."""
    env = dict(worker_env, STRATA_RETENTION_SCHEDULE_SECONDS="2")
    start_worker()
    log = tmp_path / "beat.log"
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule")],
        env=env, cwd=str(ROOT), stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not RetentionRun.objects.filter(trigger="schedule", state=State.DONE).exists():
            assert beat.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    finally:
        beat.terminate()
        try:
            beat.wait(20)
        except subprocess.TimeoutExpired:
            beat.kill()
            beat.wait()
    assert "lifecycle.tasks.retention_scheduled" in log.read_text()


@pytest.mark.parametrize("point", ["retention.repacking", "retention.repack-stored"])
def test_a_worker_killed_during_a_repack_loses_nothing_and_the_rerun_completes(
    worker_env, start_worker, tmp_path, settings, point
):
    """One pack holds a small kept file, a 5-byte kept file and three big files
    that expire: it is repacked. Killed before or after the new pack is stored,
    the next worker finishes, and every kept byte reads back."""
    from catalog.services.versions import version_push
    from tests.factories.files import write_random

    settings.STRATA_PACK_SIZE = 10 * 1024 * 1024  # one pack per push
    cal = Calendar(tmp_path / "work")
    v1 = cal.push("main", 0, {"a.bin": 1})
    cal.branch("reviews", "exp/x", v1)
    folder = tmp_path / "mixed"
    write_random(folder / "small.bin", 20_000, 40)
    (folder / "tiny.txt").write_bytes(b"hello")
    for index in range(3):
        write_random(folder / f"big{index}.bin", 60_000, 50 + index)
    mixed = version_push(path=str(folder), dataset_name="reviews", author="alice", branch="exp/x").version
    mixed_pack = pack_of(mixed, "small.bin")
    for index in range(3):
        (folder / f"big{index}.bin").unlink()
    kept = version_push(path=str(folder), dataset_name="reviews", author="alice", branch="main").version
    Version.objects.filter(pk=mixed.pk).update(created=day(1))
    Version.objects.filter(pk=kept.pk).update(created=day(40))
    Pack.objects.update(created=day(0), tier_since=day(0))

    run = retention_plan(now=day(40))
    assert mixed_pack in run.actions["repack"]
    crashing = start_worker(failpoints=point)
    retention_apply.delay(run.pk)
    crashing.process.wait(60)
    assert crashing.process.returncode == -9, "the failpoint should have killed the worker"

    start_worker()
    done = _wait_for(run.pk, {State.DONE, State.FAILED})
    assert done.state == State.DONE, done.error
    assert pack_of(kept, "tiny.txt") != mixed_pack
    assert tier(mixed_pack) is None and get_backend().pack_size(mixed_pack) is None
    for pack in Pack.objects.all():
        assert get_backend().pack_size(pack.id) == pack.size
    survivors = list(Version.objects.filter(expired__isnull=True).select_related("dataset"))
    assert store_verify(versions=survivors, list_unreferenced=False).ok
