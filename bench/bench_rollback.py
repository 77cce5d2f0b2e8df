"""From approval to done: a rollback of a 10,000-file version, applied by a real
Celery worker on Redis.

    .venv/bin/python bench/bench_rollback.py [--files 10000] [--repeat 3]

Pushes two versions of a folder of `--files` small files into a fresh SQLite
catalog and local store (the target stays hot), starts one worker, then for each
repetition asks for a rollback, approves it, and times approval -> done (the worker
picks the task up, verifies every byte of the target, commits and marks). Needs a
Redis on 127.0.0.1:6379 (or REDIS_URL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    (PROJECT / "bench" / "data").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="strata-bench-rollback-", dir=PROJECT / "bench" / "data"))
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.update(
        STRATA_VAR_DIR=str(work / "var"),
        CELERY_BROKER_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        CELERY_TASK_DEFAULT_QUEUE=queue,
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(PROJECT))
    subprocess.run([sys.executable, str(PROJECT / "manage.py"), "migrate", "-v0"], check=True)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User

    from catalog.models import Version
    from catalog.services.versions import version_push
    from governance.models import RollbackRequest
    from governance.services.rollback import rollback_approve, rollback_request

    steward = User.objects.create_user("steward")
    steward.groups.add(Group.objects.get(name="steward"))
    approver = User.objects.create_user("approver")
    approver.groups.add(Group.objects.get(name="approver"))
    data = work / "data"
    for index in range(args.files):
        folder = data / f"{index // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:05d}.txt").write_bytes(os.urandom(2048))
    version_push(path=str(data), dataset_name="bench", user=steward, message="good")
    log = (work / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=str(PROJECT), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    timings = []
    try:
        time.sleep(3)  # the worker connects
        for round_number in range(args.repeat):
            (data / "00" / "00000.txt").write_bytes(os.urandom(2048))  # a bad change
            version_push(path=str(data), dataset_name="bench", user=steward, message=f"bad {round_number}")
            head = Version.objects.filter(dataset__name="bench").order_by("-created").first()
            target = head.parent
            request = rollback_request(
                user=steward, dataset=head.dataset, branch="main", target=target, reason="bench"
            )
            start = time.perf_counter()
            rollback_approve(user=approver, request_id=request.pk)
            while RollbackRequest.objects.get(pk=request.pk).state not in ("done", "failed"):
                time.sleep(0.01)
            timings.append(time.perf_counter() - start)
            assert RollbackRequest.objects.get(pk=request.pk).state == "done"
    finally:
        worker.terminate()
        worker.wait(20)
    print(
        f"| rollback of {args.files:,} files, approval -> done | median {statistics.median(timings):.2f} s |"
        f" runs: {', '.join(f'{t:.2f}' for t in timings)} |"
    )


if __name__ == "__main__":
    main()
