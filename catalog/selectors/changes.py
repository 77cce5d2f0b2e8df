"""Change analysis between two versions: why did quality move?

Builds on `catalog.selectors.diff` (which files changed, skipping identical subtrees) and
`catalog.domain.tabular` (how a table changed): for each table present on both sides, its
schema diff, row diff and label shift; for folders of files, added, removed and
modified counts per folder, so a class folder that lost images shows at once. Each
file that cannot be read as a table is reported on its own; the rest of the
analysis still stands.

The semantic-version rule lives here too: a schema change is MAJOR, any other data
change MINOR, a card or metadata change alone PATCH.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import zstandard

from catalog.domain.tabular import (
    SCHEMA_SAMPLE_BYTES,
    LabelShift,
    RowDiff,
    SchemaDiff,
    TableError,
    diff_rows,
    is_tabular,
    label_counts,
    label_shift,
    needs_whole_file,
    parquet_schema_from_ends,
    read_schema,
    read_table,
    schema_changes,
)
from catalog.errors import StrataError
from catalog.models import Version
from catalog.selectors.diff import ADDED, MODIFIED, REMOVED, TreeDiff, diff_trees, diff_versions
from catalog.selectors.exports import file_stream, find_entry
from catalog.store import DatabaseChunkIndex, file_chunks, get_backend, trees_load
from strata_store import tree as treeformat
from strata_store.errors import StoreError
from strata_store.store import locate_all, read_chunks

MAJOR, MINOR, PATCH = "major", "minor", "patch"
LABEL_COLUMNS = ("label", "labels", "class", "target", "category", "sentiment")
# Tables larger than this are listed but not compared row by row in a request.
MAX_TABLE_BYTES = 2 * 1024**3


@dataclass
class TableChange:
    path: str
    schema: SchemaDiff | None = None
    rows: RowDiff | None = None
    labels: LabelShift | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "schema": self.schema.as_dict() if self.schema else None,
            "rows": self.rows.as_dict() if self.rows else None,
            "labels": self.labels.as_dict() if self.labels else None,
            "error": self.error,
        }


@dataclass
class ChangeReport:
    old: Version
    new: Version
    files: TreeDiff
    folders: dict[str, dict[str, int]] = field(default_factory=dict)
    tables: list[TableChange] = field(default_factory=list)

    @property
    def bump(self) -> str:
        return classify(self.files, self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": {"id": self.old.id, "semver": self.old.semver},
            "new": {"id": self.new.id, "semver": self.new.semver},
            "summary": {
                "added": self.files.added,
                "removed": self.files.removed,
                "modified": self.files.modified,
                "size_delta": self.files.size_delta,
                "bump": self.bump,
            },
            "files": [
                {"path": c.path, "status": c.status, "old_size": c.old_size, "new_size": c.new_size}
                for c in self.files.changes
            ],
            "folders": self.folders,
            "tables": [table.as_dict() for table in self.tables],
        }


def classify(files: TreeDiff, tables: list[TableChange]) -> str:
    """The semantic-version bump a change deserves."""
    if any(table.schema is not None and table.schema.changed for table in tables):
        return MAJOR
    if files.changes:
        return MINOR
    return PATCH


def folder_counts(files: TreeDiff) -> dict[str, dict[str, int]]:
    """Added, removed and modified files per folder ('' is the top folder)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {ADDED: 0, REMOVED: 0, MODIFIED: 0})
    for change in files.changes:
        folder = change.path.rpartition("/")[0]
        counts[folder][change.status] += 1
    return {folder: counts[folder] for folder in sorted(counts)}


def _read(version: Version, path: str, size: int, limit: int = MAX_TABLE_BYTES):
    if size > limit:
        raise TableError(f"{path} is too large to compare here ({size:,} bytes); use `strata diff`.")
    stream = file_stream(version, path)
    return read_table(path, b"".join(stream.chunks))


def _label_column(old_table, new_table, wanted: str | None) -> str | None:
    if wanted is not None:
        return wanted
    for name in LABEL_COLUMNS:
        if name in old_table.schema.names and name in new_table.schema.names:
            return name
    return None


