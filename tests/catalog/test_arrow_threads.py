"""A command that reads or diffs tables exits with its own exit code.

Once Arrow's thread pool has run a task, a process that exits soon after can die of
SIGABRT ("terminate called without an active exception", apache/arrow#34314):
`strata split` printed its one-sentence error and then exited -6 instead of 2, about
once in a few hundred runs. A garbage collection right after the work makes the
race likely (about one run in two while Arrow's pool was in use), so each run below
does one piece of Strata's table work, collects and exits. Strata keeps every Arrow
call on the calling thread, and no run may abort.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = 8

SCRIPT = textwrap.dedent(
    """
    import gc, io, sys
    import pyarrow as pa, pyarrow.parquet as pq
    from cards.domain import splits
    from catalog.domain import tabular

    n = 5000
    columns = {"id": list(range(n)), "text": [f"text {i % 40}" for i in range(n)], "label": [i % 3 for i in range(n)]}
    csv = ("id,text,label\\n" + "".join(f"{i},text {i % 40},{i % 3}\\n" for i in range(n))).encode()
    jsonl = "".join(f'{{"id": {i}, "text": "t{i % 40}", "label": {i % 3}}}\\n' for i in range(n)).encode()
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    a = pa.table(columns)
    b = pa.table(columns | {"text": [f"text {i % 41}" for i in range(n)]})

    work = {
        "csv": lambda: tabular.read_table("a.csv", csv),
        "tsv": lambda: tabular.read_table("a.tsv", csv.replace(b",", b"\\t")),
        "jsonl": lambda: tabular.read_table("a.jsonl", jsonl),
        "parquet": lambda: tabular.read_table("a.parquet", sink.getvalue()),
        "diff-by-key": lambda: tabular.diff_rows(a, b, key="id"),
        "diff-by-content": lambda: tabular.diff_rows(a.drop_columns(["id"]), b.drop_columns(["id"]), detect=False),
        "schema": lambda: tabular.read_schema("a.parquet", sink.getvalue()),
        "schema-from-ends": lambda: tabular.parquet_schema_from_ends(
            "a.parquet", sink.getvalue()[:4096], sink.getvalue()[-4096:], len(sink.getvalue())
        ),
        "split": lambda: splits.split_table(a, id_column="id", ratios={"train": 0.8, "test": 0.2}),
    }
    work[sys.argv[1]]()
    gc.collect()
    sys.exit(3)
    """
)


def _run(work: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, work],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "work",
    [
        "csv",
        "tsv",
        "jsonl",
        "parquet",
        "diff-by-key",
        "diff-by-content",
        "schema",
        "schema-from-ends",
        "split",
    ],
)
def test_table_work_never_aborts_the_process_at_exit(work):
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run, [work] * RUNS))
    codes = [result.returncode for result in results]
    assert codes == [3] * RUNS, next(result.stderr for result in results if result.returncode != 3)
