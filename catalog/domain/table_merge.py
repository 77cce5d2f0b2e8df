"""Three-way merge of one table by a key column: base, target and source.

Plain Python over pyarrow, with no Django, so it can be tested and benchmarked on
its own. `merge_table_files` reads the three versions of one file (CSV, TSV, JSON
Lines or Parquet, by the file's name), merges their rows by key and writes the
merged table in the target's format, or reports the conflicts and writes nothing.

How rows merge. The three key columns are joined (a hash join on the key, carrying
each side's row number, never the rows themselves), then every column is merged
at once for all rows with vectorised kernels: a cell changed on one side takes that
change; the same change on both is taken once; two different changes of one cell
are a conflict. A row deleted on one side and changed on the other, or added on
both with different contents, is a conflict. Columns merge the same way: added on
one side, the rows without it get nulls; removed on one side while unchanged on
the other, it goes; removed on one side and changed on the other, or given two
different types, it is a conflict. A `strategy` ("source" or "target") settles
every conflict for that side. Python loops run per column and per conflict listed,
never per row (but for writing JSON Lines, a line at a time).

The result keeps the target's column order (columns new from the source after
them, in the source's order) and row order (rows new from the source after the
target's, in the source's order). It is deterministic: the same inputs give the
same bytes.

When the inputs would take more than `memory_budget` of Arrow memory to merge
at once (about three times their own size, estimated from their first rows), they
are split by a hash of the key into partition files in a folder beside `out`,
merged partition by partition, and the sorted partition outputs are merged back in
row order in one streaming pass: memory stays about one partition's worth, and the
output is byte for byte the one the in-memory path writes.

As in `tabular`, every Arrow call runs on the calling thread (``use_threads=False``,
files opened by Arrow itself or handed over as buffers, never as Python files): a
process that used Arrow's pools can abort as it exits (apache/arrow#34314).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog.domain.tabular import TableError

STRATEGIES = ("source", "target")
CONFLICT_KINDS = ("schema", "cell", "delete-update", "update-delete", "insert-insert")
DETAIL_LIMIT = 200  # conflicts listed in full; every one is counted
DEFAULT_MEMORY_BUDGET = 512 * 1024 * 1024  # bytes of Arrow data a merge may hold at once
WORKING_FACTOR = 3  # what a merge in memory holds, in multiples of its inputs
MAX_PARTITIONS = 512  # at most this many files open at once
PARQUET_ROW_GROUP = 1 << 20  # rows at most (pyarrow's default)
PARQUET_ROW_GROUP_BYTES = 64 * 1024 * 1024  # and about this much data, by the target's row size
TEXT_CHUNK_BYTES = 64 * 1024 * 1024  # how much CSV or JSON Lines is parsed at once
SAMPLE_BYTES = 1024 * 1024  # how much of a file is read to estimate its size in Arrow
BATCH_ROWS = 64 * 1024

_K, _T, _S, _B = "__strata_key", "__strata_target", "__strata_source", "__strata_base"
_POSITION, _ORDER = "__strata_position", "__strata_order"
_BOM = b"\xef\xbb\xbf"

Scalar = str | int | float | bool | None


# -- what a merge reports -----------------------------------------------------------


@dataclass(frozen=True)
class RowConflict:
    """One conflict: a cell (`kind` "cell"), a row's cell deleted on one side and
    changed on the other ("delete-update": deleted on target, changed on source;
    "update-delete" the reverse), a cell of a row added on both sides
    ("insert-insert"), or a whole column ("schema": `key` is None and the values
    are the column's type on each side, None where it is missing). Values are
    JSON scalars: nested values as JSON text; None where the side has no value."""

    key: Scalar
    column: str | None
    kind: str
    base: Scalar
    target: Scalar
    source: Scalar

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "column": self.column,
            "kind": self.kind,
            "base": self.base,
            "target": self.target,
            "source": self.source,
        }


@dataclass
class TableMergeResult:
    """What a merge did, or would do once its conflicts are settled.

    `conflicts` lists at most `DETAIL_LIMIT` conflicts, in key order (schema ones
    first); `conflict_count` counts them all, and `settled` how many the strategy
    settled. Row counts say where the result's rows come from: inserted (rows a side
    added that are in the result; a row added on both sides counts for both),
    updated (rows of the result carrying at least one change of that side) and
    deleted (rows of the base that side deleted and the result does not have).
    `written` is True when `out` holds the merged table."""

    path: str
    key: str
    strategy: str | None
    conflicts: list[RowConflict] = field(default_factory=list)
    conflict_count: int = 0
    settled: int = 0
    inserted_from_source: int = 0
    updated_from_source: int = 0
    deleted_from_source: int = 0
    inserted_from_target: int = 0
    updated_from_target: int = 0
    deleted_from_target: int = 0
    rows: int = 0
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    partitions: int = 1
    written: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "key": self.key,
            "strategy": self.strategy,
            "conflicts": [conflict.as_dict() for conflict in self.conflicts],
            "conflict_count": self.conflict_count,
            "settled": self.settled,
            "inserted_from_source": self.inserted_from_source,
            "updated_from_source": self.updated_from_source,
            "deleted_from_source": self.deleted_from_source,
            "inserted_from_target": self.inserted_from_target,
            "updated_from_target": self.updated_from_target,
            "deleted_from_target": self.deleted_from_target,
            "rows": self.rows,
            "columns_added": self.columns_added,
            "columns_removed": self.columns_removed,
            "partitions": self.partitions,
            "written": self.written,
        }


# -- the entry point ----------------------------------------------------------------


def merge_table_files(
    path: str,
    base: str | None,
    target: str,
    source: str,
    out: str,
    *,
    key: str,
    strategy: str | None = None,
    progress: Callable[[float], None] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> TableMergeResult:
    """Merge the rows of three versions of the table `path` by the column `key`.

    `base` is the common ancestor's file (None when the file is new on both
    sides), `target` the file of the branch merged into, `source` the one merged
    from. The merged table is written to `out` only if no conflict is left
    (or `strategy`, "source" or "target", settled them all). Raises TableError for a
    file that cannot be read, a missing key column, or a key that is empty or
    repeated in a file.

    `progress` is called with the fraction done, now and then (per phase, and per
    partition on the partitioned path). `memory_budget` is the Arrow memory the
    merge may hold at once, in bytes; beyond it the merge spills to disk."""
    if strategy is not None and strategy not in STRATEGIES:
        raise TableError(f"the merge strategy must be source or target, not {strategy!r}.")
    report = progress or (lambda fraction: None)
    fmt = _Format.of(path)
    files = {"base": base, "target": target, "source": source}
    inputs = {role: _Input(fmt, file, role, path) for role, file in files.items() if file is not None}
    _align_empty_inputs(inputs)
    if fmt.kind == "jsonl":
        _unify_json_types(inputs)
    schemas = {role: inputs[role].schema if role in inputs else None for role in files}
    for role, schema in schemas.items():
        if schema is not None and key not in schema.names:
            raise TableError(f"the key column {key!r} is not in the {role} version of {path}.")
    key_type = _key_type(path, key, schemas)
    context = _Context(fmt, path, key, key_type, strategy, schemas, inputs)
    estimate = sum(item.estimate() for item in inputs.values())
    report(0.0)
    # A merge in memory holds the three tables, their join and the output: about
    # three times the inputs. A partition is sized to a quarter of the budget.
    if WORKING_FACTOR * estimate <= memory_budget:
        result = _merge_in_memory(context, out, report)
    else:
        count = min(MAX_PARTITIONS, max(2, math.ceil(4 * estimate / max(memory_budget, 1))))
        result = _merge_partitioned(context, out, count, memory_budget, report)
    report(1.0)
    return result


# -- formats and reading ------------------------------------------------------------


@dataclass(frozen=True)
class _Format:
    kind: str  # "csv", "jsonl" or "parquet"
    delimiter: str = ","

    @classmethod
    def of(cls, path: str) -> _Format:
        lowered = path.lower()
        if lowered.endswith(".parquet"):
            return cls("parquet")
        if lowered.endswith((".jsonl", ".ndjson")):
            return cls("jsonl")
        if lowered.endswith(".csv"):
            return cls("csv", ",")
        if lowered.endswith(".tsv"):
            return cls("csv", "\t")
        raise TableError(f"{path} is not a table Strata merges by row (CSV, TSV, JSONL or Parquet).")


class _Input:
    """One of the three files: its schema, its size in Arrow terms, and its rows,
    whole or a chunk at a time. CSV cells are read as text, as written; JSON values
    keep their JSON types (strings that look like dates stay strings)."""

    def __init__(self, fmt: _Format, file: str, role: str, path: str) -> None:
        self.fmt, self.file, self.role, self.path = fmt, file, role, path
        self.size = os.path.getsize(file)
        self.empty = False  # a text file without a header or rows: its columns are unknown
        self._cached: pa.Table | None = None
        self._estimate: int | None = None
        if fmt.kind == "parquet":
            self.schema = _decoded_schema(self._parquet().schema_arrow)
        elif fmt.kind == "csv":
            names = self._csv_header()
            self.empty = names is None
            self.schema = pa.schema([(name, pa.string()) for name in names or []])
        else:
            self.schema = self._json_schema()
            self.empty = not self.schema.names
        self.declared = self._parquet().schema_arrow if fmt.kind == "parquet" else self.schema

    def _fail(self, error: Exception) -> TableError:
        text = str(error).strip()
        first_line = text.splitlines()[0] if text else type(error).__name__
        return TableError(f"cannot read the {self.role} version of {self.path} as a table: {first_line}")

    def estimate(self) -> int:
        """Bytes of Arrow data the file becomes, roughly: what its first rows (about
        `SAMPLE_BYTES` of them) take in Arrow, scaled to the whole file. The sizes in
        a Parquet footer are of encoded data: a dictionary-encoded column of
        strings can take ten times more once read."""
        if self._estimate is None:
            self._estimate = self._measure()
        return self._estimate

    def _measure(self) -> int:
        if self.empty:
            return 0
        if self.fmt.kind == "parquet":
            parquet = self._parquet()
            try:
                batch = next(parquet.iter_batches(batch_size=4096, use_threads=False), None)
            except (pa.ArrowInvalid, OSError) as error:
                raise self._fail(error) from None
            if batch is None or not batch.num_rows:
                return 0
            return (
                _decode(pa.Table.from_batches([batch])).nbytes * parquet.metadata.num_rows // batch.num_rows
            )
        for first, data in _text_chunks(self.file, SAMPLE_BYTES, quoted=self.fmt.kind == "csv"):
            table = (
                self._parse_csv(data, first)
                if self.fmt.kind == "csv"
                else self._parse_json(data, self.schema)
            )
            return table.nbytes * self.size // max(len(data), 1)
        return 0

    def row_bytes(self) -> int:
        """Bytes of Arrow data per row of a Parquet file, roughly, from its footer."""
        rows = self._parquet().metadata.num_rows
        return self.estimate() // rows if rows else 0

    def read(self) -> pa.Table:
        if self._cached is not None:
            return self._cached
        return _concat(list(self.chunks(None)), self.schema)

    def chunks(self, chunk_bytes: int | None) -> Iterator[pa.Table]:
        """The rows, a chunk at a time, each with exactly `self.schema`."""
        if self.empty:
            return
        if self.fmt.kind == "parquet":
            parquet = self._parquet()
            if chunk_bytes is None:
                try:
                    yield _decode(parquet.read(use_threads=False))
                except (pa.ArrowInvalid, OSError) as error:
                    raise self._fail(error) from None
                return
            batch_rows = max(1024, min(4 * BATCH_ROWS, chunk_bytes // max(self.row_bytes(), 1)))
            try:
                for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
                    yield _decode(pa.Table.from_batches([batch]))
            except (pa.ArrowInvalid, OSError) as error:
                raise self._fail(error) from None
            return
        for first, data in _text_chunks(self.file, chunk_bytes, quoted=self.fmt.kind == "csv"):
            yield (
                self._parse_csv(data, first)
                if self.fmt.kind == "csv"
                else self._parse_json(data, self.schema)
            )

    def _parquet(self) -> Any:
        import pyarrow.parquet as pq

        try:
            # A file Arrow reads itself, as it is asked: not a memory map, whose pages
            # would count as the process's memory for as long as the file is open.
            return pq.ParquetFile(pa.OSFile(self.file), pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as error:
            raise self._fail(error) from None

    def _csv_header(self) -> list[str] | None:
        with open(self.file, encoding="utf-8-sig", errors="replace", newline="") as handle:
            names = next(csv.reader(handle, delimiter=self.fmt.delimiter), None)
        if names is None:
            return None
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise TableError(
                f"the {self.role} version of {self.path} has more than one column named {repeated[0]!r}."
            )
        return names

    def _parse_csv(self, data: bytes, first: bool) -> pa.Table:
        import pyarrow.csv as pcsv

        names = self.schema.names
        try:
            table = pcsv.read_csv(
                pa.BufferReader(data),
                read_options=pcsv.ReadOptions(use_threads=False, column_names=None if first else names),
                parse_options=pcsv.ParseOptions(delimiter=self.fmt.delimiter, newlines_in_values=True),
                # Every cell as text, as written: "1.50" stays "1.50". An empty cell is
                # null and a quoted empty one ("") the empty string, so both survive.
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=True,
                    null_values=[""],
                    quoted_strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, OSError) as error:
            raise self._fail(error) from None
        if table.schema.names != names:
            raise TableError(f"cannot read the header of the {self.role} version of {self.path}.")
        return table

    def _json_schema(self) -> pa.Schema:
        """Types inferred chunk by chunk and widened to fit every chunk; strings
        Arrow would read as timestamps are kept as strings."""
        seen: list[pa.Schema] = []
        for _first, data in _text_chunks(self.file, TEXT_CHUNK_BYTES, quoted=False):
            table = self._parse_json(data, None)
            # A file of one chunk keeps its rows, to be used if their types stand.
            self._cached = None if seen else table
            seen.append(table.schema)
        if not seen:
            return pa.schema([])
        try:
            schema = pa.unify_schemas(seen, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise self._fail(error) from None
        schema = pa.schema([pa.field(f.name, _without_timestamps(f.type)) for f in schema])
        if self._cached is not None and not self._cached.schema.equals(schema):
            self._cached = None
        return schema

    def _parse_json(self, data: bytes, explicit: pa.Schema | None) -> pa.Table:
        import pyarrow.json as pj

        try:
            return pj.read_json(
                pa.BufferReader(data),
                read_options=pj.ReadOptions(use_threads=False),
                parse_options=pj.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="infer"),
            )
        except (pa.ArrowInvalid, OSError) as error:
            raise self._fail(error) from None

    def retype(self, schema: pa.Schema) -> None:
        """Read JSON with these (widened) types from now on."""
        if not schema.equals(self.schema):
            self.schema = self.declared = schema
            self._cached = None


def _text_chunks(file: str, chunk_bytes: int | None, *, quoted: bool) -> Iterator[tuple[bool, bytes]]:
    """(is the first, bytes) of a text file cut only between records: at a line end
    (outside quotes, for CSV, where a quoted cell may hold line ends)."""
    with open(file, "rb") as handle:
        if chunk_bytes is None:
            data = handle.read()
            if data.strip(_BOM + b" \t\r\n"):
                yield True, data
            return
        first, carry = True, b""
        while True:
            block = handle.read(chunk_bytes)
            data = carry + block
            if not block:
                if data.strip(_BOM + b" \t\r\n"):
                    yield first, data
                return
            cut = _record_end(data, quoted)
            if cut <= 0:
                carry = data
                continue
            yield first, data[:cut]
            first, carry = False, data[cut:]


def _record_end(data: bytes, quoted: bool) -> int:
    """Just past the last line end of `data` that ends a record, or -1. In CSV a line
    end ends a record when an even number of quotes comes before it (a quote in a
    quoted cell is written twice, so it keeps the count even)."""
    position = len(data)
    quotes_after = 0
    total = data.count(b'"') if quoted else 0
    while True:
        newline = data.rfind(b"\n", 0, position)
        if newline < 0:
            return -1
        if not quoted:
            return newline + 1
        quotes_after += data.count(b'"', newline, position)
        if (total - quotes_after) % 2 == 0:
            return newline + 1
        position = newline


def _without_timestamps(type_: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_) or pa.types.is_time(type_):
        return pa.string()
    if pa.types.is_struct(type_):
        return pa.struct([pa.field(f.name, _without_timestamps(f.type)) for f in type_])
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        item = _without_timestamps(type_.value_type)
        return pa.list_(item) if pa.types.is_list(type_) else pa.large_list(item)
    return type_


def _decoded_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in schema]
    )


def _decode(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns as plain ones, so they compare and join."""
    for index, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):
            table = table.set_column(index, table.field(index).name, column.cast(column.type.value_type))
    return table


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _align_empty_inputs(inputs: dict[str, _Input]) -> None:
    """A text file with no header and no rows has lost every row, not every column:
    it takes the columns of the base (or of the other side)."""
    known = [item for role in ("base", "target", "source") if (item := inputs.get(role)) and not item.empty]
    for item in inputs.values():
        if item.empty and known:
            item.schema = item.declared = known[0].schema


