"""Change analysis of tables: schema, rows, cells and label distributions.

Plain Python over pyarrow, with no Django, so it can be tested and benchmarked on
its own. Tables are compared column-wise with vectorised kernels (a hash join on the
key, then one comparison per column), never row by row in Python, so two versions
of a million rows diff in seconds.

- Schema: columns added, removed, renamed (a removed and an added column of the
  same type holding the same values), and type changes.
- Rows, by a key column when one is given or detected: added, removed and changed
  rows with the changed cells. Without a usable key (none, or one with duplicates),
  rows are compared by content: the multiset of whole rows.
- Labels: the distribution of a label column on each side with counts,
  proportions, the population stability index and a chi-square test.

Every Arrow call here runs on the calling thread: ``use_threads=False``, and bytes
are handed over as an Arrow buffer, not a Python file, which Arrow reads through its
I/O thread pool. Once one of Arrow's pools has run a task, a short-lived process can
die of SIGABRT as it exits (apache/arrow#34314), after printing its answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from strata_store.seekable import SeekableReader

TABULAR_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
_A, _B = "__strata_a", "__strata_b"
_SAMPLE = 50


class TableError(ValueError):
    """A file that cannot be read as a table, or a comparison that cannot be made."""


def is_tabular(path: str) -> bool:
    return path.lower().endswith(TABULAR_SUFFIXES)


def read_table(path: str, data: bytes) -> pa.Table:
    """Parse a CSV, TSV, JSON Lines or Parquet file by its name."""
    lowered = path.lower()
    try:
        if lowered.endswith(".parquet"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
        if lowered.endswith((".jsonl", ".ndjson")):
            import pyarrow.json as pj

            return pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(use_threads=False))
        if lowered.endswith((".csv", ".tsv")):
            import pyarrow.csv as pcsv

            delimiter = "\t" if lowered.endswith(".tsv") else ","
            return pcsv.read_csv(
                pa.BufferReader(data),
                read_options=pcsv.ReadOptions(use_threads=False),
                parse_options=pcsv.ParseOptions(delimiter=delimiter),
            )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TableError(f"cannot read {path} as a table: {first_line}") from None
    raise TableError(f"{path} is not a tabular file (CSV, TSV, JSONL or Parquet).")


SCHEMA_SAMPLE_BYTES = 1024 * 1024


def needs_whole_file(path: str) -> bool:
    """Parquet keeps its schema in a footer; text formats show it in their first rows."""
    return path.lower().endswith(".parquet")


def read_schema(path: str, data: bytes) -> dict[str, str]:
    """Column name -> type of a table, from the whole file (Parquet) or its first
    rows (CSV, TSV, JSONL: at most `SCHEMA_SAMPLE_BYTES`, cut at a line end)."""
    if not needs_whole_file(path) and len(data) > SCHEMA_SAMPLE_BYTES:
        data = data[:SCHEMA_SAMPLE_BYTES]
        data = data[: data.rfind(b"\n") + 1] or data
    if needs_whole_file(path):
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as error:
            raise TableError(f"cannot read {path} as a table: {error}") from None
        return {field.name: str(field.type) for field in schema}
    table = read_table(path, data)
    return {field.name: str(field.type) for field in table.schema}


class _PartialFile(SeekableReader):
    """A file of `size` bytes of which only the first (`head`) and last (`tail`)
    ones are at hand: enough for Parquet, whose schema is in its footer."""

    def __init__(self, head: bytes, tail: bytes, size: int) -> None:
        super().__init__(size)
        self._head, self._tail = head, tail
        self._start = size - len(tail)

    def read(self, count: int | None = -1) -> bytes:
        end = self.size if count is None or count < 0 else min(self.size, self._position + count)
        if self._position >= self._start:
            data = self._tail[self._position - self._start : end - self._start]
        elif end <= len(self._head):
            data = self._head[self._position : end]
        elif end > self._start:
            # A footer read that starts before the bytes at hand (Parquet readers
            # read a fixed 64 KiB): the footer itself, checked to be whole, is real;
            # what comes before it is never parsed.
            data = bytes(self._start - self._position) + self._tail[: end - self._start]
        else:
            raise OSError("only the start and the end of this file were read")
        self._position += len(data)
        return data


def parquet_schema_from_ends(path: str, head: bytes, tail: bytes, size: int) -> dict[str, str] | None:
    """The schema of a Parquet file from its first and last bytes, or None if the
    last ones do not hold the whole footer (then read the whole file)."""
    import pyarrow.parquet as pq

    if len(tail) < 8 or tail[-4:] != b"PAR1":
        return None
    footer = int.from_bytes(tail[-8:-4], "little")
    if footer + 8 > len(tail):
        return None
    try:
        schema = pq.read_schema(_PartialFile(head, tail, size))
    except (pa.ArrowInvalid, OSError) as error:
        raise TableError(f"cannot read {path} as a table: {error}") from None
    return {field.name: str(field.type) for field in schema}


def schema_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """What differs between two schemas, in words ([] when they are equal)."""
    changes = [f"column {name} removed" for name in old if name not in new]
    changes += [f"column {name} added" for name in new if name not in old]
    changes += [
        f"column {name} changed from {old[name]} to {new[name]}"
        for name in old
        if name in new and old[name] != new[name]
    ]
    return changes


# -- schema -------------------------------------------------------------------------


@dataclass
class SchemaDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    type_changed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.renamed or self.type_changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "renamed": [{"from": old, "to": new} for old, new in self.renamed],
            "type_changed": [{"column": c, "from": old, "to": new} for c, old, new in self.type_changed],
        }


def _columns_equal(left: pa.ChunkedArray | pa.Array, right: pa.ChunkedArray | pa.Array) -> bool:
    if len(left) != len(right) or not left.type.equals(right.type):
        return False
    return not pc.any(_differs(left, right)).as_py()


def _differs(left, right) -> pa.Array:
    """Element-wise 'is different', with null equal to null and never to a value."""
    unequal = pc.not_equal(left, right)
    one_null = pc.xor(pc.is_null(left), pc.is_null(right))
    return pc.fill_null(pc.or_kleene(unequal, one_null), False)


def diff_schema(a: pa.Table, b: pa.Table, aligned: tuple[pa.Table, pa.Table] | None = None) -> SchemaDiff:
    """Compare column sets and types. `aligned` (the two tables restricted to the
    same rows in the same order) lets renames be detected by content."""
    names_a, names_b = a.schema.names, b.schema.names
    result = SchemaDiff()
    removed = [name for name in names_a if name not in names_b]
    added = [name for name in names_b if name not in names_a]
    for name in names_a:
        if name in names_b and not a.schema.field(name).type.equals(b.schema.field(name).type):
            result.type_changed.append((name, str(a.schema.field(name).type), str(b.schema.field(name).type)))
    if aligned is not None:
        left, right = aligned
        for old in list(removed):
            for new in added:
                if _columns_equal(left.column(old), right.column(new)):
                    result.renamed.append((old, new))
                    removed.remove(old)
                    added.remove(new)
                    break
    result.added, result.removed = added, removed
    return result


# -- rows ---------------------------------------------------------------------------


@dataclass
class RowDiff:
    method: str  # "key" or "content"
    key: str | None
    rows_a: int
    rows_b: int
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    changed_cells: dict[str, int] = field(default_factory=dict)
    sample_added: list[dict[str, Any]] = field(default_factory=list)
    sample_removed: list[dict[str, Any]] = field(default_factory=list)
    sample_changed: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "key": self.key,
            "rows_a": self.rows_a,
            "rows_b": self.rows_b,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "changed_cells": self.changed_cells,
            "sample_added": self.sample_added,
            "sample_removed": self.sample_removed,
            "sample_changed": self.sample_changed,
            "notes": self.notes,
        }


def detect_key(a: pa.Table, b: pa.Table) -> str | None:
    """A column named like an id, present in both, unique and non-null in both."""
    candidates = [name for name in a.schema.names if name in b.schema.names]
    preferred = [n for n in candidates if n.lower() in ("id", "key", "uuid", "example_id", "row_id")]
    preferred += [n for n in candidates if n.lower().endswith("_id") and n not in preferred]
    for name in preferred:
        if _usable_key(a, name) and _usable_key(b, name):
            return name
    return None


def _usable_key(table: pa.Table, name: str) -> bool:
    column = table.column(name)
    if column.null_count:
        return False
    return pc.count_distinct(column).as_py() == len(column)


def _rows(table: pa.Table, limit: int = _SAMPLE) -> list[dict[str, Any]]:
    return table.slice(0, limit).to_pylist()


def diff_rows(
    a: pa.Table, b: pa.Table, key: str | None = None, *, detect: bool = True
) -> tuple[RowDiff, SchemaDiff]:
    """Compare rows by `key` (or a detected one), falling back to row content.

    Raises TableError for a key that is not a column of both tables; a key with
    duplicates or nulls is reported in `notes` and rows are compared by content.
    """
    notes: list[str] = []
    if key is not None:
        missing = [side for side, table in (("old", a), ("new", b)) if key not in table.schema.names]
        if missing:
            raise TableError(f"the key column {key!r} is not in the {' and '.join(missing)} version.")
        if not (_usable_key(a, key) and _usable_key(b, key)):
            notes.append(
                f"the key column {key!r} has duplicate or empty values; rows were compared by content."
            )
            key = None
            detect = False
    if key is None and detect:
        key = detect_key(a, b)
    if key is not None:
        return _diff_by_key(a, b, key, notes)
    schema = diff_schema(a, b, aligned=(a, b) if a.num_rows == b.num_rows else None)
    return _diff_by_content(a, b, schema, notes), schema


def _diff_by_key(a: pa.Table, b: pa.Table, key: str, notes: list[str]) -> tuple[RowDiff, SchemaDiff]:
    left = a.append_column(_A, pa.array([True] * a.num_rows, pa.bool_()))
    right = b.append_column(_B, pa.array([True] * b.num_rows, pa.bool_()))
    # Prefix columns so the join keeps both sides of every non-key column.
    left = left.rename_columns([c if c in (key, _A) else f"a:{c}" for c in left.schema.names])
    right = right.rename_columns([c if c in (key, _B) else f"b:{c}" for c in right.schema.names])
    joined = left.join(right, keys=key, join_type="full outer", use_threads=False).sort_by(key)
    in_a = pc.fill_null(joined.column(_A), False)
    in_b = pc.fill_null(joined.column(_B), False)
    both = pc.and_(in_a, in_b)
    common = joined.filter(both)
    strip_a = [c for c in joined.schema.names if c.startswith("a:")]
    strip_b = [c for c in joined.schema.names if c.startswith("b:")]
    aligned_a = common.select([key, *strip_a]).rename_columns([key, *[c[2:] for c in strip_a]])
    aligned_b = common.select([key, *strip_b]).rename_columns([key, *[c[2:] for c in strip_b]])
    schema = diff_schema(a, b, aligned=(aligned_a, aligned_b))

    result = RowDiff(method="key", key=key, rows_a=a.num_rows, rows_b=b.num_rows, notes=notes)
    added_rows = joined.filter(pc.and_(in_b, pc.invert(in_a)))
    removed_rows = joined.filter(pc.and_(in_a, pc.invert(in_b)))
    result.added, result.removed = added_rows.num_rows, removed_rows.num_rows
    result.sample_added = _rows(
        added_rows.select([key, *strip_b]).rename_columns([key, *[c[2:] for c in strip_b]])
    )
    result.sample_removed = _rows(
        removed_rows.select([key, *strip_a]).rename_columns([key, *[c[2:] for c in strip_a]])
    )

    pairs = [(c, c) for c in a.schema.names if c != key and c in b.schema.names]
    pairs += schema.renamed
    pairs = [
        (old, new) for old, new in pairs if aligned_a.column(old).type.equals(aligned_b.column(new).type)
    ]
    changed_mask = pa.array([False] * common.num_rows, pa.bool_())
    masks = {}
    for old, new in pairs:
        mask = _differs(aligned_a.column(old), aligned_b.column(new))
        count = pc.sum(mask).as_py() or 0
        if count:
            result.changed_cells[new] = count
            masks[(old, new)] = mask
            changed_mask = pc.or_(changed_mask, mask)
    result.changed = (pc.sum(changed_mask).as_py() or 0) if common.num_rows else 0
    result.unchanged = common.num_rows - result.changed
    if result.changed:
        indices = pc.indices_nonzero(changed_mask).slice(0, _SAMPLE)
        keys = aligned_a.column(key).take(indices).to_pylist()
        for position, row_key in zip(indices.to_pylist(), keys, strict=True):
            cells = {}
            for (old, new), mask in masks.items():
                if mask[position].as_py():
                    cells[new] = {
                        "old": aligned_a.column(old)[position].as_py(),
                        "new": aligned_b.column(new)[position].as_py(),
                    }
            result.sample_changed.append({"key": row_key, "cells": cells})
    return result, schema


def _diff_by_content(a: pa.Table, b: pa.Table, schema: SchemaDiff, notes: list[str]) -> RowDiff:
    """Rows as a multiset: group each side by every shared column and compare counts."""
    result = RowDiff(method="content", key=None, rows_a=a.num_rows, rows_b=b.num_rows, notes=notes)
    shared = [
        c
        for c in a.schema.names
        if c in b.schema.names and a.schema.field(c).type.equals(b.schema.field(c).type)
    ]
    if not shared:
        result.removed, result.added = a.num_rows, b.num_rows
        result.notes.append("no column of the same name and type on both sides: every row counts as changed.")
        return result
    try:
        counts_a = (
            a.select(shared)
            .group_by(shared, use_threads=False)
            .aggregate([([], "count_all")])
            .rename_columns([*shared, _A])
        )
        counts_b = (
            b.select(shared)
            .group_by(shared, use_threads=False)
            .aggregate([([], "count_all")])
            .rename_columns([*shared, _B])
        )
        joined = counts_a.join(counts_b, keys=shared, join_type="full outer", use_threads=False)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as error:
        raise TableError(f"these columns cannot be compared by content: {error}") from None
    count_a = pc.fill_null(joined.column(_A), 0)
    count_b = pc.fill_null(joined.column(_B), 0)
    surplus_b = pc.max_element_wise(pc.subtract(count_b, count_a), 0)
    surplus_a = pc.max_element_wise(pc.subtract(count_a, count_b), 0)
    result.added = pc.sum(surplus_b).as_py() or 0
    result.removed = pc.sum(surplus_a).as_py() or 0
    result.unchanged = a.num_rows - result.removed
    result.sample_added = _rows(joined.filter(pc.greater(surplus_b, 0)).select(shared))
    result.sample_removed = _rows(joined.filter(pc.greater(surplus_a, 0)).select(shared))
    return result


# -- labels -------------------------------------------------------------------------


@dataclass
class LabelShift:
    column: str
    labels: list[str]
    counts_a: dict[str, int]
    counts_b: dict[str, int]
    psi: float
    chi_square: float
    degrees_of_freedom: int
    p_value: float

    def proportions(self, counts: dict[str, int]) -> dict[str, float]:
        total = sum(counts.values()) or 1
        return {label: counts.get(label, 0) / total for label in self.labels}

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "labels": self.labels,
            "counts_a": self.counts_a,
            "counts_b": self.counts_b,
            "proportions_a": self.proportions(self.counts_a),
            "proportions_b": self.proportions(self.counts_b),
            "psi": self.psi,
            "chi_square": self.chi_square,
            "degrees_of_freedom": self.degrees_of_freedom,
            "p_value": self.p_value,
        }


def label_counts(table: pa.Table, column: str) -> dict[str, int]:
    if column not in table.schema.names:
        raise TableError(f"there is no label column {column!r}.")
    counted = pc.value_counts(table.column(column))
    return {
        ("" if item["values"] is None else str(item["values"])): item["counts"]
        for item in counted.to_pylist()
    }


def label_shift(counts_a: dict[str, int], counts_b: dict[str, int], column: str = "label") -> LabelShift:
    """PSI and a chi-square test of homogeneity between two label distributions."""
    labels = sorted(set(counts_a) | set(counts_b))
    total_a, total_b = sum(counts_a.values()), sum(counts_b.values())
    psi = 0.0
    if total_a and total_b:
        for label in labels:
            # A small floor keeps a label absent on one side from dividing by zero.
            pa_ = max(counts_a.get(label, 0) / total_a, 1e-4)
            pb_ = max(counts_b.get(label, 0) / total_b, 1e-4)
            psi += (pb_ - pa_) * math.log(pb_ / pa_)
    chi, dof = _chi_square(labels, counts_a, counts_b)
    return LabelShift(column, labels, dict(counts_a), dict(counts_b), psi, chi, dof, _chi2_survival(chi, dof))


def _chi_square(
    labels: Sequence[str], counts_a: dict[str, int], counts_b: dict[str, int]
) -> tuple[float, int]:
    total_a, total_b = sum(counts_a.values()), sum(counts_b.values())
    grand = total_a + total_b
    if not total_a or not total_b or len(labels) < 2:
        return 0.0, 0
    statistic = 0.0
    for label in labels:
        row = counts_a.get(label, 0) + counts_b.get(label, 0)
        for observed, total in ((counts_a.get(label, 0), total_a), (counts_b.get(label, 0), total_b)):
            expected = row * total / grand
            if expected:
                statistic += (observed - expected) ** 2 / expected
    return statistic, len(labels) - 1


def _chi2_survival(statistic: float, dof: int) -> float:
    """P(X >= statistic) for a chi-square with `dof` degrees of freedom: the
    regularised upper incomplete gamma Q(dof/2, statistic/2)."""
    if dof <= 0:
        return 1.0
    s, x = dof / 2.0, statistic / 2.0
    if x <= 0:
        return 1.0
    if x < s + 1:  # series for the lower function, then complement
        term = total = 1.0 / s
        n = 0
        while abs(term) > abs(total) * 1e-15 and n < 10_000:
            n += 1
            term *= x / (s + n)
            total += term
        lower = total * math.exp(-x + s * math.log(x) - math.lgamma(s))
        return max(0.0, min(1.0, 1.0 - lower))
    # Continued fraction for the upper function (Lentz).
    tiny = 1e-300
    b = x + 1.0 - s
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - s)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return max(0.0, min(1.0, math.exp(-x + s * math.log(x) - math.lgamma(s)) * h))
