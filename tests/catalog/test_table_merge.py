"""The row-level three-way merge of one table (`catalog.domain.table_merge`): pure,
on files in a temporary folder, no database."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.domain.table_merge import DETAIL_LIMIT, TableError, TableMergeResult, merge_table_files

Content = str | bytes | pa.Table


def _write(path: Path, content: Content) -> None:
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode())


def merge(
    folder: Path,
    name: str,
    base: Content | None,
    target: Content,
    source: Content,
    **options: Any,
) -> tuple[TableMergeResult, bytes | None]:
    """Merge three versions of the table `name`; the merged bytes, or None if nothing was written."""
    files: dict[str, str | None] = {}
    for role, content in (("base", base), ("target", target), ("source", source)):
        if content is None:
            files[role] = None
            continue
        file = folder / f"{role}-{name}"
        _write(file, content)
        files[role] = str(file)
    out = folder / f"merged-{name}"
    out.unlink(missing_ok=True)
    result = merge_table_files(
        name,
        files["base"],
        files["target"] or "",
        files["source"] or "",
        str(out),
        key=options.pop("key", "id"),
        **options,
    )
    return result, out.read_bytes() if out.exists() else None


def parquet_rows(data: bytes) -> list[dict[str, Any]]:
    return pq.read_table(io.BytesIO(data)).to_pylist()


BASE = "id,label,text\n1,cat,a\n2,dog,b\n3,cow,c\n"


# -- rows ------------------------------------------------------------------------------


def test_updates_to_different_rows_on_each_side_are_both_kept(tmp_path: Path) -> None:
    target = "id,label,text\n1,lynx,a\n2,dog,b\n3,cow,c\n"
    source = "id,label,text\n1,cat,a\n2,dog,b\n3,cow,C\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged == b"id,label,text\n1,lynx,a\n2,dog,b\n3,cow,C\n"
    assert result.conflict_count == 0 and result.written
    assert (result.updated_from_target, result.updated_from_source, result.rows) == (1, 1, 3)


def test_updates_to_different_cells_of_one_row_are_both_kept(tmp_path: Path) -> None:
    target = "id,label,text\n1,lynx,a\n2,dog,b\n3,cow,c\n"
    source = "id,label,text\n1,cat,A\n2,dog,b\n3,cow,c\n"

    _result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged == b"id,label,text\n1,lynx,A\n2,dog,b\n3,cow,c\n"


def test_the_same_cell_changed_differently_is_one_conflict_naming_key_and_column(tmp_path: Path) -> None:
    target = "id,label,text\n1,lynx,a\n2,dog,b\n3,cow,c\n"
    source = "id,label,text\n1,puma,a\n2,dog,b\n3,cow,c\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged is None and not result.written
    assert result.conflict_count == 1 and result.settled == 0
    (conflict,) = result.conflicts
    assert conflict.as_dict() == {
        "key": "1",
        "column": "label",
        "kind": "cell",
        "base": "cat",
        "target": "lynx",
        "source": "puma",
    }
    assert json.loads(json.dumps(result.as_dict()))["conflicts"][0]["kind"] == "cell"


def test_the_same_change_on_both_sides_is_taken_once(tmp_path: Path) -> None:
    both = "id,label,text\n1,lynx,a\n2,dog,b\n3,cow,c\n4,new,d\n"

    result, merged = merge(tmp_path, "t.csv", BASE, both, both)

    assert result.conflict_count == 0
    assert merged == both.encode()


@pytest.mark.parametrize(
    ("target", "source", "kind", "cells"),
    [
        (
            "id,label,text\n1,cat,a\n3,cow,c\n",
            "id,label,text\n1,cat,a\n2,wolf,b\n3,cow,c\n",
            "delete-update",
            (None, "wolf"),
        ),
        (
            "id,label,text\n1,cat,a\n2,wolf,b\n3,cow,c\n",
            "id,label,text\n1,cat,a\n3,cow,c\n",
            "update-delete",
            ("wolf", None),
        ),
    ],
)
def test_a_row_deleted_on_one_side_and_changed_on_the_other_is_a_conflict(
    tmp_path: Path, target: str, source: str, kind: str, cells: tuple[str | None, str | None]
) -> None:
    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged is None and result.conflict_count == 1
    (conflict,) = result.conflicts
    assert (conflict.key, conflict.column, conflict.kind) == ("2", "label", kind)
    assert (conflict.base, conflict.target, conflict.source) == ("dog", *cells)


def test_a_row_deleted_on_one_side_and_unchanged_on_the_other_is_deleted(tmp_path: Path) -> None:
    target = "id,label,text\n1,cat,a\n3,cow,c\n"
    source = "id,label,text\n1,cat,a\n2,dog,b\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged == b"id,label,text\n1,cat,a\n"
    assert (result.deleted_from_target, result.deleted_from_source) == (1, 1)


def test_a_row_added_on_both_sides_with_the_same_contents_is_taken_once(tmp_path: Path) -> None:
    target = BASE + "4,emu,d\n"
    source = BASE + "4,emu,d\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert result.conflict_count == 0
    assert merged == (BASE + "4,emu,d\n").encode()


def test_a_row_added_on_both_sides_with_different_contents_is_a_conflict(tmp_path: Path) -> None:
    result, merged = merge(tmp_path, "t.csv", BASE, BASE + "4,emu,d\n", BASE + "4,yak,d\n")

    assert merged is None
    (conflict,) = result.conflicts
    assert (conflict.key, conflict.column, conflict.kind) == ("4", "label", "insert-insert")
    assert (conflict.base, conflict.target, conflict.source) == (None, "emu", "yak")


def test_a_file_added_on_both_sides_merges_its_rows(tmp_path: Path) -> None:
    target = "id,label\n1,cat\n2,dog\n"
    source = "id,label\n2,dog\n3,cow\n"

    result, merged = merge(tmp_path, "t.csv", None, target, source)

    assert merged == b"id,label\n1,cat\n2,dog\n3,cow\n"
    assert result.columns_added == [] and result.rows == 3


# -- columns ----------------------------------------------------------------------------


def test_a_column_added_on_one_side_and_rows_added_on_the_other_merge_with_empty_cells(
    tmp_path: Path,
) -> None:
    target = "id,label,text,lang\n1,cat,a,en\n2,dog,b,de\n3,cow,c,fr\n"
    source = BASE + "4,emu,d\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged == b"id,label,text,lang\n1,cat,a,en\n2,dog,b,de\n3,cow,c,fr\n4,emu,d,\n"
    assert result.columns_added == ["lang"] and result.inserted_from_source == 1


def test_columns_new_from_the_source_come_after_the_targets_in_the_sources_order(tmp_path: Path) -> None:
    target = "text,id,label\na,1,cat\nb,2,dog\nc,3,cow\n"
    source = "id,zeta,label,alpha,text\n1,z,cat,x,a\n2,,dog,,b\n3,,cow,,c\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged == b"text,id,label,zeta,alpha\na,1,cat,z,x\nb,2,dog,,\nc,3,cow,,\n"
    assert result.columns_added == ["zeta", "alpha"]


def test_a_column_removed_on_one_side_and_unchanged_on_the_other_is_removed(tmp_path: Path) -> None:
    target = "id,label\n1,cat\n2,dog\n3,cow\n"
    source = "id,label,text\n1,puma,a\n2,dog,b\n3,cow,c\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged == b"id,label\n1,puma\n2,dog\n3,cow\n"
    assert result.columns_removed == ["text"]


def test_a_column_removed_on_one_side_and_changed_on_the_other_is_a_schema_conflict(tmp_path: Path) -> None:
    target = "id,label\n1,cat\n2,dog\n3,cow\n"
    source = "id,label,text\n1,cat,a\n2,dog,B\n3,cow,c\n"

    result, merged = merge(tmp_path, "t.csv", BASE, target, source)

    assert merged is None
    (conflict,) = result.conflicts
    assert conflict.as_dict() == {
        "key": None,
        "column": "text",
        "kind": "schema",
        "base": "string",
        "target": None,
        "source": "string",
    }


def test_a_column_added_on_both_sides_with_different_types_is_a_schema_conflict(tmp_path: Path) -> None:
    base = pa.table({"id": [1, 2], "label": ["cat", "dog"]})
    target = base.append_column("score", pa.array([0.5, 0.25]))
    source = base.append_column("score", pa.array(["high", "low"]))

    result, merged = merge(tmp_path, "t.parquet", base, target, source)

    assert merged is None
    (conflict,) = result.conflicts
    assert (conflict.column, conflict.kind, conflict.target, conflict.source) == (
        "score",
        "schema",
        "double",
        "string",
    )


def test_a_type_changed_differently_on_both_sides_is_a_schema_conflict(tmp_path: Path) -> None:
    base = pa.table({"id": [1, 2], "n": pa.array([1, 2], pa.int32())})
    target = base.set_column(1, "n", pa.array([1, 2], pa.int64()))
    source = base.set_column(1, "n", pa.array([1.0, 2.0], pa.float64()))

    result, _merged = merge(tmp_path, "t.parquet", base, target, source)

    assert [(c.column, c.kind, c.base, c.target, c.source) for c in result.conflicts] == [
        ("n", "schema", "int32", "int64", "double")
    ]


def test_a_type_changed_on_one_side_takes_the_other_sides_new_rows(tmp_path: Path) -> None:
    base = pa.table({"id": [1, 2], "n": pa.array([1, 2], pa.int32())})
    target = base.set_column(1, "n", pa.array([1, 2], pa.int64()))
    source = pa.table({"id": [1, 2, 3], "n": pa.array([1, 2, 3], pa.int32())})

    result, merged = merge(tmp_path, "t.parquet", base, target, source)

    assert result.conflict_count == 0 and merged is not None
    table = pq.read_table(io.BytesIO(merged))
    assert table.schema.field("n").type == pa.int64()
    assert table.to_pylist() == [{"id": 1, "n": 1}, {"id": 2, "n": 2}, {"id": 3, "n": 3}]


def test_a_type_changed_on_one_side_and_values_changed_on_the_other_is_a_schema_conflict(
    tmp_path: Path,
) -> None:
    base = pa.table({"id": [1, 2], "n": pa.array([1, 2], pa.int32())})
    target = base.set_column(1, "n", pa.array(["1", "2"], pa.string()))
    source = base.set_column(1, "n", pa.array([1, 5], pa.int32()))

    result, merged = merge(tmp_path, "t.parquet", base, target, source)
    assert merged is None and [c.kind for c in result.conflicts] == ["schema"]

    result, merged = merge(tmp_path, "t.parquet", base, target, source, strategy="target")
    assert merged is not None and result.settled == 1
    assert parquet_rows(merged) == [{"id": 1, "n": "1"}, {"id": 2, "n": "2"}]


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["base", "target", "source"])
def test_a_repeated_key_is_an_error_naming_the_file_and_the_key(tmp_path: Path, role: str) -> None:
    files = {"base": BASE, "target": BASE, "source": BASE}
    files[role] = BASE + "2,dog,again\n"

    with pytest.raises(TableError) as raised:
        merge(tmp_path, "t.csv", files["base"], files["target"], files["source"])

    message = str(raised.value)
    assert f"{role} version of t.csv" in message and "'2'" in message and "'id'" in message
    assert message.count(".") == 2  # one sentence: "t.csv" and the full stop
    assert not (tmp_path / "merged-t.csv").exists()


@pytest.mark.parametrize("role", ["base", "target", "source"])
def test_a_missing_key_is_an_error(tmp_path: Path, role: str) -> None:
    files = {"base": BASE, "target": BASE, "source": BASE}
    files[role] = BASE + ",emu,d\n"

    with pytest.raises(
        TableError, match=f"the {role} version of t.csv has 1 row with no value in the key column 'id'"
    ):
        merge(tmp_path, "t.csv", files["base"], files["target"], files["source"])


def test_a_null_key_in_parquet_is_an_error(tmp_path: Path) -> None:
    base = pa.table({"id": [1, 2], "label": ["cat", "dog"]})
    source = pa.table({"id": [1, None], "label": ["cat", "dog"]})

    with pytest.raises(TableError, match="source version of t.parquet"):
        merge(tmp_path, "t.parquet", base, base, source)


def test_a_key_column_missing_from_a_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="the key column 'uid' is not in the base version of t.csv"):
        merge(tmp_path, "t.csv", BASE, BASE, BASE, key="uid")


def test_an_unknown_strategy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="source or target"):
        merge(tmp_path, "t.csv", BASE, BASE, BASE, strategy="ours")


# -- strategies -------------------------------------------------------------------------

CONFLICTED_TARGET = "id,label,text\n1,lynx,a\n3,cow,c\n4,emu,d\n"  # 1 changed, 2 deleted, 4 added
CONFLICTED_SOURCE = "id,label,text\n1,puma,a\n2,wolf,b\n3,cow,c\n4,yak,d\n"  # 1 changed, 2 changed, 4 added


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("source", b"id,label,text\n1,puma,a\n3,cow,c\n4,yak,d\n2,wolf,b\n"),
        ("target", b"id,label,text\n1,lynx,a\n3,cow,c\n4,emu,d\n"),
    ],
)
def test_a_strategy_settles_every_conflict_for_its_side(
    tmp_path: Path, strategy: str, expected: bytes
) -> None:
    unsettled, merged = merge(tmp_path, "t.csv", BASE, CONFLICTED_TARGET, CONFLICTED_SOURCE)
    assert merged is None
    assert sorted(c.kind for c in unsettled.conflicts) == ["cell", "delete-update", "insert-insert"]

    result, merged = merge(tmp_path, "t.csv", BASE, CONFLICTED_TARGET, CONFLICTED_SOURCE, strategy=strategy)

    assert merged == expected
    assert result.conflict_count == result.settled == 3 and result.written


def test_a_strategy_settles_a_schema_conflict(tmp_path: Path) -> None:
    target = "id,label\n1,cat\n2,dog\n3,cow\n"
    source = "id,label,text\n1,cat,a\n2,dog,B\n3,cow,c\n"

    _result, by_target = merge(tmp_path, "t.csv", BASE, target, source, strategy="target")
    result, by_source = merge(tmp_path, "t.csv", BASE, target, source, strategy="source")

    assert by_target == b"id,label\n1,cat\n2,dog\n3,cow\n"
    assert by_source == b"id,label,text\n1,cat,a\n2,dog,B\n3,cow,c\n"
    assert result.settled == 1


def test_only_the_first_conflicts_are_listed_but_all_are_counted(tmp_path: Path) -> None:
    rows = range(DETAIL_LIMIT + 50)
    base = "id,label\n" + "".join(f"{i},a\n" for i in rows)
    target = "id,label\n" + "".join(f"{i},b\n" for i in rows)
    source = "id,label\n" + "".join(f"{i},c\n" for i in rows)

    result, _merged = merge(tmp_path, "t.csv", base, target, source)

    assert result.conflict_count == DETAIL_LIMIT + 50
    assert len(result.conflicts) == DETAIL_LIMIT
    assert [c.key for c in result.conflicts[:3]] == ["0", "1", "10"]  # key order, as text


# -- formats ----------------------------------------------------------------------------


def test_csv_cells_with_commas_quotes_and_line_ends_survive(tmp_path: Path) -> None:
    base = 'id,text,note\n1,"a, b","say ""hi"""\n2,"two\nlines",\n3,plain,""\n'
    target = 'id,text,note\n1,"a, b","say ""hi"""\n2,"two\nlines",x\n3,plain,""\n'
    source = 'id,text,note\n1,"a, b, c","say ""hi"""\n2,"two\nlines",\n3,plain,""\n4,"new\r\nrow","q""q"\n'

    result, merged = merge(tmp_path, "t.csv", base, target, source)

    assert result.conflict_count == 0
    assert merged == (
        b'id,text,note\n1,"a, b, c","say ""hi"""\n2,"two\nlines",x\n3,plain,""\n4,"new\r\nrow","q""q"\n'
    )


