"""Change analysis between two pushed versions: files, folders, tables, labels."""

from __future__ import annotations

import io
import random

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.selectors import resolve_spec
from catalog.selectors.changes import MAJOR, MINOR, change_report
from catalog.services.versions import version_push


def _write_parquet(path, table):
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path.write_bytes(buffer.getvalue())


def _reviews(rows=2000, seed=1):
    rng = random.Random(seed)
    return pa.table(
        {
            "id": list(range(rows)),
            "text": [f"review {i}" for i in range(rows)],
            "label": [rng.choice(["pos", "neg"]) for _ in range(rows)],
        }
    )


def test_a_label_shift_in_a_parquet_table_is_reported_with_its_rows(db, store_url, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    table = _reviews()
    _write_parquet(data / "train.parquet", table)
    (data / "README.txt").write_text("reviews")
    version_push(path=str(data), dataset_name="reviews", author="alice")
    labels = table.column("label").to_pylist()
    flipped = [i for i, label in enumerate(labels) if label == "pos"][:40]
    for index in flipped:
        labels[index] = "neg"
    _write_parquet(data / "train.parquet", table.set_column(2, "label", pa.array(labels)))
    version_push(path=str(data), dataset_name="reviews", author="alice")

    _, old = resolve_spec("reviews@1.0.0")
    _, new = resolve_spec("reviews@1.1.0")
    report = change_report(old, new)
    assert (report.files.added, report.files.removed, report.files.modified) == (0, 0, 1)
    assert report.bump == MINOR
    [table_change] = report.tables
    assert table_change.error is None
    assert table_change.rows.key == "id" and table_change.rows.changed == 40
    assert table_change.rows.changed_cells == {"label": 40}
    shift = table_change.labels
    assert shift.counts_b["neg"] - shift.counts_a["neg"] == 40
    assert report.as_dict()["summary"]["bump"] == "minor"


def test_a_schema_change_is_major_and_a_bad_file_is_reported_alone(db, store_url, tmp_path):
    data = tmp_path / "data"
    (data / "images" / "cat").mkdir(parents=True)
    (data / "images" / "dog").mkdir(parents=True)
    for index in range(5):
        (data / "images" / "cat" / f"{index}.png").write_bytes(b"cat" * (index + 1))
        (data / "images" / "dog" / f"{index}.png").write_bytes(b"dog" * (index + 1))
    (data / "labels.csv").write_text("id,label\n1,cat\n2,dog\n")
    (data / "broken.csv").write_text("a,b\n1,2\n")
    version_push(path=str(data), dataset_name="pets", author="alice")
    (data / "labels.csv").write_text("id,label,annotator\n1,cat,ann\n2,dog,bob\n")
    (data / "broken.csv").write_text('a,b\n1,2,3,4\n"unterminated\n')
    for index in range(3):
        (data / "images" / "cat" / f"{index}.png").unlink()
    (data / "images" / "dog" / "new.png").write_bytes(b"new dog")
    version_push(path=str(data), dataset_name="pets", author="alice")

    _, old = resolve_spec("pets@1.0.0")
    _, new = resolve_spec("pets@2.0.0")  # a schema change: the push made it major
    report = change_report(old, new)
    assert report.folders["images/cat"] == {"added": 0, "removed": 3, "modified": 0}
    assert report.folders["images/dog"] == {"added": 1, "removed": 0, "modified": 0}
    by_path = {table.path: table for table in report.tables}
    assert by_path["labels.csv"].schema.added == ["annotator"]
    assert "cannot read broken.csv" in by_path["broken.csv"].error
    assert report.bump == MAJOR


def test_the_diff_command_shows_rows_and_labels_and_refuses_an_unknown_key(cli, tmp_path):
    import json

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text(
        "id,text,label\n" + "".join(f"{i},t{i},{'pos' if i % 2 else 'neg'}\n" for i in range(100))
    )
    cli("push", str(data), "csvs", check=True)
    (data / "train.csv").write_text(
        "id,text,label\n" + "".join(f"{i},t{i},{'pos' if i % 2 or i < 10 else 'neg'}\n" for i in range(105))
    )
    cli("push", str(data), "csvs", check=True)
    text = cli("diff", "csvs@1.0.0", "csvs@1.1.0", check=True).stdout
    assert "0 added, 0 removed, 1 modified files" in text
    assert "rows (by key id): 100 -> 105; +5 -0 ~5 changed (label: 5)" in text
    assert "neg: 50 (50.0%) -> 48 (45.7%)" in text
    as_json = json.loads(cli("diff", "csvs@1.0.0", "csvs@main", "--json", check=True).stdout)
    assert as_json["tables"][0]["rows"]["changed"] == 5
    refused = cli("diff", "csvs@1.0.0", "csvs@1.1.0", "--key", "nope")
    assert (
        refused.returncode == 2 and "the key column 'nope' is in none of the changed tables" in refused.stderr
    )
    unknown = cli("diff", "csvs@1.0.0", "csvs@9.9.9")
    assert unknown.returncode == 2 and "9.9.9" in unknown.stderr


def test_the_compare_page_shows_row_changes_and_the_label_chart(client, personas, settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"{i},t{i},{'pos' if i % 2 else 'neg'}\n" for i in range(100))
    (data / "train.csv").write_text("id,text,label\n" + rows)
    version_push(path=str(data), dataset_name="labels", user=personas["alice"])
    flipped = "".join(f"{i},t{i},{'pos' if i % 2 or i < 10 else 'neg'}\n" for i in range(100))
    (data / "train.csv").write_text("id,text,label\n" + flipped)
    version_push(path=str(data), dataset_name="labels", user=personas["alice"])
    client.force_login(personas["bob"])
    page = client.get("/datasets/labels/compare/?from=1.0.0&to=1.1.0").content.decode()
    assert "Rows of train.csv" in page
    assert "5 changed" in page and "label: 5" in page
    assert "<svg" in page and "Label distribution of label: 1.0.0 and 1.1.0" in page
    assert "<td>0</td><td>label</td><td>neg</td><td>pos</td>" in page
    bad_key = client.get("/datasets/labels/compare/?from=1.0.0&to=1.1.0&key=nope").content.decode()
    assert "Could not compare this table" in bad_key and "nope" in bad_key