def _unify_json_types(inputs: dict[str, _Input]) -> None:
    """JSON has numbers, not integers and floats: a column Arrow read as integers
    on one side and floats on another is read as floats on all three."""
    by_name: dict[str, list[pa.DataType]] = {}
    # The target first: where objects' keys come in another order on another side,
    # the target's order is the one kept.
    for item in sorted(inputs.values(), key=lambda item: ("target", "base", "source").index(item.role)):
        for f in item.schema:
            by_name.setdefault(f.name, []).append(f.type)
    widened: dict[str, pa.DataType] = {}
    for name, types in by_name.items():
        try:
            widened[name] = (
                pa.unify_schemas([pa.schema([(name, t)]) for t in types], promote_options="permissive")
                .field(name)
                .type
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
    for item in inputs.values():
        item.retype(pa.schema([pa.field(f.name, widened.get(f.name, f.type)) for f in item.schema]))


def _key_type(path: str, key: str, schemas: dict[str, pa.Schema | None]) -> pa.DataType:
    target = schemas["target"]
    assert target is not None
    key_type = target.field(key).type
    if pa.types.is_nested(key_type) or pa.types.is_null(key_type):
        raise TableError(
            f"the key column {key!r} of {path} holds {key_type} values; a key must be plain values."
        )
    for role in ("base", "source"):
        schema = schemas[role]
        if schema is not None and not schema.field(key).type.equals(key_type):
            other = schema.field(key).type
            if pa.types.is_nested(other):
                raise TableError(
                    f"the key column {key!r} of {path} holds {other} values in the {role} version."
                )
    return key_type


# -- the plan of the columns --------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """An output column: merged cell by cell ("merge"), or taken whole from one side
    ("target", "source"), with the type it is written with."""

    name: str
    type: pa.DataType
    mode: str
    base_comparable: bool = True


@dataclass(frozen=True)
class _Need:
    """A fact about the rows that a column's fate depends on: did `side` change a
    value of `column` ("changed"); can `side`'s new rows take `type` ("castable");
    can the base's values take `type` ("base-castable")."""

    kind: str
    side: str
    column: str
    type: pa.DataType | None = None


@dataclass
class _Plan:
    columns: list[_Column]
    conflicts: list[RowConflict]
    added: list[str]
    removed: list[str]


class _Context:
    """What every unit of the merge shares: the files, the key, the strategy, the plan."""

    def __init__(
        self,
        fmt: _Format,
        path: str,
        key: str,
        key_type: pa.DataType,
        strategy: str | None,
        schemas: dict[str, pa.Schema | None],
        inputs: dict[str, _Input],
    ) -> None:
        self.fmt, self.path, self.key, self.key_type, self.strategy = fmt, path, key, key_type, strategy
        self.schemas, self.inputs = schemas, inputs
        self.needs: list[_Need] = []
        self.plan = self.make_plan({})

    def make_plan(self, facts: dict[_Need, bool]) -> _Plan:
        """The output's columns. Run once with no facts to learn which facts the plan
        depends on (`self.needs`, none when the three schemas agree), then again
        with them."""
        self.needs = []
        base, target, source = self.schemas["base"], self.schemas["target"], self.schemas["source"]
        assert target is not None and source is not None
        names = list(target.names) + [name for name in source.names if name not in target.names]
        columns: list[_Column] = []
        conflicts: list[RowConflict] = []

        def type_in(schema: pa.Schema | None, name: str) -> pa.DataType | None:
            return schema.field(name).type if schema is not None and name in schema.names else None

        def fact(kind: str, side: str, name: str, type_: pa.DataType | None = None) -> bool:
            need = _Need(kind, side, name, type_)
            if need not in self.needs:
                self.needs.append(need)
            return facts.get(need, False)

        for name in names:
            if name == self.key:
                columns.append(_Column(name, self.key_type, "key"))
                continue
            types = {
                "base": type_in(base, name),
                "target": type_in(target, name),
                "source": type_in(source, name),
            }
            column = _decide(name, types, fact)
            if column is None or column.mode != "conflict":
                if column is not None:
                    columns.append(column)
                continue
            conflicts.append(
                RowConflict(
                    None, name, "schema", *(_type_name(types[side]) for side in ("base", "target", "source"))
                )
            )
            # A conflict left unsettled plans the column as the target has it, so the
            # rows can still be merged and their conflicts counted.
            winner = self.strategy or "target"
            if types[winner] is not None:
                columns.append(_Column(name, types[winner], winner))
        kept = [column.name for column in columns]
        added = [name for name in kept if base is not None and name not in base.names]
        removed = [name for name in base.names if name not in kept] if base is not None else []
        return _Plan(columns, conflicts, added, removed)


def _decide(name: str, types: dict[str, pa.DataType | None], fact: Callable[..., bool]) -> _Column | None:
    """The fate of one column, from its type on each side (None: not there)."""
    base, target, source = types["base"], types["target"], types["source"]
    conflict = _Column(name, pa.null(), "conflict")
    if target is not None and source is not None:
        if target.equals(source):
            if base is None or base.equals(target):
                return _Column(name, target, "merge")
            return _Column(name, target, "merge", base_comparable=fact("base-castable", "base", name, target))
        for changed, kept in (("source", "target"), ("target", "source")):
            if base is not None and types[kept] is not None and base.equals(types[kept]):
                new_type = types[changed]
                # One side changed the type: it wins if the other changed no value of
                # the column and its new rows fit the new type.
                if not fact("changed", kept, name) and fact("castable", kept, name, new_type):
                    return _Column(name, new_type, changed)
                return conflict
        return conflict
    for present in ("target", "source"):
        present_type = types[present]
        if present_type is None:
            continue
        if base is None:
            return _Column(name, present_type, "merge")  # added on one side
        if base.equals(present_type) and not fact("changed", present, name):
            return None  # removed on the other side, unchanged on this one
        return conflict
    return None  # removed on both sides, or in neither


def _type_name(type_: pa.DataType | None) -> str | None:
    return None if type_ is None else str(type_)


# -- one unit of the merge: the whole table, or one partition ------------------------


@dataclass
class _Sides:
    """The three tables of a unit (key cast to the target's type, dictionaries
    decoded), and the target's and source's rows' positions in their whole files."""

    base: pa.Table | None
    target: pa.Table
    source: pa.Table
    target_positions: pa.Array
    source_positions: pa.Array
    target_total: int  # rows in the whole target: source rows are ordered after them


class _Joined:
    """The three key columns joined, in output order: each row holds the row number
    it has in each side's table (null where the key is not on that side)."""

    def __init__(self, sides: _Sides, key: str) -> None:
        self.sides = sides
        target = pa.table({_K: sides.target.column(key), _T: _arange(sides.target.num_rows)})
        source = pa.table({_K: sides.source.column(key), _S: _arange(sides.source.num_rows)})
        joined = target.join(source, keys=_K, join_type="full outer", use_threads=False)
        if sides.base is not None:
            base = pa.table({_K: sides.base.column(key), _B: _arange(sides.base.num_rows)})
            joined = joined.join(base, keys=_K, join_type="left outer", use_threads=False)
        else:
            joined = joined.append_column(_B, pa.nulls(joined.num_rows, pa.int64()))
        target_rows, source_rows = _flat(joined.column(_T)), _flat(joined.column(_S))
        order = pc.if_else(
            pc.is_valid(target_rows),
            sides.target_positions.take(target_rows),
            pc.add(sides.source_positions.take(source_rows), sides.target_total),
        )
        ranked = pc.sort_indices(order)
        joined = joined.take(ranked).combine_chunks()
        self.order = _flat(order.take(ranked))
        self.keys = _flat(joined.column(_K))
        self.index = {
            side: _flat(joined.column(name)) for side, name in (("target", _T), ("source", _S), ("base", _B))
        }
        self.has = {side: pc.is_valid(self.index[side]) for side in self.index}
        self.rows = joined.num_rows

    def table(self, side: str) -> pa.Table | None:
        return getattr(self.sides, side)

    def values(self, side: str, name: str, where: pa.Array | None = None) -> pa.Array | None:
        """Column `name` of `side` lined up with the joined rows (null where the row is
        not there, or outside `where`); None if the side has no such column."""
        table = self.table(side)
        if table is None or name not in table.column_names:
            return None
        index = self.index[side]
        if where is not None:
            index = pc.if_else(where, index, pa.scalar(None, pa.int64()))
        return _flat(table.column(name).take(index))


def _merge_unit(context: _Context, sides: _Sides, *, build: bool) -> _Outcome:
    """Merge the rows of one unit: conflicts, counts and (if `build`) the output
    rows in order, with their order numbers."""
    joined = _Joined(sides, context.key)
    in_t, in_s, in_b = joined.has["target"], joined.has["source"], joined.has["base"]
    not_b = pc.invert(in_b)
    two = pc.and_(in_t, in_s)
    three = pc.and_(two, in_b)
    only_t, only_s = pc.and_(in_t, pc.invert(in_s)), pc.and_(in_s, pc.invert(in_t))
    strategy = context.strategy
    source_wins = strategy == "source"
    outcome = _Outcome()

    # Rows deleted on one side and changed on the other.
    update_delete = _row_changes(context, joined, "target", pc.and_(only_t, in_b), "update-delete", outcome)
    delete_update = _row_changes(context, joined, "source", pc.and_(only_s, in_b), "delete-update", outcome)
    keep = pc.or_(
        two,
        pc.or_(
            pc.and_(only_t, pc.or_(not_b, pc.and_(update_delete, pa.scalar(strategy == "target")))),
            pc.and_(only_s, pc.or_(not_b, pc.and_(delete_update, pa.scalar(source_wins)))),
        ),
    )

    took_t = took_s = _falses(joined.rows)
    values: dict[str, pa.Array] = {}
    base_names = sides.base.column_names if sides.base is not None else []
    for column in context.plan.columns:
        if column.mode == "key":
            values[column.name] = joined.keys
            continue
        if column.mode in STRATEGIES:
            if build:
                values[column.name] = _take_whole(joined, column)
            continue
        t_values = joined.values("target", column.name)
        s_values = joined.values("source", column.name)
        b_values = joined.values("base", column.name, where=three)
        if b_values is not None and not b_values.type.equals(column.type):
            b_values = b_values.cast(column.type) if column.base_comparable else None
        t_changed = _changed(t_values, b_values, column, three, joined.rows)
        s_changed = _changed(s_values, b_values, column, three, joined.rows)
        if t_values is None or s_values is None:
            choose_source = in_s if t_values is None else _falses(joined.rows)
        else:
            differ = _differs(t_values, s_values)
            cell = pc.and_(three, pc.and_(pc.and_(t_changed, s_changed), differ))
            both_new = pc.and_(pc.and_(two, not_b), differ)
            outcome.add(joined, cell, "cell", column.name, b_values, t_values, s_values)
            outcome.add(joined, both_new, "insert-insert", column.name, None, t_values, s_values)
            conflict = pc.or_(cell, both_new)
            chosen = pc.if_else(conflict, pa.scalar(source_wins), pc.and_(s_changed, pc.invert(t_changed)))
            choose_source = pc.if_else(two, chosen, only_s)
            if column.name in base_names:
                # Whose change a cell of a row on all three sides carries: a cell in
                # conflict carries the winner's.
                lost_by_t = pc.and_(cell, pa.scalar(source_wins))
                lost_by_s = pc.and_(cell, pa.scalar(not source_wins))
                took_t = pc.or_(took_t, pc.and_(pc.and_(three, t_changed), pc.invert(lost_by_t)))
                took_s = pc.or_(took_s, pc.and_(pc.and_(three, s_changed), pc.invert(lost_by_s)))
        if build:
            values[column.name] = _choose(choose_source, t_values, s_values, column.type, joined.rows)

    kept_rows = _count(keep)
    outcome.rows = kept_rows
    outcome.inserted_from_target = _count(pc.and_(in_t, not_b))
    outcome.inserted_from_source = _count(pc.and_(in_s, not_b))
    deleted_both = (sides.base.num_rows if sides.base is not None else 0) - _count(in_b)
    dropped = pc.invert(keep)
    outcome.deleted_from_target = _count(pc.and_(pc.and_(only_s, in_b), dropped)) + deleted_both
    outcome.deleted_from_source = _count(pc.and_(pc.and_(only_t, in_b), dropped)) + deleted_both
    outcome.updated_from_target = _count(took_t) + _count(pc.and_(update_delete, keep))
    outcome.updated_from_source = _count(took_s) + _count(pc.and_(delete_update, keep))
    if build:
        arrays = [values[column.name] for column in context.plan.columns] + [joined.order]
        names = [column.name for column in context.plan.columns] + [_ORDER]
        outcome.table = pa.Table.from_arrays(arrays, names=names).filter(keep)
    return outcome


@dataclass
class _Outcome:
    conflict_count: int = 0
    detail: list[RowConflict] = field(default_factory=list)
    rows: int = 0
    inserted_from_source: int = 0
    updated_from_source: int = 0
    deleted_from_source: int = 0
    inserted_from_target: int = 0
    updated_from_target: int = 0
    deleted_from_target: int = 0
    table: pa.Table | None = None

    def add(
        self,
        joined: _Joined,
        mask: pa.Array,
        kind: str,
        column: str,
        base: pa.Array | None,
        target: pa.Array | None,
        source: pa.Array | None,
    ) -> None:
        """Count the conflicts of `mask` and list the first few by key (only this
        Python loop goes row by row, and never past `DETAIL_LIMIT`)."""
        count = _count(mask)
        if not count:
            return
        self.conflict_count += count
        rows = pc.indices_nonzero(mask)
        keys = joined.keys.take(rows)
        first = pc.sort_indices(keys).slice(0, DETAIL_LIMIT)
        rows = rows.take(first)
        cells = [
            [None] * len(rows) if values is None else values.take(rows).to_pylist()
            for values in (base, target, source)
        ]
        for row_key, b, t, s in zip(keys.take(first).to_pylist(), *cells, strict=True):
            self.detail.append(RowConflict(_plain(row_key), column, kind, _plain(b), _plain(t), _plain(s)))

    def absorb(self, other: _Outcome) -> None:
        self.conflict_count += other.conflict_count
        self.detail = _first_conflicts(self.detail + other.detail)
        for name in (
            "rows",
            "inserted_from_source",
            "updated_from_source",
            "deleted_from_source",
            "inserted_from_target",
            "updated_from_target",
            "deleted_from_target",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _row_changes(
    context: _Context, joined: _Joined, side: str, rows: pa.Array, kind: str, outcome: _Outcome
) -> pa.Array:
    """Which of `rows` (in the base and on `side` only: deleted on the other side)
    `side` changed, listing each changed cell as a conflict of `kind`. Columns whose
    type `side` changed are not compared: the type change is the column's business."""
    changed = _falses(joined.rows)
    base, table = joined.sides.base, joined.table(side)
    if base is None or table is None or not _count(rows):
        return changed
    for name in base.column_names:
        if name == context.key or name not in table.column_names:
            continue
        if not table.schema.field(name).type.equals(base.schema.field(name).type):
            continue
        side_values = joined.values(side, name, where=rows)
        base_values = joined.values("base", name, where=rows)
        assert side_values is not None and base_values is not None
        cells = pc.and_(rows, _differs(side_values, base_values))
        if _count(cells):
            changed = pc.or_(changed, cells)
            target = side_values if side == "target" else None
            source = side_values if side == "source" else None
            outcome.add(joined, cells, kind, name, base_values, target, source)
    return changed


def _changed(
    values: pa.Array | None, base: pa.Array | None, column: _Column, three: pa.Array, rows: int
) -> pa.Array:
    """Which cells a side changed from the base (only meaningful in rows on all three)."""
    if values is None:
        return _falses(rows)
    if base is None and not column.base_comparable:
        return three  # the base's values do not fit the new type: every cell counts as changed
    if base is None:
        return pc.is_valid(values)  # a column new on this side: any value is a change
    return _differs(values, base)


def _take_whole(joined: _Joined, column: _Column) -> pa.Array:
    """A column one side decides: its values where it has the row, else the other
    side's cast to its type (null where they cannot take it)."""
    winner = column.mode
    other = "source" if winner == "target" else "target"
    mine = joined.values(winner, column.name)
    assert mine is not None
    theirs = joined.values(other, column.name, where=pc.invert(joined.has[winner]))
    if theirs is None:
        return mine
    return pc.if_else(joined.has[winner], mine, _cast_or_null(theirs, column.type))


def _choose(
    choose_source: pa.Array, target: pa.Array | None, source: pa.Array | None, type_: pa.DataType, rows: int
) -> pa.Array:
    target = pa.nulls(rows, type_) if target is None else target
    source = pa.nulls(rows, type_) if source is None else source
    return _flat(pc.if_else(choose_source, source, target))


# -- facts about columns, for the plan -------------------------------------------------


def _unit_facts(context: _Context, sides: _Sides) -> dict[_Need, bool]:
    joined = _Joined(sides, context.key)
    in_b = joined.has["base"]
    facts: dict[_Need, bool] = {}
    for need in context.needs:
        if need.kind == "changed":
            rows = pc.and_(in_b, joined.has[need.side])
            mine = joined.values(need.side, need.column, where=rows)
            base = joined.values("base", need.column, where=rows)
            assert mine is not None and base is not None
            facts[need] = bool(_count(pc.and_(rows, _differs(mine, base))))
            continue
        if need.kind == "castable":
            other = "source" if need.side == "target" else "target"
            rows = pc.and_(joined.has[need.side], pc.invert(pc.or_(in_b, joined.has[other])))
            values = joined.values(need.side, need.column, where=rows)
        else:
            rows = pc.and_(in_b, pc.and_(joined.has["target"], joined.has["source"]))
            values = joined.values("base", need.column, where=rows)
        assert values is not None and need.type is not None
        facts[need] = _castable(values, need.type)
    return facts


def _combine_facts(facts: dict[_Need, bool], more: dict[_Need, bool]) -> dict[_Need, bool]:
    for need, value in more.items():
        previous = facts.get(need)
        if previous is None:
            facts[need] = value
        else:
            facts[need] = (previous or value) if need.kind == "changed" else (previous and value)
    return facts


# -- preparing the sides ----------------------------------------------------------------


def _prepare(context: _Context, role: str, table: pa.Table) -> pa.Table:
    """A side's rows ready to join: dictionaries decoded, the key in the target's
    type and never null."""
    table = _decode(table)
    key = context.key
    column = table.column(key)
    if not column.type.equals(context.key_type):
        try:
            column = column.cast(context.key_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise TableError(
                f"the key column {key!r} of {context.path} holds {column.type} values in the {role} version"
                f" and {context.key_type} in the target; they cannot be matched."
            ) from None
        table = table.set_column(table.schema.get_field_index(key), key, column)
    if column.null_count:
        rows = f"{column.null_count} row" + ("s" if column.null_count > 1 else "")
        raise TableError(
            f"the {role} version of {context.path} has {rows} with no value in the key column {key!r};"
            " a merge by key needs one in every row."
        )
    return table


def _check_unique(context: _Context, role: str, table: pa.Table) -> None:
    column = table.column(context.key)
    if len(pc.unique(column)) == len(column):
        return
    counts = (
        table.select([context.key]).group_by(context.key, use_threads=False).aggregate([([], "count_all")])
    )
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1)).column(context.key)
    example = pc.min(repeated).as_py()
    raise TableError(
        f"the {role} version of {context.path} has {example!r} more than once in the key column"
        f" {context.key!r}; a merge by key needs each key once."
    )


# -- in memory ----------------------------------------------------------------------------


def _merge_in_memory(context: _Context, out: str, report: Callable[[float], None]) -> TableMergeResult:
    tables: dict[str, pa.Table] = {}
    for role, item in context.inputs.items():
        tables[role] = _prepare(context, role, _conform(item.read(), item.schema))
        _check_unique(context, role, tables[role])
    report(0.3)
    sides = _Sides(
        tables.get("base"),
        tables["target"],
        tables["source"],
        _arange(tables["target"].num_rows),
        _arange(tables["source"].num_rows),
        tables["target"].num_rows,
    )
    if context.needs:
        context.plan = context.make_plan(_unit_facts(context, sides))
    outcome = _merge_unit(context, sides, build=True)
    report(0.7)
    result = _result(context, outcome, partitions=1)
    if result.written:
        assert outcome.table is not None
        with _Writer(context, out) as writer:
            writer.write(outcome.table.drop_columns([_ORDER]))
    return result


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return table if table.schema.equals(schema) else table.cast(schema)


def _result(context: _Context, outcome: _Outcome, *, partitions: int) -> TableMergeResult:
    plan = context.plan
    detail = _first_conflicts(plan.conflicts + outcome.detail)
    total = len(plan.conflicts) + outcome.conflict_count
    return TableMergeResult(
        path=context.path,
        key=context.key,
        strategy=context.strategy,
        conflicts=detail,
        conflict_count=total,
        settled=total if context.strategy else 0,
        inserted_from_source=outcome.inserted_from_source,
        updated_from_source=outcome.updated_from_source,
        deleted_from_source=outcome.deleted_from_source,
        inserted_from_target=outcome.inserted_from_target,
        updated_from_target=outcome.updated_from_target,
        deleted_from_target=outcome.deleted_from_target,
        rows=outcome.rows,
        columns_added=plan.added,
        columns_removed=plan.removed,
        partitions=partitions,
        written=total == 0 or context.strategy is not None,
    )


def _first_conflicts(conflicts: list[RowConflict]) -> list[RowConflict]:
    """The first `DETAIL_LIMIT` conflicts: schema ones, then by key, column and kind."""

    def rank(conflict: RowConflict) -> tuple[Any, ...]:
        if conflict.kind == "schema":
            return (0, 0, conflict.column or "", 0)
        return (1, conflict.key, conflict.column or "", CONFLICT_KINDS.index(conflict.kind))

    return sorted(conflicts, key=rank)[:DETAIL_LIMIT]


# -- partitioned, beyond the memory budget ---------------------------------------------


def _merge_partitioned(
    context: _Context, out: str, count: int, memory_budget: int, report: Callable[[float], None]
) -> TableMergeResult:
    """Split the three files by a hash of the key into `count` partitions on disk,
    merge each, then stream the sorted partition outputs into `out` in row order."""
    folder = tempfile.mkdtemp(prefix=".strata-merge-", dir=os.path.dirname(os.path.abspath(out)))
    try:
        chunk_bytes = max(1024 * 1024, min(TEXT_CHUNK_BYTES, memory_budget // 8))
        totals: dict[str, int] = {}
        roles = [role for role in ("target", "source", "base") if role in context.inputs]
        for step, role in enumerate(roles):
            totals[role] = _split(context, role, folder, count, chunk_bytes)
            report(0.3 * (step + 1) / len(roles))
        if context.needs:
            facts: dict[_Need, bool] = {}
            for part in range(count):
                _combine_facts(facts, _unit_facts(context, _partition_sides(context, folder, part, totals)))
            context.plan = context.make_plan(facts)
        report(0.4)
        outcome = _Outcome()
        outputs = []
        for part in range(count):
            sides = _partition_sides(context, folder, part, totals)
            build = context.strategy is not None or not (outcome.conflict_count or context.plan.conflicts)
            unit = _merge_unit(context, sides, build=build)
            outcome.absorb(unit)
            if build and unit.table is not None:
                outputs.append(_write_ipc(os.path.join(folder, f"out-{part}.arrow"), unit.table))
            report(0.4 + 0.4 * (part + 1) / count)
        result = _result(context, outcome, partitions=count)
        if result.written:
            with _Writer(context, out) as writer:
                for table in _merge_sorted(outputs):
                    writer.write(table)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _split(context: _Context, role: str, folder: str, count: int, chunk_bytes: int) -> int:
    """Write `role`'s rows to `count` partition files by the hash of their key;
    the target's and source's rows carry their position in the file."""
    item = context.inputs[role]
    schema = item.schema
    if role != "base":
        schema = schema.append(pa.field(_POSITION, pa.int64()))
    paths = [os.path.join(folder, f"{role}-{part}.arrow") for part in range(count)]
    position = 0
    pending: list[list[pa.Table]] = [[] for _ in range(count)]
    pending_rows = [0] * count
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(_ipc_writer(path, schema)) for path in paths]

        def flush(part: int) -> None:
            writers[part].write_table(pa.concat_tables(pending[part]))
            pending[part], pending_rows[part] = [], 0

        for chunk in item.chunks(chunk_bytes):
            chunk = _prepare(context, role, _conform(chunk, item.schema))
            if role != "base":
                chunk = chunk.append_column(_POSITION, _arange(chunk.num_rows, start=position))
            position += chunk.num_rows
            parts = _partition_of(chunk.column(context.key), count)
            # A stable sort of small integers is a radix sort: rows grouped by
            # partition, in their order within each.
            ranked = np.argsort(parts.astype(np.uint16), kind="stable")
            sizes = np.bincount(parts, minlength=count)
            ordered = chunk.take(pa.array(ranked))
            start = 0
            for part, size in enumerate(sizes.tolist()):
                if size:
                    pending[part].append(ordered.slice(start, size))
                    pending_rows[part] += size
                    start += size
                    if pending_rows[part] >= BATCH_ROWS:
                        flush(part)
        for part in range(count):
            if pending_rows[part]:
                flush(part)
    return position


def _partition_sides(context: _Context, folder: str, part: int, totals: dict[str, int]) -> _Sides:
    tables = {role: _read_ipc(os.path.join(folder, f"{role}-{part}.arrow")) for role in context.inputs}
    for role, table in tables.items():
        _check_unique(context, role, table)
    target, source = tables["target"], tables["source"]
    return _Sides(
        tables.get("base"),
        target.drop_columns([_POSITION]),
        source.drop_columns([_POSITION]),
        _flat(target.column(_POSITION)),
        _flat(source.column(_POSITION)),
        totals["target"],
    )


def _merge_sorted(files: list[str]) -> Iterator[pa.Table]:
    """The rows of partition outputs, each sorted by order number, merged in order:
    a k-way merge a block at a time. Every round takes, from each partition, the
    rows up to the smallest last order number among the blocks in hand, so at
    least one block is used up per round and memory stays one block a partition."""
    readers = [_ipc_batches(file) for file in files]
    blocks: dict[int, tuple[pa.Table, np.ndarray]] = {}
    for index, reader in enumerate(readers):
        block = _next_block(reader)
        if block is not None:
            blocks[index] = block
    while blocks:
        limit = min(orders[-1] for _table, orders in blocks.values())
        pieces = []
        for index, (table, orders) in list(blocks.items()):
            cut = int(np.searchsorted(orders, limit, side="right"))
            if cut:
                pieces.append(table.slice(0, cut))
            block = (table.slice(cut), orders[cut:]) if cut < len(orders) else _next_block(readers[index])
            if block is None:
                del blocks[index]
            else:
                blocks[index] = block
        piece = pa.concat_tables(pieces)
        piece = piece.take(pc.sort_indices(piece.column(_ORDER)))
        yield piece.drop_columns([_ORDER])


def _next_block(batches: Iterator[pa.RecordBatch]) -> tuple[pa.Table, np.ndarray] | None:
    for batch in batches:
        if batch.num_rows:
            table = pa.Table.from_batches([batch])
            return table, table.column(_ORDER).to_numpy()
    return None


def _ipc_writer(path: str, schema: pa.Schema) -> Any:
    options = pa.ipc.IpcWriteOptions(
        compression="lz4" if pa.Codec.is_available("lz4") else None, use_threads=False
    )
    return pa.ipc.new_file(path, schema, options=options)


def _write_ipc(path: str, table: pa.Table) -> str:
    with _ipc_writer(path, table.schema) as writer:
        writer.write_table(table, max_chunksize=BATCH_ROWS)
    return path


def _read_ipc(path: str) -> pa.Table:
    options = pa.ipc.IpcReadOptions(use_threads=False)
    return pa.ipc.open_file(pa.OSFile(path), options=options).read_all()


def _ipc_batches(path: str) -> Iterator[pa.RecordBatch]:
    reader = pa.ipc.open_file(pa.OSFile(path), options=pa.ipc.IpcReadOptions(use_threads=False))
    for index in range(reader.num_record_batches):
        yield reader.get_batch(index)


def _partition_of(keys: pa.ChunkedArray | pa.Array, count: int) -> np.ndarray:
    """The partition of each key: a hash of its value, the same on every side
    (keys are in the target's type by now) and on every run."""
    keys = _flat(keys)
    type_ = keys.type
    if pa.types.is_integer(type_) or pa.types.is_boolean(type_):
        hashes = _mix(keys.cast(pa.int64(), safe=False).to_numpy(zero_copy_only=False).view(np.uint64))
    elif pa.types.is_floating(type_):
        floats = keys.cast(pa.float64()).to_numpy(zero_copy_only=False) + 0.0  # -0.0 is 0.0
        hashes = _mix(floats.view(np.uint64))
    else:
        if not (pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_binary(type_)):
            keys = keys.cast(pa.string())
        hashes = np.concatenate(
            [_hash_bytes(keys.slice(start, BATCH_ROWS)) for start in range(0, len(keys), BATCH_ROWS)]
            or [np.zeros(0, np.uint64)]
        )
    return (hashes % np.uint64(count)).astype(np.int64)


def _hash_bytes(keys: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string, vectorised: the sum of a mix of (position, byte)
    over its bytes, mixed with its length."""
    keys = keys.cast(pa.large_binary())
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset : keys.offset + len(keys) + 1]
    data_buffer = keys.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]].astype(np.uint64)
    lengths = np.diff(offsets)
    starts = offsets[:-1] - offsets[0]
    positions = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    mixed = _mix(positions.astype(np.uint64) * np.uint64(256) + data)
    sums = np.zeros(len(keys), dtype=np.uint64)
    filled = lengths > 0
    if len(data):
        sums[filled] = np.add.reduceat(mixed, starts[filled])
    return _mix(sums ^ lengths.astype(np.uint64))


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    values = values + np.uint64(0x9E3779B97F4A7C15)
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


# -- writing ----------------------------------------------------------------------------


class _Writer:
    """Writes the merged rows in the target's format to a file beside `out`, moved
    into place when complete. Output is deterministic: Parquet in fixed row groups
    with one configuration; CSV quoting only the cells that need it, with the
    target's delimiter, byte-order mark and line ends; JSON a line per row."""

    def __init__(self, context: _Context, out: str) -> None:
        self.context, self.out = context, out
        self.fmt = context.fmt
        handle, self.partial = tempfile.mkstemp(
            prefix=".strata-merge-", suffix=".part", dir=os.path.dirname(os.path.abspath(out))
        )
        os.close(handle)
        self.schema = _output_schema(context)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.sink: Any = None
        self.parquet: Any = None
        if self.fmt.kind == "parquet":
            import pyarrow.parquet as pq

            # Rows per group from the target's size per row: the same on every path,
            # and a group (held in memory until written) stays near 64 MiB.
            row_bytes = context.inputs["target"].row_bytes()
            self.group_rows = max(1024, min(PARQUET_ROW_GROUP, PARQUET_ROW_GROUP_BYTES // max(row_bytes, 1)))
            self.parquet = pq.ParquetWriter(
                self.partial,
                self.schema,
                compression="zstd",
                use_dictionary=True,
                write_statistics=True,
                version="2.6",
                data_page_version="1.0",
                store_schema=True,
            )
            return
        self.sink = open(self.partial, "wb")  # noqa: SIM115 - closed in close()
        if self.fmt.kind == "csv":
            bom, eol = _target_style(context.inputs["target"].file)
            self.eol = eol
            header = [pa.array([name], pa.string()) for name in self.schema.names]
            self.sink.write((_BOM if bom else b"") + _csv_lines(header, self.fmt.delimiter, eol))

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            if error is None:
                self._flush(final=True)
        finally:
            if self.parquet is not None:
                self.parquet.close()
            if self.sink is not None:
                self.sink.close()
        if error is None:
            os.replace(self.partial, self.out)
        else:
            with contextlib.suppress(OSError):
                os.remove(self.partial)

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema) if not table.schema.equals(self.schema) else table
        if self.fmt.kind == "parquet":
            self.pending.append(table)
            self.pending_rows += table.num_rows
            self._flush(final=False)
        elif self.fmt.kind == "csv":
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                self.sink.write(_csv_lines(batch.columns, self.fmt.delimiter, self.eol))
        else:
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                self.sink.write(_json_lines(batch))

    def _flush(self, *, final: bool) -> None:
        """Parquet row groups of exactly `group_rows` rows (the last may be short),
        each from one contiguous table, so the bytes do not depend on how the rows
        arrived."""
        if self.parquet is None:
            return
        while self.pending_rows >= self.group_rows or (final and self.pending_rows):
            table = pa.concat_tables(self.pending)
            group = table.slice(0, self.group_rows).combine_chunks()
            self.parquet.write_table(group, row_group_size=self.group_rows)
            rest = table.slice(group.num_rows)
            self.pending = [rest] if rest.num_rows else []
            self.pending_rows = rest.num_rows


def _output_schema(context: _Context) -> pa.Schema:
    """Each column in its type, as the target declares it where the target's
    column is kept (a Parquet dictionary column stays one); nullable unless every
    side declares it not and both sides have it."""
    declared = {role: item.declared for role, item in context.inputs.items()}
    fields = []
    for column in context.plan.columns:
        sides = [role for role in ("target", "source") if column.name in declared[role].names]
        type_ = column.type
        for role in sides:
            candidate = declared[role].field(column.name)
            if _decoded_schema(pa.schema([candidate])).field(0).type.equals(column.type):
                type_ = candidate.type
                break
        nullable = len(sides) < 2 or any(declared[role].field(column.name).nullable for role in sides)
        fields.append(pa.field(column.name, type_, nullable=nullable))
    metadata = dict(declared["target"].metadata or {})
    if [f.name for f in fields] != declared["target"].names:
        metadata.pop(b"pandas", None)  # pandas' own record of the columns would be wrong
    return pa.schema(fields, metadata=metadata or None)


def _target_style(file: str) -> tuple[bool, str]:
    """The target CSV's byte-order mark and line end, from its first line."""
    with open(file, "rb") as handle:
        head = handle.read(64 * 1024)
    newline = head.find(b"\n")
    return head.startswith(_BOM), "\r\n" if newline > 0 and head[newline - 1 : newline] == b"\r" else "\n"


def _csv_lines(columns: list[pa.Array], delimiter: str, eol: str) -> bytes:
    """Rows of text cells as CSV, built column-wise: a cell is quoted only when it
    holds the delimiter, a quote or a line end, or is empty (so an empty string
    stays apart from a missing cell, written as nothing)."""
    if not columns or not len(columns[0]):
        return b""
    special = re.compile("[" + re.escape(delimiter) + '"\r\n]').pattern
    cells = []
    for column in columns:
        column = _flat(column).cast(pa.string())
        needs_quotes = pc.or_(
            pc.match_substring_regex(column, special), pc.equal(pc.binary_length(column), 0)
        )
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(column, '"', '""'), '"', "")
        cells.append(pc.fill_null(pc.if_else(needs_quotes, quoted, column), ""))
    rows = pc.binary_join_element_wise(*cells, delimiter)
    lines = _flat(pc.binary_join_element_wise(rows, eol, "")).cast(pa.large_string())
    # The lines' characters lie end to end in the array's data buffer: that is the text.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    return lines.buffers()[2].slice(start, end - start).to_pybytes()


def _json_lines(batch: pa.RecordBatch) -> bytes:
    """One JSON object a row, keys in column order; in nested objects, a field that
    is null is left out (Arrow gives every object of a column every field seen)."""
    nested = [f.name for f in batch.schema if pa.types.is_nested(f.type)]
    lines = []
    for row in batch.to_pylist():
        for name in nested:
            row[name] = _without_null_fields(row[name])
        lines.append(json.dumps(row, ensure_ascii=False, default=str))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _without_null_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_null_fields(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_null_fields(item) for item in value]
    return value


# -- comparing and small helpers -----------------------------------------------------------


def _differs(left: pa.Array, right: pa.Array) -> pa.Array:
    """Element-wise 'is different' with null equal to null and never to a value,
    NaN equal to NaN, and nested values (JSON objects, lists) compared by value."""
    left, right = _flat(left), _flat(right)
    type_ = left.type
    if pa.types.is_null(type_) or pa.types.is_null(right.type):
        return pc.fill_null(pc.xor(pc.is_valid(left), pc.is_valid(right)), False)
    one_null = pc.xor(pc.is_valid(left), pc.is_valid(right))
    both = pc.and_(pc.is_valid(left), pc.is_valid(right))
    if pa.types.is_struct(type_):
        result = one_null
        for index in range(type_.num_fields):
            inner = _differs(pc.struct_field(left, [index]), pc.struct_field(right, [index]))
            result = pc.or_(result, pc.and_(both, inner))
        return result
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        return _lists_differ(left, right, one_null, both)
    try:
        unequal = pc.fill_null(pc.not_equal(left, right), False)
    except pa.ArrowNotImplementedError:
        # Maps and unions, which Arrow cannot compare: value by value in Python.
        unequal = pa.array([a != b for a, b in zip(left.to_pylist(), right.to_pylist(), strict=True)])
    if pa.types.is_floating(type_):
        both_nan = pc.fill_null(pc.and_(pc.is_nan(left), pc.is_nan(right)), False)
        unequal = pc.and_(unequal, pc.invert(both_nan))
    return pc.or_(unequal, one_null)


def _lists_differ(left: pa.Array, right: pa.Array, one_null: pa.Array, both: pa.Array) -> pa.Array:
    lengths_differ = pc.fill_null(
        pc.not_equal(pc.list_value_length(left), pc.list_value_length(right)), False
    )
    result = pc.or_(one_null, pc.and_(both, lengths_differ))
    rows = pc.indices_nonzero(pc.and_(both, pc.invert(lengths_differ)))
    if not len(rows):
        return result
    subset_left, subset_right = left.take(rows), right.take(rows)
    items = _differs(pc.list_flatten(subset_left), pc.list_flatten(subset_right))
    parents = pc.list_parent_indices(subset_left).filter(items)
    if not len(parents):
        return result
    mask = np.zeros(len(left), dtype=bool)
    mask[rows.take(pc.unique(parents)).to_numpy()] = True
    return pc.or_(result, pa.array(mask))


def _castable(values: pa.Array, type_: pa.DataType) -> bool:
    try:
        values.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


def _cast_or_null(values: pa.Array, type_: pa.DataType) -> pa.Array:
    if values.type.equals(type_):
        return values
    try:
        return values.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.nulls(len(values), type_)


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _arange(count: int, start: int = 0) -> pa.Array:
    return pa.array(np.arange(start, start + count, dtype=np.int64))


def _falses(count: int) -> pa.Array:
    return pa.array(np.zeros(count, dtype=bool))


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _plain(value: Any) -> Scalar:
    """A value as a JSON scalar: nested values as JSON text, others as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