def test_csv_cells_are_compared_as_written(tmp_path: Path) -> None:
    base = "id,price\n1,1.50\n2,2.0\n"
    target = "id,price\n1,1.50\n2,2.00\n"
    source = "id,price\n1,1.5\n2,2.0\n"

    result, merged = merge(tmp_path, "t.csv", base, target, source)

    assert result.conflict_count == 0
    assert merged == b"id,price\n1,1.5\n2,2.00\n"


def test_a_csv_with_a_byte_order_mark_and_crlf_keeps_them(tmp_path: Path) -> None:
    base = b"\xef\xbb\xbfid,label\r\n1,cat\r\n2,dog\r\n"
    target = b"\xef\xbb\xbfid,label\r\n1,lynx\r\n2,dog\r\n"
    source = b"id,label\n1,cat\n2,dog\n3,cow\n"

    result, merged = merge(tmp_path, "t.csv", base, target, source)

    assert result.conflict_count == 0
    assert merged == b"\xef\xbb\xbfid,label\r\n1,lynx\r\n2,dog\r\n3,cow\r\n"


def test_a_tsv_merges_with_tabs(tmp_path: Path) -> None:
    base = "id\tlabel\n1\tcat, or not\n2\tdog\n"
    target = 'id\tlabel\n1\tcat, or not\n2\tdog\n3\t"tab\there"\n'
    source = "id\tlabel\n1\tcat, or not\n2\tpuppy\n"

    _result, merged = merge(tmp_path, "t.tsv", base, target, source)

    assert merged == b'id\tlabel\n1\tcat, or not\n2\tpuppy\n3\t"tab\there"\n'


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_jsonl_keeps_json_types_and_compares_nested_values_by_value(tmp_path: Path) -> None:
    docs = [
        {"id": 1, "meta": {"lang": "en", "tags": ["a", "b"]}, "score": 1, "when": "2024-01-01T00:00:00"},
        {"id": 2, "meta": None, "score": 2.5, "when": None},
        {"id": 3, "meta": {"lang": "fr", "tags": []}, "score": None, "when": "2024-02-01"},
    ]
    target = [dict(docs[0], meta={"tags": ["a", "b"], "lang": "en"}), dict(docs[1], score=3.5), docs[2]]
    source = [docs[0], docs[1], dict(docs[2], meta={"lang": "fr", "tags": ["c"]}), {"id": 4, "meta": {}}]

    result, merged = merge(tmp_path, "t.jsonl", _jsonl(docs), _jsonl(target), _jsonl(source))

    assert result.conflict_count == 0 and merged is not None
    lines = [json.loads(line) for line in merged.decode().splitlines()]
    assert lines == [
        {"id": 1, "meta": {"lang": "en", "tags": ["a", "b"]}, "score": 1, "when": "2024-01-01T00:00:00"},
        {"id": 2, "meta": None, "score": 3.5, "when": None},
        {"id": 3, "meta": {"lang": "fr", "tags": ["c"]}, "score": None, "when": "2024-02-01"},
        {"id": 4, "meta": {}, "score": None, "when": None},
    ]
    assert result.updated_from_source == 1 and result.updated_from_target == 1


