"""A hash split of 1,000,000 rows, end to end: `strata split` as a process.

    .venv/bin/python bench/bench_split.py [--rows 1000000] [--repeat 3] [--format csv|parquet|both]

Writes a table of `--rows` rows (id, text, label) as CSV and Parquet, pushes each
into a fresh SQLite catalog and local store, then times `python manage.py strata
split NAME@main --id-column id --label-column label --ratios
train=0.8,val=0.1,test=0.1` as a separate process — start-up, reading the file
from the store, assigning, the leakage check, writing and storing the split files,
the commit and the lineage run. Each repetition splits onto a new branch, so each
makes a version.
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


def write_table(folder: Path, rows: int, fmt: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    labels = ["positive", "negative", "neutral"]
    table = pa.table(
        {
            "id": [f"ex-{i:08d}" for i in range(rows)],
            "text": [f"review text number {i} with some words" for i in range(rows)],
            "label": [labels[i % 3] for i in range(rows)],
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        pcsv.write_csv(table, folder / "examples.csv")
    else:
        pq.write_table(table, folder / "examples.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", choices=["csv", "parquet", "both"], default="both")
    args = parser.parse_args()
    (PROJECT / "bench" / "data").mkdir(exist_ok=True)
    (PROJECT / "bench" / "data").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="strata-bench-split-", dir=PROJECT / "bench" / "data"))
    env = dict(
        os.environ,
        STRATA_VAR_DIR=str(work / "var"),
        STRATA_USER="bench",
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
    )
    manage = [sys.executable, str(PROJECT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True, env=env)
    formats = ["csv", "parquet"] if args.format == "both" else [args.format]
    for fmt in formats:
        name = f"bench-{fmt}"
        folder = work / fmt
        write_table(folder, args.rows, fmt)
        size = sum(f.stat().st_size for f in folder.iterdir())
        subprocess.run(
            [*manage, "strata", "push", str(folder), name], check=True, env=env, capture_output=True
        )
        times = []
        for index in range(args.repeat):
            branch = f"split-{index}"
            subprocess.run(
                [*manage, "strata", "branch", name, branch], check=True, env=env, capture_output=True
            )
            started = time.perf_counter()
            done = subprocess.run(
                [*manage, "strata", "split", f"{name}@main", "--id-column", "id", "--label-column", "label",
                 "--ratios", "train=0.8,val=0.1,test=0.1", "--branch", branch],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            times.append(elapsed)
            print(f"{fmt} run {index + 1}: {elapsed:.2f} s", flush=True)
        print(
            f"{fmt}: {args.rows:,} rows, {size / 1e6:.1f} MB; split end to end: best {min(times):.2f} s,"
            f" median {statistics.median(times):.2f} s, worst {max(times):.2f} s"
        )
        print(done.stdout)


if __name__ == "__main__":
    main()
