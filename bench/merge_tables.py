"""Three-way merge of one table by key (`catalog.domain.table_merge`), timed.

    .venv/bin/python bench/merge_tables.py [--rows 1000000] [--repeat 3] [--memory-budget BYTES]

Makes three Parquet versions of a table of `--rows` rows (id int64, text and author
strings, score float64, label int64, flag bool): the base; a target with 1% of its
rows relabelled and 0.1% deleted; a source with 1% of its rows given a new score and
text and 0.1% new rows appended. The two sides touch different cells, so the merge
is clean. Each repetition runs `merge_table_files` in a child process and reports
the merge's own wall time (measured in the child), the child's peak resident memory
(from its rusage, `os.wait4`) and, when the inputs are beyond the memory budget and
the merge spills, the most disk its partition folder held. Medians of `--repeat`.
`--memory-budget` forces a budget (a small one shows the partitioned path);
without it the default of `table_merge` applies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from catalog.domain.table_merge import DEFAULT_MEMORY_BUDGET, merge_table_files
folder, budget = sys.argv[2], int(sys.argv[3]) or DEFAULT_MEMORY_BUDGET
start = time.perf_counter()
result = merge_table_files(
    "table.parquet", f"{folder}/base.parquet", f"{folder}/target.parquet", f"{folder}/source.parquet",
    f"{folder}/out/merged.parquet", key="id", memory_budget=budget,
)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, **result.as_dict()}))
"""


def make_tables(folder: Path, rows: int) -> None:
    """The three versions, written with pyarrow's defaults as a user's tool would."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    ids = pa.array(np.arange(rows, dtype=np.int64))
    authors = pa.array(["alice", "bob", "carol", "dave", "erin"])
    base = pa.table(
        {
            "id": ids,
            "text": pc.binary_join_element_wise("review ", pc.cast(ids, pa.string()), ""),
            "author": authors.take(pa.array(rng.integers(0, 5, rows))),
            "score": pa.array(rng.random(rows)),
            "label": pa.array(rng.integers(0, 5, rows)),
            "flag": pa.array(rng.random(rows) < 0.5),
        }
    )
    pq.write_table(base, folder / "base.parquet")

    changed = rows // 100
    relabelled = rng.choice(rows, changed, replace=False)
    edited = rng.choice(rows, changed, replace=False)
    untouched = np.setdiff1d(np.arange(rows), np.union1d(relabelled, edited))
    deleted = rng.choice(untouched, rows // 1000, replace=False)

    labels = base.column("label").to_numpy().copy()
    labels[relabelled] = (labels[relabelled] + 1) % 5
    keep = np.ones(rows, dtype=bool)
    keep[deleted] = False
    target = base.set_column(4, "label", pa.array(labels)).filter(pa.array(keep))
    pq.write_table(target, folder / "target.parquet")

    scores = base.column("score").to_numpy().copy()
    scores[edited] = -1.0
    text = base.column("text").to_pylist() if rows <= 1_000_000 else None
    if text is not None:
        for index in edited.tolist():
            text[index] = f"edited {index}"
        text_column = pa.array(text)
    else:  # the same edit without a Python list of ten million strings
        marked = np.zeros(rows, dtype=bool)
        marked[edited] = True
        text_column = pc.if_else(
            pa.array(marked),
            pc.binary_join_element_wise("edited ", pc.cast(ids, pa.string()), ""),
            base.column("text"),
        )
    source = base.set_column(1, "text", text_column).set_column(3, "score", pa.array(scores))
    added = rows // 1000
    new_ids = pa.array(np.arange(rows, rows + added, dtype=np.int64))
    appended = pa.table(
        {
            "id": new_ids,
            "text": pc.binary_join_element_wise("new ", pc.cast(new_ids, pa.string()), ""),
            "author": pa.array(["frank"] * added),
            "score": pa.array(rng.random(added)),
            "label": pa.array(rng.integers(0, 5, added)),
            "flag": pa.array(np.zeros(added, dtype=bool)),
        }
    )
    pq.write_table(pa.concat_tables([source, appended]), folder / "source.parquet")


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a partition file removed meanwhile
                total += os.path.getsize(os.path.join(root, name))
    return total


def run_once(folder: Path, budget: int) -> dict:
    """One merge in a child process: its result, its own timing, peak RSS and disk."""
    out = folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    peak_disk = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak_disk
        while not done.is_set():
            peak_disk = max(peak_disk, folder_bytes(out))
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(PROJECT), str(folder), str(budget)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    watcher.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"the merge exited with {child.returncode}")
    result = json.loads(output)
    output_bytes = (out / "merged.parquet").stat().st_size
    return {
        **result,
        "process_seconds": wall,
        "peak_mib": usage.ru_maxrss / 1024,
        "spill_mib": max(peak_disk - output_bytes, 0) / 2**20,
        "output_mib": output_bytes / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-budget", type=int, default=0, help="bytes; 0 for the default")
    parser.add_argument("--make-into", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_into:
        make_tables(Path(args.make_into), args.rows)
        return
    (BENCH / "data").mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"strata-bench-merge-{args.rows}-", dir=BENCH / "data"))
    started = time.perf_counter()
    # The tables are made in a process of their own: a child forked from a parent
    # that holds them would count the parent's memory in its own peak.
    subprocess.run(
        [sys.executable, __file__, "--rows", str(args.rows), "--make-into", str(folder)], check=True
    )
    inputs = sum((folder / f"{side}.parquet").stat().st_size for side in ("base", "target", "source"))
    print(
        f"made {args.rows:,} rows in {time.perf_counter() - started:.1f} s; inputs {inputs / 2**20:.0f} MiB"
    )
    runs = []
    for _ in range(args.repeat):
        run = run_once(folder, args.memory_budget)
        assert run["conflict_count"] == 0 and run["written"], run["conflicts"][:3]
        assert run["updated_from_target"] == args.rows // 100
        assert run["updated_from_source"] == args.rows // 100
        runs.append(run)
        print(
            f"  merge {run['seconds']:.2f} s (process {run['process_seconds']:.2f} s),"
            f" peak {run['peak_mib']:.0f} MiB, partitions {run['partitions']}, spill {run['spill_mib']:.0f} MiB"
        )
    budget = f"{args.memory_budget / 2**20:g} MiB" if args.memory_budget else "default (512 MiB)"
    print()
    print("| rows | memory budget | partitions | median s | process s | peak MiB | spill on disk MiB |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    print(
        f"| {args.rows:,} | {budget} | {runs[0]['partitions']} |"
        f" {statistics.median(r['seconds'] for r in runs):.2f} |"
        f" {statistics.median(r['process_seconds'] for r in runs):.2f} |"
        f" {max(r['peak_mib'] for r in runs):.0f} | {max(r['spill_mib'] for r in runs):.0f} |"
    )
    print(f"\nrows in the result: {runs[0]['rows']:,}; output {runs[0]['output_mib']:.0f} MiB")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