def test_jsonl_nested_values_changed_differently_conflict_as_json_text(tmp_path: Path) -> None:
    base = _jsonl([{"id": "a", "meta": {"tags": ["x"]}}])
    target = _jsonl([{"id": "a", "meta": {"tags": ["y"]}}])
    source = _jsonl([{"id": "a", "meta": {"tags": ["x", "z"]}}])

    result, _merged = merge(tmp_path, "t.jsonl", base, target, source)

    (conflict,) = result.conflicts
    assert (conflict.key, conflict.column, conflict.kind) == ("a", "meta", "cell")
    assert json.loads(str(conflict.target)) == {"tags": ["y"]}
    assert json.loads(str(conflict.source)) == {"tags": ["x", "z"]}


def test_parquet_keeps_the_targets_schema(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.int32(), nullable=False),
            pa.field("label", pa.dictionary(pa.int8(), pa.string())),
            pa.field("score", pa.float32()),
        ]
    )
    base = pa.table({"id": [1, 2], "label": ["cat", "dog"], "score": [0.5, 0.25]}, schema=schema)
    target = pa.table({"id": [1, 2], "label": ["lynx", "dog"], "score": [0.5, 0.25]}, schema=schema)
    source = pa.table(
        {"id": [1, 2, 3], "label": ["cat", "dog", "cow"], "score": [0.5, 0.75, 1.0]}, schema=schema
    )

    result, merged = merge(tmp_path, "t.parquet", base, target, source)

    assert result.conflict_count == 0 and merged is not None
    table = pq.read_table(io.BytesIO(merged))
    assert table.schema.equals(schema)
    assert table.to_pylist() == [
        {"id": 1, "label": "lynx", "score": 0.5},
        {"id": 2, "label": "dog", "score": 0.75},
        {"id": 3, "label": "cow", "score": 1.0},
    ]


