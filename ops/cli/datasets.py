"""`strata datasets`, `log`, `ls`, `tag`, `branch` and `diff`: the catalog, its
history and its names, read or written through the catalog's selectors and services."""

from __future__ import annotations

from typing import Any

from catalog import selectors
from catalog.domain.formatting import human_bytes
from catalog.errors import UserError
from catalog.selectors.changes import ChangeReport, TableChange, change_report
from catalog.services.refs import branch_create, tag_create
from ops.cli.common import Output, actor, subcommand


def register(subparsers: Any) -> None:
    _register_reads(subparsers)
    _register_refs(subparsers)
    diff = subcommand(subparsers, "diff", help="what changed between two versions", handler=handle_diff)
    diff.add_argument("old", metavar="DATASET@A")
    diff.add_argument("new", metavar="DATASET@B")
    diff.add_argument("--key", help="key column for row diffs (default: detected)")
    diff.add_argument("--label", help="label column for the distribution shift (default: detected)")


def _register_reads(subparsers: Any) -> None:
    log = subcommand(subparsers, "log", help="a branch's history, newest first", handler=handle_log)
    log.add_argument("dataset")
    log.add_argument("--branch", default=None)
    log.add_argument("--limit", type=int, default=1000)

    ls = subcommand(subparsers, "ls", help="list a folder of a version", handler=handle_ls)
    ls.add_argument("spec", metavar="DATASET[@REF]")
    ls.add_argument("path", nargs="?", default="")

    subcommand(subparsers, "datasets", help="list datasets", handler=handle_datasets)


def _register_refs(subparsers: Any) -> None:
    tag = subcommand(subparsers, "tag", help="name a version", handler=handle_tag)
    tag.add_argument("spec", metavar="DATASET@REF")
    tag.add_argument("name")
    tag.add_argument("--author")

    branch = subcommand(subparsers, "branch", help="create a branch", handler=handle_branch)
    branch.add_argument("dataset")
    branch.add_argument("name")
    branch.add_argument("--from", dest="start", default=None, metavar="REF")
    branch.add_argument("--author")


def handle_log(out: Output, options: dict[str, Any]) -> None:
    dataset = selectors.dataset_get(options["dataset"])
    branch = options["branch"] or dataset.default_branch
    if not dataset.branches.filter(name=branch).exists():
        raise UserError(f"{dataset.name} has no branch {branch!r}.")
    head = selectors.resolve_ref(dataset, branch)
    versions = selectors.version_log(head, limit=max(1, options["limit"]))
    payload = [
        {
            "id": v.id,
            "semver": v.semver,
            "message": v.message,
            "author": v.author,
            "created": v.created.isoformat(),
            "stage": v.stage,
            "file_count": v.file_count,
            "logical_bytes": v.logical_bytes,
            "parent": v.parent_id,
            "merge_parent": v.merge_parent_id,
            "code_repo": v.code_repo,
            "code_ref": v.code_ref,
        }
        for v in versions
    ]
    lines = [
        f"{v.id[:12]}  {v.semver:<10} {v.created:%Y-%m-%d %H:%M}  {v.stage:<9} {v.author:<12} "
        f"{human_bytes(v.logical_bytes):>10}  {v.message}"
        + (
            f"  (merge of {v.parent_id[:12] if v.parent_id else '-'} and {v.merge_parent_id[:12]})"
            if v.merge_parent_id
            else ""
        )
        for v in versions
    ]
    out.emit(payload, "\n".join(lines))


def handle_ls(out: Output, options: dict[str, Any]) -> None:
    _, version = selectors.resolve_spec(options["spec"])
    listing = selectors.tree_listing(version, options["path"])
    kinds = {"f": "file", "x": "file", "l": "link", "d": "folder"}
    payload = {
        "version": version.id,
        "semver": version.semver,
        "path": listing.path,
        "entries": [
            {
                "name": e.name,
                "type": kinds[e.kind],
                "size": e.size,
                "executable": e.kind == "x",
                **({"target": e.digest} if e.kind == "l" else {"digest": e.digest}),
            }
            for e in listing.entries
        ],
    }
    lines = []
    for e in listing.entries:
        name = e.name + ("/" if e.is_tree else "") + (f" -> {e.digest}" if e.kind == "l" else "")
        digest = "" if e.kind == "l" else e.digest[:12]
        lines.append(f"{human_bytes(e.size):>10}  {digest:<12}  {name}")
    out.emit(payload, "\n".join(lines) if lines else "(empty folder)")


