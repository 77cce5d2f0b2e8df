"""`strata merge`: merge one branch of a dataset into another (``catalog.services.merges``)."""

from __future__ import annotations

import sys
from typing import Any

from catalog.services.merges import MergeOutcome, merge_branches, parse_assignments
from ops.cli.common import Output, actor, count, subcommand


def register(subparsers: Any) -> None:
    merge = subcommand(subparsers, "merge", help="merge a branch into another", handler=handle_merge)
    merge.add_argument("dataset")
    merge.add_argument("source", metavar="SOURCE", help="the branch to merge from")
    merge.add_argument(
        "--into", metavar="TARGET", help="the branch to merge into (default: the dataset's default)"
    )
    merge.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="[PATH=]SIDE",
        help="settle conflicts for source or target: for every path, or PATH=SIDE for one file or folder",
    )
    merge.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="[PATH=]COLUMN",
        help="the key column that rows of changed tables merge by: for every table, or PATH=COLUMN",
    )
    merge.add_argument("--message", "-m", default="")
    merge.add_argument(
        "--dry-run", action="store_true", help="show the outcome and the conflicts; write nothing"
    )
    merge.add_argument("--author")


def handle_merge(out: Output, options: dict[str, Any]) -> None:
    strategy, path_strategies = parse_assignments(options["strategy"], "strategy")
    key, keys = parse_assignments(options["key"], "key column")
    if key:
        keys[""] = key
    outcome = merge_branches(
        user=None,
        dataset_name=options["dataset"],
        source=options["source"],
        into=options["into"],
        strategy=strategy,
        path_strategies=path_strategies,
        keys=keys,
        message=options["message"],
        dry_run=options["dry_run"],
        author=actor(options),
    )
    out.emit(outcome.as_dict(), "\n".join(outcome_lines(outcome)))
    if outcome.conflict_count:
        out.stderr.write(
            f"error: {count(outcome.conflict_count, 'conflict', 'conflicts')}; nothing was merged."
            f" Settle {'it' if outcome.conflict_count == 1 else 'them'} with --strategy source|target (for"
            f" everything, or PATH=SIDE), or push a resolved version to {outcome.plan.ask.source} and merge again."
        )
        sys.exit(1)


def outcome_lines(outcome: MergeOutcome) -> list[str]:
    """The outcome for people: what is taken from where, row merges, conflicts, the version."""
    plan = outcome.plan
    ask = plan.ask
    base = f"{plan.base.semver}" if plan.base else "no common version"
    lines = [
        f"{'Dry run: merging' if outcome.dry_run else 'Merging'} {ask.source} ({plan.source_head.semver})"
        f" into {ask.target} ({plan.target_head.semver}) of {ask.dataset.name}; base {base}"
    ]
    lines += [f"  warning: {warning}" for warning in plan.warnings]
    if plan.up_to_date:
        lines.append(f"  {ask.target} already holds every change of {ask.source}: nothing to merge.")
        return lines
    for change in plan.files.changes:
        if change.outcome == "source":
            what = "removed" if change.source is None else ("added" if change.target is None else "changed")
            lines.append(f"  {what:<9} {change.path}  (from {ask.source})")
        elif change.outcome == "settled":
            lines.append(f"  settled   {change.path}  ({change.reason}: {change.taken} kept)")
    for path, table in outcome.tables.items():
        lines.append(f"  rows      {path}  {table_summary(table)}")
    if outcome.conflict_count:
        lines.append(f"  {count(outcome.conflict_count, 'conflict', 'conflicts')}:")
        for conflict in outcome.conflicts:
            lines.append("    " + conflict_line(conflict))
        shown = len(outcome.conflicts)
        if shown < outcome.conflict_count:
            lines.append(f"    … and {outcome.conflict_count - shown:,} more (--json lists them by table)")
        return lines
    if outcome.bump:
        why = f" ({outcome.bump_reasons[0]})" if outcome.bump_reasons else ""
        lines.append(f"  a {outcome.bump} change against {ask.target}{why}")
    if outcome.version is not None:
        version = outcome.version
        lines.append(
            f"Merged as {ask.dataset.name}@{version.semver} ({version.id[:12]}),"
            f" parents {plan.target_head.semver} and {plan.source_head.semver}"
        )
    elif outcome.dry_run:
        lines.append("No conflicts: the merge would make one version. Nothing was written.")
    return lines


def table_summary(table: dict[str, Any]) -> str:
    """One line of row counts for a table merged by key."""
    parts = []
    for side in ("source", "target"):
        counts = [
            f"{table.get(f'{kind}_from_{side}', 0):,} {kind}"
            for kind in ("inserted", "updated", "deleted")
            if table.get(f"{kind}_from_{side}")
        ]
        if counts:
            parts.append(f"{side}: " + ", ".join(counts))
    if table.get("settled"):
        parts.append(f"{table['settled']:,} settled by strategy")
    return "; ".join(parts) or "no row changes"


def conflict_line(conflict: dict[str, Any]) -> str:
    """One conflict: a file's, or a row's by key and column."""
    if conflict.get("kind") in ("file", "table"):
        return f"{conflict['path']}: {conflict['reason']}"
    where = f"key {conflict.get('key')!r}"
    if conflict.get("column"):
        where += f", column {conflict['column']!r}"
    sides = "  ".join(
        f"{side} {conflict.get(side)!r}" for side in ("base", "target", "source") if side in conflict
    )
    return f"{conflict['path']} {where}: {conflict.get('kind')}  {sides}"