# -- order and stability --------------------------------------------------------------------


def test_target_rows_keep_their_order_and_source_rows_follow_in_the_sources_order(tmp_path: Path) -> None:
    base = "id,v\n1,a\n2,b\n3,c\n4,d\n"
    target = "id,v\n4,d\n9,t\n2,b\n1,a\n3,c\n"  # reordered, one added in the middle
    source = "id,v\n8,s\n1,a\n2,B\n7,s\n3,c\n4,d\n6,s\n"

    _result, merged = merge(tmp_path, "t.csv", base, target, source)

    assert merged == b"id,v\n4,d\n9,t\n2,B\n1,a\n3,c\n8,s\n7,s\n6,s\n"


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl", "t.parquet"])
def test_merging_twice_gives_the_same_bytes(tmp_path: Path, name: str) -> None:
    base, target, source = _three_versions(name, rows=300)

    _first, once = merge(tmp_path, name, base, target, source)
    _second, twice = merge(tmp_path, name, base, target, source)

    assert once is not None and once == twice


def test_two_relabelling_passes_on_a_large_csv_keep_both(tmp_path: Path) -> None:
    rows = range(100_000)
    base = "id,text,label\n" + "".join(f"{i},review {i},neutral\n" for i in rows)
    target = "id,text,label\n" + "".join(
        f"{i},review {i},{'positive' if i % 100 == 1 else 'neutral'}\n" for i in rows
    )
    source = "id,text,label\n" + "".join(
        f"{i},review {i},{'negative' if i % 100 == 2 else 'neutral'}\n" for i in rows
    )

    result, merged = merge(tmp_path, "labels.csv", base, target, source)

    assert result.conflict_count == 0 and merged is not None
    lines = merged.decode().splitlines()
    assert len(lines) == 100_001
    assert sum(line.endswith(",positive") for line in lines) == 1000
    assert sum(line.endswith(",negative") for line in lines) == 1000
    assert lines[2:5] == ["1,review 1,positive", "2,review 2,negative", "3,review 3,neutral"]
    assert (result.updated_from_target, result.updated_from_source) == (1000, 1000)


