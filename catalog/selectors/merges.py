"""Reads for the merge pages: a recorded merge (``catalog.models.Merge``) as its
page shows it, and the merges of a dataset.

A merge's outcome is stored whole on its row (``Merge.result``), so the page reads
one row whatever the number of files and conflicts; this module only sorts that
outcome into what a person reads: what is taken from the source, the tables merged
by row, and the conflicts by path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from catalog import permissions
from catalog.domain import merge as treemerge
from catalog.errors import NotFound
from catalog.models import Branch, Dataset, Merge
from catalog.selectors import can_write, dataset_get

# Files listed on the page; a merge taking more says how many it left out.
FILES_SHOWN = 1000

# What happened to a row, in the words of the page.
ROW_CONFLICTS = {
    "cell": "changed on both sides",
    "delete-update": "deleted on target, changed on source",
    "update-delete": "changed on target, deleted on source",
    "insert-insert": "added on both sides",
    "schema": "columns changed on both sides",
}


@dataclass(slots=True)
class Side:
    """One of the three versions of a merge, as the page names it."""

    branch: str
    semver: str
    rolled_back: bool = False
    golden: bool = False


@dataclass(slots=True)
class TakenFile:
    """A path the merge takes from the source, or a conflict a strategy settled."""

    path: str
    change: str  # added, changed, removed; or settled
    before: int | None  # the target's size
    after: int | None  # the source's size
    reason: str = ""
    taken: str = ""  # for a settled conflict: the branch whose side is kept


@dataclass(slots=True)
class TableRows:
    """A table merged row by row, with what each side brought."""

    path: str
    key: str
    from_source: list[tuple[str, int]]
    from_target: list[tuple[str, int]]
    settled: int
    conflict_count: int

    @property
    def source_summary(self) -> str:
        return _counted(self.from_source)

    @property
    def target_summary(self) -> str:
        return _counted(self.from_target)


def _counted(counts: list[tuple[str, int]]) -> str:
    """'2 added, 1 changed': the row changes one side brought, or ''."""
    return ", ".join(f"{count:,} {word}" for word, count in counts if count)


@dataclass(slots=True)
class RowConflict:
    key: str
    column: str
    what: str
    base: str | None
    target: str | None
    source: str | None


@dataclass(slots=True)
class ConflictGroup:
    """The conflicts of one path: the file's own (`reason`), or its rows."""

    path: str
    reason: str = ""
    rows: list[RowConflict] = field(default_factory=list)
    total: int = 0  # every row conflict of the table, listed or not

    @property
    def unlisted(self) -> int:
        return max(self.total - len(self.rows), 0)

    needs_key: bool = False  # a table changed on both sides that has no key column


@dataclass(slots=True)
class MergeOverview:
    """Everything a merge's page shows."""

    dataset: Dataset
    merge: Merge
    source: Side
    target: Side
    base: Side | None
    taken: list[TakenFile]
    taken_total: int
    tables: list[TableRows]
    conflicts: list[ConflictGroup]
    conflict_count: int
    up_to_date: bool
    bump: str | None
    bump_reasons: list[str]
    warnings: list[str]
    options: dict[str, Any]
    # Paths a steward may settle one by one: the conflicting ones, and those
    # settled or given a side before.
    strategy_paths: list[str]
    # A branch that has moved since the merge was worked out: its name and head now.
    moved: list[tuple[str, str]]
    can_merge: bool

    @property
    def clean(self) -> bool:
        return self.merge.finished and self.merge.state == Merge.State.DONE and not self.conflict_count


def merge_get(*, user: permissions.User, name: str, merge_id: str) -> tuple[Dataset, Merge]:
    """A merge of a dataset the user may read (404 otherwise, as for a missing one)."""
    dataset = dataset_get(name, user)
    merge = (
        Merge.objects.filter(dataset=dataset, id=merge_id[:32])
        .select_related("source_head", "target_head", "version")
        .first()
    )
    if merge is None:
        raise NotFound(f"{dataset.name} has no merge {merge_id[:40]}.")
    return dataset, merge