def compare_table(
    old: Version,
    new: Version,
    path: str,
    old_size: int,
    new_size: int,
    *,
    key: str | None,
    label: str | None,
    limit: int = MAX_TABLE_BYTES,
) -> TableChange:
    """Schema, rows and labels of one table present in both versions."""
    change = TableChange(path)
    try:
        old_table = _read(old, path, old_size, limit)
        new_table = _read(new, path, new_size, limit)
        change.rows, change.schema = diff_rows(old_table, new_table, key=key)
        column = _label_column(old_table, new_table, label)
        if column is not None:
            change.labels = label_shift(
                label_counts(old_table, column), label_counts(new_table, column), column
            )
    except (TableError, StrataError) as error:
        change.error = str(error)
    return change


def change_report(
    old: Version,
    new: Version,
    *,
    key: str | None = None,
    label: str | None = None,
    tables: bool = True,
    max_table_bytes: int = MAX_TABLE_BYTES,
    max_tables: int | None = None,
) -> ChangeReport:
    """Everything that changed from `old` to `new` (pages pass smaller limits)."""
    files = diff_versions(old, new)
    report = ChangeReport(old, new, files, folder_counts(files))
    if tables:
        candidates = [c for c in files.changes if c.status == MODIFIED and is_tabular(c.path)]
        for change in candidates[:max_tables]:
            report.tables.append(
                compare_table(
                    old, new, change.path, change.old_size, change.new_size, key=key, label=label,
                    limit=max_table_bytes,
                )
            )  # fmt: skip
    return report


# -- the bump a commit deserves ------------------------------------------------------


def stored_schema(path: str, chunk_ids: list[str], size: int) -> dict[str, str]:
    """A table's schema from the store, reading as little as it can: for Parquet
    the first chunk and the chunks holding the footer (the whole file only if the
    footer is larger than that), for text tables the first rows."""
    locations = locate_all(DatabaseChunkIndex(), chunk_ids)
    backend = get_backend()

    def read(ids: list[str]) -> bytes:
        return b"".join(read_chunks(backend, [locations[c] for c in ids], workers=2))

    if needs_whole_file(path):
        tail_ids: list[str] = []
        tail_size = 0
        for chunk_id in reversed(chunk_ids):
            tail_ids.insert(0, chunk_id)
            tail_size += locations[chunk_id].raw_length
            if tail_size >= 256 * 1024:
                break
        schema = (
            parquet_schema_from_ends(path, read(chunk_ids[:1]), read(tail_ids), size) if chunk_ids else None
        )
        return schema if schema is not None else read_schema(path, read(chunk_ids))
    head_ids: list[str] = []
    head_size = 0
    for chunk_id in chunk_ids:
        head_ids.append(chunk_id)
        head_size += locations[chunk_id].raw_length
        if head_size > SCHEMA_SAMPLE_BYTES:
            break
    return read_schema(path, read(head_ids))


def version_schema(version: Version, path: str) -> dict[str, str]:
    """The schema of the table at `path` in a stored version."""
    entry = find_entry(version, path)
    return stored_schema(path, file_chunks([entry.digest])[entry.digest], entry.size)


def commit_bump(
    parent: Version | None,
    root_id: str,
    new_trees: dict[str, tuple[bytes, int]],
    new_schema: Callable[[str], dict[str, str]],
) -> tuple[str, list[str]]:
    """Classify a commit against its parent: (bump, reasons in words).

    A table removed, or a column added, removed, renamed or retyped, is a schema
    change (MAJOR); any other file change is MINOR; no file change is PATCH. The
    new version's trees may not be stored yet: `new_trees` holds them, and
    `new_schema(path)` returns a new table's schema.
    """
    if parent is None:
        return MAJOR, ["first version"]

    def load(tree_ids: Iterable[str]) -> dict[str, list[treeformat.Entry]]:
        ids = list(tree_ids)
        fresh = {i: treeformat.decode(new_trees[i][0]) for i in ids if i in new_trees}
        stored = trees_load(i for i in ids if i not in new_trees)
        return fresh | stored

    files = diff_trees(parent.tree_id, root_id, load=load)
    if not files.changes:
        return PATCH, ["no file changed"]
    reasons: list[str] = []
    for change in files.changes:
        if not is_tabular(change.path):
            continue
        if change.status == REMOVED:
            reasons.append(f"{change.path}: table removed")
        elif change.status == MODIFIED:
            try:
                before = version_schema(parent, change.path)
                after = new_schema(change.path)
            except (TableError, StrataError, StoreError, zstandard.ZstdError):
                continue  # an unreadable table is reported by the diff, not here
            reasons += [f"{change.path}: {what}" for what in schema_changes(before, after)]
    if reasons:
        return MAJOR, reasons
    return MINOR, [f"{files.added} added, {files.removed} removed, {files.modified} modified files"]