# -- the partitioned path ---------------------------------------------------------------------


def _three_versions(name: str, rows: int) -> tuple[Content, Content, Content]:
    """A base, a target with some rows changed, deleted and added (and a column
    added), and a source with others changed, deleted and added."""
    ids = list(range(rows))
    base = {"id": ids, "text": [f"t,{i}" for i in ids], "label": [f"l{i % 7}" for i in ids]}
    target = {
        "id": [i for i in ids if i % 11 != 3] + [rows + 1, rows + 5],
        "text": [f"t,{i}" for i in ids if i % 11 != 3] + ["new\nline", "x"],
        "label": [f"L{i}" if i % 13 == 1 and i % 17 != 4 else f"l{i % 7}" for i in ids if i % 11 != 3]
        + ["a", None],
    }
    target["extra"] = [str(i) if i % 2 else None for i in target["id"]]
    source = {
        "id": [i for i in ids if i % 17 != 4] + [rows + 2, rows + 5, rows + 3],
        "text": [f"T{i}" if i % 19 == 2 and i % 11 != 3 else f"t,{i}" for i in ids if i % 17 != 4]
        + ["y", "x", '"q"'],
        "label": [f"l{i % 7}" for i in ids if i % 17 != 4] + ["b", None, ""],
    }
    if name.endswith(".parquet"):
        return pa.table(base), pa.table(target), pa.table(source)
    if name.endswith(".jsonl"):
        return (
            _jsonl(pa.table(base).to_pylist()),
            _jsonl(pa.table(target).to_pylist()),
            _jsonl(pa.table(source).to_pylist()),
        )
    texts = []
    for side in (base, target, source):
        table = pa.table(side)
        lines = [",".join(table.column_names)]
        for row in table.to_pylist():
            lines.append(",".join(_csv_cell(row[c]) for c in table.column_names))
        texts.append("\n".join(lines) + "\n")
    return texts[0], texts[1], texts[2]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text == "" or any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.jsonl", "t.parquet"])
