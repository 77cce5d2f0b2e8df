"""Row-level diff of two 1,000,000-row Parquet versions, beside DuckDB's EXCEPT.

    .venv/bin/python bench/bench_diff.py [--rows 1000000] [--repeat 3]

Makes a table of `--rows` rows (id, text, score, label), and a second version with
1% of its rows changed (a new score and label), pushes both into a fresh Strata
store, then times `strata diff --json` (which reads both files back from the store,
verifies them, and compares them by key) and DuckDB's `EXCEPT` both ways on the
same two files, interleaved, quoting medians. DuckDB lives in its own venv under
bench/data/ (pinned in bench/requirements-diff.txt), never in the project's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
DUCKDB_VENV = BENCH / "data" / "venv-duckdb"

DUCKDB_QUERY = """
import sys, time, duckdb
a, b = sys.argv[1], sys.argv[2]
start = time.perf_counter()
con = duckdb.connect()
added = con.execute(f"SELECT count(*) FROM (SELECT * FROM '{b}' EXCEPT SELECT * FROM '{a}')").fetchone()[0]
removed = con.execute(f"SELECT count(*) FROM (SELECT * FROM '{a}' EXCEPT SELECT * FROM '{b}')").fetchone()[0]
print(added, removed, time.perf_counter() - start)
"""


def make_tables(folder: Path, rows: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(7)
    ids = list(range(rows))
    table = pa.table(
        {
            "id": ids,
            "text": [f"review {i} " + "".join(rng.choices("abcdefgh", k=12)) for i in ids],
            "score": [rng.random() for _ in ids],
            "label": [rng.choice(["pos", "neg", "neutral"]) for _ in ids],
        }
    )
    old = folder / "v1" / "table.parquet"
    old.parent.mkdir(parents=True)
    pq.write_table(table, old)
    scores = table.column("score").to_pylist()
    labels = table.column("label").to_pylist()
    for index in rng.sample(ids, rows // 100):
        scores[index] = -1.0
        labels[index] = "neg" if labels[index] != "neg" else "pos"
    changed = table.set_column(2, "score", pa.array(scores)).set_column(3, "label", pa.array(labels))
    new = folder / "v2" / "table.parquet"
    new.parent.mkdir(parents=True)
    pq.write_table(changed, new)
    return old, new


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak MiB, stdout) of one command, from /usr/bin/time."""
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command], env=env, capture_output=True, text=True, check=True
    )
    seconds, kib = result.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024, result.stdout


def duckdb_python() -> str:
    python = DUCKDB_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DUCKDB_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(BENCH / "requirements-diff.txt")],
            check=True,
        )
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    (BENCH / "data").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="strata-bench-diff-", dir=BENCH / "data"))
    old, new = make_tables(work, args.rows)
    env = dict(os.environ, STRATA_VAR_DIR=str(work / "var"), STRATA_USER="bench")
    manage = [sys.executable, str(PROJECT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    subprocess.run(
        [*manage, "strata", "push", str(old.parent), "bench-table", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*manage, "strata", "push", str(new.parent), "bench-table", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    python = duckdb_python()
    strata_runs, duck_runs = [], []
    for _ in range(args.repeat):
        seconds, peak, out = timed(
            [*manage, "strata", "diff", "bench-table@1.0.0", "bench-table@1.1.0", "--json"], env
        )
        rows = json.loads(out)["tables"][0]["rows"]
        assert rows["changed"] == args.rows // 100, rows
        strata_runs.append((seconds, peak))
        seconds, peak, out = timed([python, "-c", DUCKDB_QUERY, str(old), str(new)], env)
        added, removed, _inner = out.split()
        assert int(added) == int(removed) == args.rows // 100
        duck_runs.append((seconds, peak))
    strata_s = statistics.median(s for s, _ in strata_runs)
    duck_s = statistics.median(s for s, _ in duck_runs)
    print(f"| work ({args.rows:,} rows, 1% changed) | seconds (median of {args.repeat}) | peak MiB |")
    print("|---|---:|---:|")
    print(
        f"| strata diff --json (read both from the store, verify, diff by key) | {strata_s:.2f} |"
        f" {max(p for _, p in strata_runs):.0f} |"
    )
    print(f"| DuckDB EXCEPT, both ways, same files | {duck_s:.2f} | {max(p for _, p in duck_runs):.0f} |")
    print(f"\nratio (Strata / DuckDB): {strata_s / duck_s:.2f}; work folder: {work}")


if __name__ == "__main__":
    main()