def merge_overview(*, user: permissions.User, name: str, merge_id: str) -> MergeOverview:
    """A merge's page: its two branches and their base, and once worked out what
    it takes from the source, the tables it merges by row, and its conflicts by
    path. A fixed number of queries, whatever the size of the outcome."""
    dataset, merge = merge_get(user=user, name=name, merge_id=merge_id)
    result: dict[str, Any] = merge.result or {}
    source = _side(merge.source, result.get("source_head")) or Side(merge.source, merge.source_head.semver)
    target = _side(merge.target, result.get("target_head")) or Side(merge.target, merge.target_head.semver)
    files = result.get("files") or []
    taken = [_taken(change, merge) for change in files if change.get("outcome") in ("source", "settled")]
    keys = {change["path"]: change.get("key") or "" for change in files if change.get("outcome") == "rows"}
    tables = [_table(path, keys.get(path, ""), stats) for path, stats in (result.get("tables") or {}).items()]
    conflicts = _conflict_groups(result)
    options = dict(merge.options or {})
    chosen: dict[str, str] = dict(options.get("path_strategies") or {})
    paths = (
        {group.path for group in conflicts} | {f.path for f in taken if f.change == "settled"} | set(chosen)
    )
    heads = dict(
        Branch.objects.filter(dataset=dataset, name__in=[merge.source, merge.target]).values_list(
            "name", "head__semver"
        )
    )
    # The target of a merge that made a version is at that version, not moved.
    target_seen = merge.version.semver if merge.version is not None else merge.target_head.semver
    moved = [
        (branch, heads.get(branch, ""))
        for branch, seen in ((merge.target, target_seen), (merge.source, merge.source_head.semver))
        if heads.get(branch) != seen
    ]
    return MergeOverview(
        dataset=dataset,
        merge=merge,
        source=source,
        target=target,
        base=_side("base", result.get("base")),
        taken=taken[:FILES_SHOWN],
        taken_total=len(taken),
        tables=tables,
        conflicts=conflicts,
        conflict_count=int(result.get("conflict_count") or 0),
        up_to_date=bool(result.get("up_to_date")),
        bump=result.get("bump"),
        bump_reasons=list(result.get("bump_reasons") or []),
        warnings=list(result.get("warnings") or []),
        options=options,
        strategy_paths=sorted(paths),
        moved=moved,
        can_merge=merge.finished
        and merge.version_id is None
        and not result.get("up_to_date")
        and can_write(user, dataset),
    )


def merges_recent(dataset: Dataset, limit: int = 10) -> list[Merge]:
    """The latest merges and dry runs of a dataset, newest first."""
    return list(
        Merge.objects.filter(dataset=dataset)
        .select_related("version")
        .only("id", "source", "target", "dry_run", "state", "created", "author", "version__semver")
        .order_by("-created")[:limit]
    )


def _side(branch: str, brief: dict[str, Any] | None) -> Side | None:
    if not brief:
        return None
    return Side(branch, brief["semver"], bool(brief.get("rolled_back")), bool(brief.get("golden")))


def _taken(change: dict[str, Any], merge: Merge) -> TakenFile:
    before, after = change.get("target"), change.get("source")
    if change.get("outcome") == "settled":
        taken = merge.source if change.get("taken") == "source" else merge.target
        return TakenFile(
            change["path"], "settled", _size(before), _size(after), change.get("reason", ""), taken
        )
    what = "removed" if after is None else ("added" if before is None else "changed")
    return TakenFile(change["path"], what, _size(before), _size(after))


def _size(entry: dict[str, Any] | None) -> int | None:
    return None if entry is None else int(entry.get("size") or 0)


def _table(path: str, key: str, stats: dict[str, Any]) -> TableRows:
    def counts(side: str) -> list[tuple[str, int]]:
        words = (("inserted", "added"), ("updated", "changed"), ("deleted", "removed"))
        return [(word, int(stats.get(f"{kind}_from_{side}") or 0)) for kind, word in words]

    # The table's conflict count includes those its strategy settled.
    settled = int(stats.get("settled") or 0)
    return TableRows(
        path=path,
        key=key or str(stats.get("key") or ""),
        from_source=counts("source"),
        from_target=counts("target"),
        settled=settled,
        conflict_count=max(int(stats.get("conflict_count") or 0) - settled, 0),
    )


def _conflict_groups(result: dict[str, Any]) -> list[ConflictGroup]:
    """The listed conflicts by path, in the order the merge found them."""
    groups: dict[str, ConflictGroup] = {}
    tables = result.get("tables") or {}
    for conflict in result.get("conflicts") or []:
        path = conflict.get("path", "")
        group = groups.get(path)
        if group is None:
            stats = tables.get(path) or {}
            total = int(stats.get("conflict_count") or 0) - int(stats.get("settled") or 0)
            group = groups[path] = ConflictGroup(path, total=total)
        if conflict.get("kind") in ("file", "table"):
            group.reason = str(conflict.get("reason") or "")
            if group.reason == treemerge.NO_KEY:
                # The page asks for the key beside the form, in its own words.
                group.reason, group.needs_key = treemerge.BOTH_CHANGED, True
            continue
        kind = str(conflict.get("kind") or "")
        group.rows.append(
            RowConflict(
                key=_shown(conflict.get("key")) or "",
                column=str(conflict.get("column") or ""),
                what=ROW_CONFLICTS.get(kind, kind),
                base=_shown(conflict.get("base")),
                target=_shown(conflict.get("target")),
                source=_shown(conflict.get("source")),
            )
        )
    for group in groups.values():
        group.total = max(group.total, len(group.rows))
    return list(groups.values())


def _shown(value: Any) -> str | None:
    """A cell as the page shows it: None where the row (or value) is not there."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)