@pytest.mark.parametrize("strategy", [None, "source"])
def test_the_partitioned_path_writes_the_same_bytes_as_the_in_memory_one(
    tmp_path: Path, name: str, strategy: str | None
) -> None:
    base, target, source = _three_versions(name.replace(".tsv", ".csv"), rows=2000)
    if name.endswith(".tsv"):
        base, target, source = (str(side).replace(",", "\t") for side in (base, target, source))
    if strategy:  # a conflict for the strategy to settle
        source = source.replace("l1\n", "conflict\n", 1) if isinstance(source, str) else source

    in_memory, expected = merge(tmp_path, name, base, target, source, strategy=strategy)
    partitioned, merged = merge(tmp_path, name, base, target, source, strategy=strategy, memory_budget=20_000)

    assert in_memory.partitions == 1 and partitioned.partitions > 2
    assert expected is not None and merged == expected
    assert partitioned.as_dict() | {"partitions": 1} == in_memory.as_dict()


def test_the_partitioned_path_finds_the_same_conflicts(tmp_path: Path) -> None:
    rows = range(1000)
    base = "id,label\n" + "".join(f"{i},a\n" for i in rows)
    target = "id,label\n" + "".join(f"{i},{'b' if i % 3 else 'a'}\n" for i in rows)
    source = "id,label\n" + "".join(f"{i},{'c' if i % 5 else 'a'}\n" for i in rows if i % 7)

    in_memory, _ = merge(tmp_path, "t.csv", base, target, source)
    partitioned, merged = merge(tmp_path, "t.csv", base, target, source, memory_budget=5_000)

    assert merged is None and partitioned.partitions > 2
    assert partitioned.conflicts == in_memory.conflicts
    assert partitioned.conflict_count == in_memory.conflict_count > DETAIL_LIMIT