def handle_datasets(out: Output, options: dict[str, Any]) -> None:
    datasets = list(selectors.dataset_list())
    heads = selectors.default_heads(datasets)
    payload = []
    lines = []
    for dataset in datasets:
        head = heads.get(dataset.pk)
        version_count: int = getattr(dataset, "version_count", 0)  # annotated by dataset_list
        payload.append(
            {
                "name": dataset.name,
                "default_branch": dataset.default_branch,
                "versions": version_count,
                "head": head.id if head else None,
                "semver": head.semver if head else None,
                "file_count": head.file_count if head else 0,
                "logical_bytes": head.logical_bytes if head else 0,
                "updated": dataset.updated.isoformat(),
            }
        )
        lines.append(
            f"{dataset.name:<30} {head.semver if head else '-':<10} {version_count:>6} versions"
            f"  {human_bytes(head.logical_bytes if head else 0):>10}"
        )
    out.emit(
        payload, "\n".join(lines) if lines else "No datasets yet: push one with `strata push PATH NAME`."
    )


def handle_tag(out: Output, options: dict[str, Any]) -> None:
    name, ref = selectors.split_ref(options["spec"])
    if ref is None:
        raise UserError("give the version to tag as DATASET@REF.")
    dataset = selectors.dataset_get(name)
    version = selectors.resolve_ref(dataset, ref)
    tag = tag_create(dataset=dataset, name=options["name"], version=version, actor=actor(options))
    out.emit(
        {"dataset": dataset.name, "tag": tag.name, "version": version.id, "semver": version.semver},
        f"Tagged {dataset.name}@{version.semver} ({version.id[:12]}) as {tag.name}",
    )


def handle_branch(out: Output, options: dict[str, Any]) -> None:
    dataset = selectors.dataset_get(options["dataset"])
    start = selectors.resolve_ref(dataset, options["start"])
    branch = branch_create(dataset=dataset, name=options["name"], start=start, actor=actor(options))
    out.emit(
        {"dataset": dataset.name, "branch": branch.name, "head": start.id, "semver": start.semver},
        f"Created branch {branch.name} of {dataset.name} at {start.semver} ({start.id[:12]})",
    )


def handle_diff(out: Output, options: dict[str, Any]) -> None:
    _, old = selectors.resolve_spec(options["old"])
    _, new = selectors.resolve_spec(options["new"])
    report = change_report(old, new, key=options["key"], label=options["label"])
    key = options["key"]
    if key and report.tables and all(t.error and f"key column {key!r}" in t.error for t in report.tables):
        raise UserError(f"the key column {key!r} is in none of the changed tables.")
    lines = _file_lines(report)
    for table in report.tables:
        lines += _table_lines(table)
    out.emit(report.as_dict(), "\n".join(lines))


def _file_lines(report: ChangeReport) -> list[str]:
    old, new, files = report.old, report.new, report.files
    lines = [
        f"{old.dataset.name}@{old.semver} -> {new.dataset.name}@{new.semver}: {files.added} added, "
        f"{files.removed} removed, {files.modified} modified files ({human_bytes(files.size_delta)} net);"
        f" a {report.bump} change"
    ]
    for change in files.changes[:50]:
        mark = {"added": "+", "removed": "-", "modified": "~"}[change.status]
        lines.append(
            f"  {mark} {change.path}  ({human_bytes(change.old_size)} -> {human_bytes(change.new_size)})"
        )
    if len(files.changes) > 50:
        lines.append(f"  … and {len(files.changes) - 50} more files (--json lists them all)")
    for folder, counts in report.folders.items():
        if len(report.folders) > 1:
            lines.append(
                f"  folder {folder or '.'}: +{counts['added']} -{counts['removed']} ~{counts['modified']}"
            )
    return lines


def _table_lines(table: TableChange) -> list[str]:
    lines = [f"table {table.path}:"]
    if table.error:
        lines.append(f"  could not compare: {table.error}")
        return lines
    schema, rows = table.schema, table.rows
    assert schema is not None and rows is not None  # a table compared without error has both
    lines += [f"  column added: {column}" for column in schema.added]
    lines += [f"  column removed: {column}" for column in schema.removed]
    lines += [f"  column renamed: {old_name} -> {new_name}" for old_name, new_name in schema.renamed]
    lines += [f"  column {column}: {before} -> {after}" for column, before, after in schema.type_changed]
    how = f"by key {rows.key}" if rows.method == "key" else "by row content"
    lines.append(
        f"  rows ({how}): {rows.rows_a:,} -> {rows.rows_b:,}; +{rows.added:,} -{rows.removed:,}"
        f" ~{rows.changed:,} changed"
        + (
            f" ({', '.join(f'{c}: {n:,}' for c, n in rows.changed_cells.items())})"
            if rows.changed_cells
            else ""
        )
    )
    lines += [f"  note: {note}" for note in rows.notes]
    if table.labels:
        shift = table.labels
        share_a, share_b = shift.proportions(shift.counts_a), shift.proportions(shift.counts_b)
        lines.append(
            f"  labels ({shift.column}): PSI {shift.psi:.4f}, chi-square {shift.chi_square:.2f}"
            f" (p = {shift.p_value:.3g})"
        )
        for label in shift.labels:
            lines.append(
                f"    {label}: {shift.counts_a.get(label, 0):,} ({share_a[label]:.1%})"
                f" -> {shift.counts_b.get(label, 0):,} ({share_b[label]:.1%})"
            )
    return lines
