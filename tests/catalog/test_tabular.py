"""Change analysis on crafted pairs: each kind of change is reported exactly."""

from __future__ import annotations

import io
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.domain.tabular import TableError, diff_rows, label_counts, label_shift, read_table

LABELS = ["cat", "dog", "bird"]


def _base(rows: int = 1000, seed: int = 1) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "id": list(range(rows)),
            "text": [f"example {i} " + "".join(rng.choices("abcdef", k=8)) for i in range(rows)],
            "score": [round(rng.random(), 4) for _ in range(rows)],
            "label": [LABELS[i % 3] for i in range(rows)],
        }
    )


def test_a_renamed_column_is_reported_as_a_rename():
    a = _base()
    b = a.rename_columns(["id", "sentence", "score", "label"])
    rows, schema = diff_rows(a, b, key="id")
    assert schema.renamed == [("text", "sentence")]
    assert schema.added == [] and schema.removed == []
    assert rows.changed == 0 and rows.added == 0 and rows.removed == 0


def test_a_type_change_is_reported():
    a = _base()
    b = a.set_column(2, "score", pa.array([str(v) for v in a.column("score").to_pylist()]))
    _, schema = diff_rows(a, b, key="id")
    assert schema.type_changed == [("score", "double", "string")]


def test_added_changed_and_removed_rows_are_counted_exactly():
    a = _base()
    rows = a.to_pylist()
    for index in range(10, 20):  # 10 changed cells, one per row
        rows[index]["score"] = -1.0
    del rows[500:505]  # 5 removed rows
    rng = random.Random(2)
    rows += [{"id": 10_000 + i, "text": "new", "score": rng.random(), "label": "dog"} for i in range(100)]
    rng.shuffle(rows)
    b = pa.Table.from_pylist(rows, schema=a.schema)
    diff, schema = diff_rows(a, b)  # the key "id" is detected
    assert not schema.changed
    assert (diff.method, diff.key) == ("key", "id")
    assert (diff.added, diff.removed, diff.changed) == (100, 5, 10)
    assert diff.changed_cells == {"score": 10}
    assert diff.unchanged == 1000 - 5 - 10
    assert {row["key"] for row in diff.sample_changed} == set(range(10, 20))
    assert diff.sample_changed[0]["cells"]["score"]["new"] == -1.0
    assert sorted(row["id"] for row in diff.sample_removed) == list(range(500, 505))


def test_a_label_flip_on_two_percent_of_rows_shows_as_a_shift():
    a = _base(20_000)
    labels = a.column("label").to_pylist()
    not_dogs = [index for index, label in enumerate(labels) if label != "dog"]
    flipped = 400  # 2% of 20,000 rows: cat or bird relabelled dog
    for index in random.Random(3).sample(not_dogs, flipped):
        labels[index] = "dog"
    b = a.set_column(3, "label", pa.array(labels))
    diff, _ = diff_rows(a, b, key="id")
    assert diff.changed == flipped and diff.changed_cells == {"label": flipped}
    shift = label_shift(label_counts(a, "label"), label_counts(b, "label"))
    assert shift.counts_b["dog"] - shift.counts_a["dog"] == flipped
    assert shift.psi > 0.001 and shift.chi_square > 0
    assert shift.p_value < 0.05
    same = label_shift(label_counts(a, "label"), label_counts(a, "label"))
    assert same.psi == 0 and same.p_value == 1.0


def test_chi_square_p_value_matches_known_values():
    from catalog.domain.tabular import _chi2_survival

    assert _chi2_survival(3.841, 1) == pytest.approx(0.05, abs=1e-3)
    assert _chi2_survival(5.991, 2) == pytest.approx(0.05, abs=1e-3)
    assert _chi2_survival(30.0, 10) == pytest.approx(0.000857, rel=1e-2)


def test_a_key_with_duplicates_falls_back_to_content_hashes():
    a = pa.table({"id": [1, 1, 2, 3], "v": ["a", "b", "c", "d"]})
    b = pa.table({"id": [1, 1, 2, 4], "v": ["a", "b", "c", "e"]})
    diff, _ = diff_rows(a, b, key="id")
    assert diff.method == "content"
    assert "duplicate" in diff.notes[0]
    assert (diff.added, diff.removed, diff.unchanged) == (1, 1, 3)


def test_an_unknown_key_column_is_refused():
    with pytest.raises(TableError, match="key column 'nope' is not in the old and new version"):
        diff_rows(_base(10), _base(10), key="nope")


def test_formats_are_read_by_name_and_bad_files_are_reported():
    table = _base(20)
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    assert read_table("x.parquet", parquet.getvalue()).num_rows == 20
    assert read_table("x.csv", b"id,label\n1,cat\n2,dog\n").num_rows == 2
    assert read_table("x.tsv", b"id\tlabel\n1\tcat\n").column("label").to_pylist() == ["cat"]
    assert read_table("x.jsonl", b'{"id": 1}\n{"id": 2}\n').num_rows == 2
    with pytest.raises(TableError, match="cannot read bad.parquet as a table"):
        read_table("bad.parquet", b"not parquet at all")
    with pytest.raises(TableError, match="cannot read bad.csv"):
        read_table("bad.csv", b'a,b\n1,2,3\n"unterminated')