def test_progress_is_reported_up_to_one(tmp_path: Path) -> None:
    base, target, source = _three_versions("t.parquet", rows=500)
    seen: list[float] = []

    merge(tmp_path, "t.parquet", base, target, source, progress=seen.append, memory_budget=5_000)

    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 5


def test_a_duplicate_key_is_found_on_the_partitioned_path_too(tmp_path: Path) -> None:
    base = "id,label\n" + "".join(f"{i},a\n" for i in range(500))
    with pytest.raises(TableError, match="'7' more than once"):
        merge(tmp_path, "t.csv", base, base + "7,again\n", base, memory_budget=2_000)


# -- properties ------------------------------------------------------------------------------

VALUES = st.sampled_from(["x", "y", "", None, "a,b", 'say "hi"', "two\nlines"])
COLUMNS = ("a", "b")


@st.composite
def tables(draw: st.DrawFn) -> list[tuple[int, dict[str, str | None]]]:
    keys = draw(st.lists(st.integers(0, 15), unique=True, max_size=8))
    return [(key, {column: draw(VALUES) for column in COLUMNS}) for key in keys]


@st.composite
def edited(
    draw: st.DrawFn, base: list[tuple[int, dict[str, str | None]]]
) -> list[tuple[int, dict[str, str | None]]]:
    """A branch: some base rows deleted, some cells changed, some rows added (keys
    from a pool both branches draw from, so both may add the same key), anywhere."""
    rows = []
    for key, cells in base:
        action = draw(st.sampled_from(["keep", "keep", "delete", "update"]))
        if action == "delete":
            continue
        if action == "update":
            cells = dict(cells, **{draw(st.sampled_from(COLUMNS)): draw(VALUES)})
        rows.append((key, cells))
    for key in draw(st.lists(st.integers(20, 24), unique=True, max_size=3)):
        position = draw(st.integers(0, len(rows)))
        rows.insert(position, (key, {column: draw(VALUES) for column in COLUMNS}))
    return rows


def _csv_text(rows: list[tuple[int, dict[str, str | None]]]) -> str:
    lines = ["id," + ",".join(COLUMNS)] + [
        ",".join([str(key), *(_csv_cell(cells[c]) for c in COLUMNS)]) for key, cells in rows
    ]
    return "\n".join(lines) + "\n"


