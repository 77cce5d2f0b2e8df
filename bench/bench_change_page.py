"""Opening a change request's page for a large change, once its checks are done.

    .venv/bin/python bench/bench_change_page.py [--files 10000] [--rows 1000000] [--requests 50]

Pushes a dataset of `--files` small files and a keyed Parquet table of `--rows`
rows into a fresh SQLite catalog and local store; branches, changes every file
and 1% of the table's rows on the branch; opens a change request and does what
the worker does (the merge dry run and the built-in checks, timed once); then
asks for the change request's page `--requests` times as a signed-in steward
through Django's test client (the whole view, template and middleware; no
network) and reports the median and the 95th percentile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def _table(rows: int, changed_every: int | None, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = pa.array(range(rows), type=pa.int64())
    labels = [("dog" if changed_every and i % changed_every == 0 else "cat") for i in range(rows)]
    pq.write_table(
        pa.table({"id": ids, "label": pa.array(labels), "score": pa.array([i / rows for i in range(rows)])}),
        path,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    (PROJECT / "bench" / "data").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="strata-bench-change-", dir=PROJECT / "bench" / "data"))
    os.environ.update(
        STRATA_VAR_DIR=str(work / "var"), DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING"
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(PROJECT))
    subprocess.run([sys.executable, str(PROJECT / "manage.py"), "migrate", "-v0"], check=True)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from catalog.services.refs import branch_create
    from catalog.services.versions import version_push
    from changes.services import requests

    steward = User.objects.create_user("steward")
    steward.groups.add(Group.objects.get(name="steward"))
    data = work / "data"
    for index in range(args.files):
        folder = data / "items" / f"{index // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:05d}.txt").write_bytes(os.urandom(256))
    _table(args.rows, None, data / "table.parquet")
    base = version_push(path=str(data), dataset_name="bench", user=steward, message="base").version
    branch_create(dataset=base.dataset, name="relabel", start=base, user=steward)
    for index in range(args.files):
        (data / "items" / f"{index // 100:03d}" / f"{index:05d}.txt").write_bytes(os.urandom(256))
    _table(args.rows, 100, data / "table.parquet")
    version_push(path=str(data), dataset_name="bench", user=steward, branch="relabel", message="relabel")
    change = requests.change_open(user=steward, dataset_name="bench", source="relabel", title="Relabel")
    started = time.perf_counter()
    requests.change_check(change.pk)  # the worker's part: dry run and checks, once per head
    checked = time.perf_counter() - started

    client = Client(HTTP_HOST="localhost")  # an allowed host of the embedded defaults
    client.force_login(steward)
    url = f"/changes/{change.pk}/"
    first = client.get(url)
    assert first.status_code == 200, first.status_code
    timings = []
    for _ in range(args.requests):
        start = time.perf_counter()
        answer = client.get(url)
        timings.append(time.perf_counter() - start)
        assert answer.status_code == 200
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(round(0.95 * len(timings))) - 1)]
    print(
        f"change of {args.files:,} files and a {args.rows:,}-row table; checks (worker, once): {checked:.1f} s"
    )
    print(
        f"page, {args.requests} requests: median {statistics.median(timings) * 1000:.0f} ms,"
        f" p95 {p95 * 1000:.0f} ms, page size {len(first.content) / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
