"""Fill a PostgreSQL database with a large lineage graph for bench_lineage.py.

    createdb -h 127.0.0.1 -U postgres strata_lineage_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/strata_lineage_bench \\
        .venv/bin/python bench/seed_lineage.py [--nodes 100000] [--edges 300000] [--hub 5000]

Makes sources, dataset versions (real catalog rows of one dataset) and runs in
the proportions 1 : 1.5 : 2.5, each run reading from older nodes and writing
newer versions, so the graph flows one way like real pipelines; and one "hub"
version read by `--hub` runs, the case the "+N more" cap exists for. Rows go in
with COPY; the database is emptied of lineage rows first. Prints the ids of the
hub and of a sample of ordinary versions for the benchmark to visit.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from catalog.models import Dataset, Tree, Version  # noqa: E402

BENCH_USER, BENCH_PASSWORD = "bench", "bench-lineage-password"


def copy_rows(table: str, columns: list[str], rows: list[tuple]) -> None:
    """COPY rows into a table: tab-separated text, \\N for NULL."""
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        copy.write(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=300_000)
    parser.add_argument("--hub", type=int, default=5_000, help="runs that read the hub version")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("seed_lineage.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    rng = random.Random(args.seed)
    started = time.monotonic()
    call_command("migrate", verbosity=0)

    n_sources = args.nodes // 5
    n_versions = args.nodes * 3 // 10
    n_runs = args.nodes - n_sources - n_versions
    edges_per_run = args.edges / n_runs
    outputs_per_run = 2
    inputs_per_run = max(1, round(edges_per_run - outputs_per_run))

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE lineage_edge, lineage_ingestedevent, lineage_run, lineage_source, lineage_node RESTART IDENTITY CASCADE"
            )
        Version.objects.filter(dataset__name="bench-lineage").delete()
        Dataset.objects.filter(name="bench-lineage").delete()
        dataset = Dataset.objects.create(name="bench-lineage", description="lineage benchmark")
        tree, _ = Tree.objects.get_or_create(id="0" * 64, defaults={"data": b"", "entry_count": 0})
        now = "2026-01-01 00:00:00+00"

        version_ids = [f"{i:064x}" for i in range(1, n_versions + 1)]
        copy_rows(
            "catalog_version",
            [
                "id",
                "dataset_id",
                "tree_id",
                "author",
                "message",
                "created",
                "semver",
                "semver_major",
                "semver_minor",
                "semver_patch",
                "stage",
                "file_count",
                "logical_bytes",
                "new_bytes",
                "stored_bytes",
                "golden",
                "rolled_back",
                "rolled_back_reason",
            ],
            [
                (
                    vid,
                    dataset.pk,
                    tree.id,
                    "bench",
                    "",
                    now,
                    f"1.{i}.0",
                    1,
                    i,
                    0,
                    "cleaned",
                    1,
                    1,
                    0,
                    0,
                    "f",
                    "f",
                    "",
                )
                for i, vid in enumerate(version_ids)
            ],
        )
        # Node ids: sources first, then versions, then runs, so "older" is "smaller".
        source_ids = list(range(1, n_sources + 1))
        version_node_ids = list(range(n_sources + 1, n_sources + n_versions + 1))
        run_ids = list(range(n_sources + n_versions + 1, args.nodes + 1))
        nodes = [
            (i, "source", f"source:bench:{i}", f"s3://bench/raw/{i:06d}", None, None, now) for i in source_ids
        ]
        nodes += [
            (nid, "version", f"version:{vid}", f"bench-lineage@1.{k}.0", vid, dataset.pk, now)
            for k, (nid, vid) in enumerate(zip(version_node_ids, version_ids, strict=True))
        ]
        nodes += [
            (i, "run", f"run:bench:{i}", f"step-{i - run_ids[0]:06d}", None, None, now) for i in run_ids
        ]
        copy_rows(
            "lineage_node", ["id", "kind", "key", "label", "version_id", "dataset_id", "created"], nodes
        )
        copy_rows(
            "lineage_source",
            ["node_id", "uri", "namespace", "name", "version_tag", "description", "owner", "facets"],
            [
                (i, f"s3://bench/raw/{i:06d}", "s3://bench", f"raw/{i:06d}", "", "", "", "{}")
                for i in source_ids
            ],
        )
        steps = ["collection", "cleaning", "dedup", "annotation", "split", "training", "evaluation"]
        copy_rows(
            "lineage_run",
            [
                "node_id",
                "step",
                "name",
                "namespace",
                "params",
                "code_repo",
                "code_commit",
                "command",
                "actor",
                "started",
                "ended",
                "status",
                "origin",
                "external_id",
                "producer",
                "facets",
            ],
            [
                (
                    i,
                    steps[i % len(steps)],
                    f"step-{i - run_ids[0]:06d}",
                    "bench",
                    json.dumps({"threshold": round(rng.random(), 3), "seed": i % 97}),
                    "https://git.example.org/bench",
                    f"{i:07x}",
                    "",
                    "bench",
                    now,
                    now,
                    "completed",
                    "api",
                    "",
                    "",
                    "{}",
                )
                for i in run_ids
            ],
        )

        hub = version_node_ids[10]
        edges: set[tuple[int, int]] = set()
        for position, run in enumerate(run_ids):
            fraction = position / len(run_ids)
            # Read from sources or from versions made earlier in the flow.
            newest_input = max(20, int(fraction * n_versions))
            for _ in range(inputs_per_run):
                if rng.random() < 0.35:
                    edges.add((rng.choice(source_ids), run))
                else:
                    edges.add((version_node_ids[rng.randrange(newest_input)], run))
            first_output = min(n_versions - 1, int(fraction * n_versions) + 20)
            for _ in range(outputs_per_run):
                edges.add((run, version_node_ids[min(n_versions - 1, first_output + rng.randrange(200))]))
            if position < args.hub:
                edges.add((hub, run))
        # Trim to the edge count asked for, never dropping the hub's edges.
        surplus = len(edges) - args.edges
        if surplus > 0:
            removable = sorted(edge for edge in edges if edge[0] != hub)
            edges -= set(rng.sample(removable, surplus))
        copy_rows("lineage_edge", ["src_id", "dst_id", "created"], [(a, b, now) for a, b in sorted(edges)])
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('lineage_node', 'id'), %s)", [args.nodes])
            cursor.execute("SELECT setval(pg_get_serial_sequence('lineage_edge', 'id'), %s)", [len(edges)])
        if not User.objects.filter(username=BENCH_USER).exists():
            User.objects.create_superuser(BENCH_USER, "bench@example.org", BENCH_PASSWORD)
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE lineage_node; ANALYZE lineage_edge; ANALYZE lineage_run; ANALYZE catalog_version"
        )
    hub_consumers = sum(1 for a, _ in edges if a == hub)
    sample = rng.sample(version_node_ids[100:], 50)
    print(
        json.dumps(
            {
                "nodes": args.nodes,
                "edges": len(edges),
                "sources": n_sources,
                "versions": n_versions,
                "runs": n_runs,
                "hub": hub,
                "hub_consumers": hub_consumers,
                "sample": sample,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