def expected_merge(
    base: list[tuple[int, dict[str, str | None]]],
    target: list[tuple[int, dict[str, str | None]]],
    source: list[tuple[int, dict[str, str | None]]],
) -> tuple[int, list[tuple[int, dict[str, str | None]]]]:
    """The merge worked out row by row: (conflicts, rows)."""
    b, t, s = dict(base), dict(target), dict(source)
    conflicts = 0
    rows = []
    for key, cells in target:
        if key in b and key not in s:
            changed = [c for c in COLUMNS if cells[c] != b[key][c]]
            conflicts += len(changed)
            continue
        if key in b:
            merged = {c: cells[c] if cells[c] != b[key][c] else s[key][c] for c in COLUMNS}
            conflicts += sum(
                1
                for c in COLUMNS
                if cells[c] != b[key][c] and s[key][c] != b[key][c] and cells[c] != s[key][c]
            )
            rows.append((key, merged))
        else:
            if key in s:
                conflicts += sum(1 for c in COLUMNS if cells[c] != s[key][c])
            rows.append((key, cells))
    for key, cells in source:
        if key in t:
            continue
        if key in b:
            conflicts += sum(1 for c in COLUMNS if cells[c] != b[key][c])
            continue
        rows.append((key, cells))
    return conflicts, rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_merge_without_conflicts_applies_both_branches_edits(tmp_path: Path, data: st.DataObject) -> None:
    base = data.draw(tables())
    target = data.draw(edited(base))
    source = data.draw(edited(base))
    conflicts, rows = expected_merge(base, target, source)

    result, merged = merge(tmp_path, "t.csv", _csv_text(base), _csv_text(target), _csv_text(source))

    assert result.conflict_count == conflicts
    if not conflicts:
        assert merged == _csv_text(rows).encode()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_branch_merged_with_itself_or_an_unchanged_target_is_that_branch(
    tmp_path: Path, data: st.DataObject
) -> None:
    base = data.draw(tables())
    branch = _csv_text(data.draw(edited(base)))

    _result, with_itself = merge(tmp_path, "t.csv", _csv_text(base), branch, branch)
    _result, into_unchanged = merge(tmp_path, "t.csv", _csv_text(base), _csv_text(base), branch)
    _result, from_unchanged = merge(tmp_path, "t.csv", _csv_text(base), branch, _csv_text(base))

    assert with_itself == from_unchanged == branch.encode()
    assert into_unchanged is not None
    assert sorted(into_unchanged.decode().splitlines()) == sorted(branch.splitlines())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_partitioned_path_agrees_with_the_in_memory_one_on_any_edits(
    tmp_path: Path, data: st.DataObject
) -> None:
    base_rows = data.draw(tables())
    base = _csv_text(base_rows)
    target = _csv_text(data.draw(edited(base_rows)))
    source = _csv_text(data.draw(edited(base_rows)))
    strategy = data.draw(st.sampled_from([None, "source", "target"]))

    in_memory, expected = merge(tmp_path, "t.csv", base, target, source, strategy=strategy)
    size = len(base) + len(target) + len(source)
    partitioned, merged = merge(
        tmp_path, "t.csv", base, target, source, strategy=strategy, memory_budget=size
    )

    assert merged == expected
    assert partitioned.as_dict() | {"partitions": 1} == in_memory.as_dict()


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl"])
def test_text_files_read_a_chunk_at_a_time_give_the_same_bytes(tmp_path: Path, name: str) -> None:
    """Files of a few MiB, read in chunks of 1 MiB on the partitioned path: a chunk
    ends only between records, never inside a quoted cell that holds line ends."""
    rows = range(100_000 if name.endswith(".csv") else 50_000)

    def text(i: int, mark: str) -> str:
        return f'{mark} "{i}",\nsecond line' if i % 7 == 0 else f"{mark} {i}"

    def version(mark: str, changed: range) -> str:
        table = [{"id": i, "text": text(i, mark if i in changed else "t"), "n": i % 10} for i in rows]
        if name.endswith(".jsonl"):
            return _jsonl(table)
        return "id,text,n\n" + "".join(f"{r['id']},{_csv_cell(r['text'])},{r['n']}\n" for r in table)

    base, target, source = (
        version("t", range(0)),
        version("T", range(0, len(rows), 5)),
        version("S", range(1, len(rows), 5)),
    )
    assert len(base) > 1.5 * 1024 * 1024

    in_memory, expected = merge(tmp_path, name, base, target, source)
    partitioned, merged = merge(tmp_path, name, base, target, source, memory_budget=1_000_000)

    assert in_memory.conflict_count == 0 and in_memory.updated_from_source == len(rows) // 5
    assert partitioned.partitions > 2 and merged == expected


# -- Arrow's threads ------------------------------------------------------------------------

EXIT_SCRIPT = """
import gc, sys
from catalog.domain.table_merge import merge_table_files
folder, name, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
merge_table_files(
    name, f"{folder}/base-{name}", f"{folder}/target-{name}", f"{folder}/source-{name}",
    f"{folder}/exit-{name}", key="id", strategy="source", memory_budget=budget,
)
gc.collect()
sys.exit(3)
"""


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl", "t.parquet"])
def test_a_process_that_merged_tables_exits_with_its_own_code(tmp_path: Path, name: str) -> None:
    """Every Arrow call of the merge runs on the calling thread: a process that used
    Arrow's pools can die of SIGABRT as it exits (apache/arrow#34314)."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    merge(tmp_path, name, *_three_versions(name, rows=2000))
    root = Path(__file__).resolve().parents[2]

    def run(budget: int) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", EXIT_SCRIPT, str(tmp_path), name, str(budget)]
        return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, check=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, [1 << 30, 20_000]))  # in memory, and partitioned
    assert [result.returncode for result in results] == [3, 3], [r.stderr for r in results]
