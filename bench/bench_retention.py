"""Planning a tiering and garbage-collection run over 1,000,000 chunks and 10,000
versions (`lifecycle.domain.retention.plan`, the pure planner every run and the cost page use).

    .venv/bin/python bench/bench_retention.py [--versions 10000] [--chunks-per-version 100] [--repeat 3]

The history is synthetic but shaped like a real one: every version adds one file
of `--chunks-per-version` chunks and keeps all earlier files; folders are shared
between versions as git shares unchanged trees (a version's root lists one frozen
folder per hundred earlier versions plus the folder being filled), so the walk
visits each tree once, as it does on a real catalog. Packs hold the chunks of ten
versions each. 80% of the versions are on `main` (kept, tiered by age), 20% on
twenty `exp/*` branches, most of them expired; one version in a hundred is tagged.
Reports wall time of `plan()` and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lifecycle.domain.retention import DEFAULT_POLICIES, PackFacts, VersionFacts, plan  # noqa: E402

BUCKET = 100
VERSIONS_PER_PACK = 10


class SyntheticGraph:
    """Trees, files and chunks of the synthetic history, computed on demand."""

    def __init__(self, versions: int, chunks_per_version: int) -> None:
        self.versions = versions
        self.chunks_per_version = chunks_per_version
        self.chunk_bytes = 64 * 1024

    def tree(self, tree_id: str):
        kind, _, number = tree_id.partition(":")
        index = int(number)
        if kind == "root":  # frozen buckets below, then the partial bucket
            full = index // BUCKET
            return [f"bucket:{b}" for b in range(full)] + [f"partial:{index}"], []
        if kind == "bucket":
            start = index * BUCKET
            return [], [f"file:{v}" for v in range(start, start + BUCKET)]
        start = (index // BUCKET) * BUCKET  # partial:<version>
        return [], [f"file:{v}" for v in range(start, index + 1)]

    def chunks(self, digest: str):
        version = int(digest.partition(":")[2])
        base = version * self.chunks_per_version
        return [str(chunk) for chunk in range(base, base + self.chunks_per_version)]

    def chunk(self, chunk_id: str):
        version = int(chunk_id) // self.chunks_per_version
        return f"pack:{version // VERSIONS_PER_PACK}", self.chunk_bytes


def build(versions: int, chunks_per_version: int, now: datetime):
    facts = []
    branch_last_commit: dict[str, datetime] = {}
    for index in range(versions):
        created = now - timedelta(days=(versions - index) * 400 / versions)
        # Every fifth version is an experiment; exp/0 … exp/19 each cover a stretch
        # of the 400 days, so the older ones have expired.
        branch = f"d:exp/{index * 20 // versions}" if index % 5 == 4 else "d:main"
        branch_last_commit[branch] = max(branch_last_commit.get(branch, created), created)
        facts.append(
            VersionFacts(
                id=f"v{index}",
                root_tree=f"root:{index}",
                branches=frozenset({branch}),
                last_access=created,
                protections=("tagged",) if index % 100 == 0 else (),
            )
        )
    packs = [
        PackFacts(
            id=f"pack:{number}",
            size=VERSIONS_PER_PACK * chunks_per_version * 64 * 1024,
            tier="hot",
            created=now - timedelta(days=400),
            tier_since=now - timedelta(days=400),
        )
        for number in range(versions // VERSIONS_PER_PACK)
    ]
    return facts, packs, branch_last_commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--chunks-per-version", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    now = datetime(2026, 11, 27, tzinfo=UTC)
    versions, packs, branch_last_commit = build(args.versions, args.chunks_per_version, now)
    graph = SyntheticGraph(args.versions, args.chunks_per_version)
    timings = []
    result = None
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = plan(
            versions=versions,
            packs=packs,
            graph=graph,
            policies=DEFAULT_POLICIES,
            branch_last_commit=branch_last_commit,
            now=now,
        )
        timings.append(time.perf_counter() - started)
    assert result is not None
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = result.summary()
    print(
        f"{args.versions:,} versions, {args.versions * args.chunks_per_version:,} chunks, {len(packs):,} packs "
        f"(pid {os.getpid()})"
    )
    print(
        f"plan(): best {min(timings):.2f} s, median {statistics.median(timings):.2f} s, "
        f"worst {max(timings):.2f} s; peak RSS {peak_mib:.0f} MiB"
    )
    print(
        f"kept {summary['versions_kept']:,}, expired {summary['versions_expired']:,}, "
        f"moves {summary['moves']:,}, deletions {summary['deletions']:,}, repacks {summary['repacks']:,}"
    )


if __name__ == "__main__":
    main()
