"""`strata change …` and `strata protect`: change requests and branch protection
on the command line (``changes.services``)."""

from __future__ import annotations

from typing import Any

from catalog import selectors
from catalog.errors import ConflictError
from changes.models import ChangeRequest
from changes.services import requests
from changes.services.protection import protection_delete, protection_set
from ops.cli.common import Output, actor, subcommand


def register(subparsers: Any) -> None:
    change = subcommand(subparsers, "change", help="change requests: open, list, show, merge, close")
    actions = change.add_subparsers(dest="action", required=True, parser_class=type(change))

    opened = subcommand(actions, "open", help="propose merging a branch", handler=handle_open)
    opened.add_argument("dataset")
    opened.add_argument("source", metavar="SOURCE")
    opened.add_argument("--into", metavar="TARGET")
    opened.add_argument("--title", default="")
    opened.add_argument("--description", default="")
    opened.add_argument("--code", default="", metavar="REPOSITORY#REF", help="the code this change goes with")
    opened.add_argument("--author")

    listed = subcommand(actions, "list", help="a dataset's change requests", handler=handle_list)
    listed.add_argument("dataset")
    listed.add_argument("--state", default="open", choices=[*ChangeRequest.State.values, "all"])

    shown = subcommand(
        actions, "show", help="a change request, its checks and what it waits for", handler=handle_show
    )
    shown.add_argument("number", type=int)

    merged = subcommand(actions, "merge", help="merge a change request that may merge", handler=handle_merge)
    merged.add_argument("number", type=int)
    merged.add_argument("--author")

    closed = subcommand(actions, "close", help="close a change request without merging", handler=handle_close)
    closed.add_argument("number", type=int)
    closed.add_argument("--author")

    protect = subcommand(subparsers, "protect", help="protect branches of a dataset", handler=handle_protect)
    protect.add_argument("dataset")
    protect.add_argument("pattern", metavar="BRANCH", help="a branch name or pattern, e.g. main or release/*")
    protect.add_argument("--allow-direct", action="store_true", help="let direct pushes through")
    protect.add_argument("--require-check", action="append", default=[], metavar="NAME")
    protect.add_argument("--approvals", type=int, default=1)
    protect.add_argument("--regression", choices=["approve", "block"], default="approve")
    protect.add_argument("--author")

    unprotect = subcommand(subparsers, "unprotect", help="remove a protection rule", handler=handle_unprotect)
    unprotect.add_argument("dataset")
    unprotect.add_argument("pattern", metavar="BRANCH")
    unprotect.add_argument("--author")


def _summary(change: ChangeRequest) -> str:
    return f"#{change.pk}  {change.state:<8} {change.source} → {change.target}  {change.title}"


def handle_open(out: Output, options: dict[str, Any]) -> None:
    repo, _, ref = options["code"].partition("#")
    change = requests.change_open(
        user=None,
        dataset_name=options["dataset"],
        source=options["source"],
        into=options["into"],
        title=options["title"],
        description=options["description"],
        code_repo=repo,
        code_ref=ref,
        author=actor(options),
    )
    out.emit(
        {"id": change.pk, "state": change.state, "head": change.head_id},
        f"Opened change request #{change.pk}: {change.source} → {change.target}; its checks are queued.",
    )


def handle_list(out: Output, options: dict[str, Any]) -> None:
    dataset = selectors.dataset_get(options["dataset"])
    rows = ChangeRequest.objects.filter(dataset=dataset)
    if options["state"] != "all":
        rows = rows.filter(state=options["state"])
    changes = list(rows[:500])
    payload = [
        {"id": c.pk, "state": c.state, "source": c.source, "target": c.target, "title": c.title}
        for c in changes
    ]
    out.emit(payload, "\n".join(_summary(c) for c in changes) or "No change requests.")


def handle_show(out: Output, options: dict[str, Any]) -> None:
    change = requests.change_by_id(user=None, number=options["number"])
    standing = requests.change_standing(change)
    lines = [_summary(change), f"  head {change.head_id[:12]}  target head {change.target_head_id[:12]}"]
    lines += [f"  {check.state:<15} {check.name}: {check.summary}" for check in standing.checks]
    lines += [f"  approved by {a.user.get_username()}" for a in standing.approvals]
    lines.append("  may merge" if standing.mergeable else "  waits: " + " ".join(standing.blockers))
    payload = {
        "id": change.pk,
        "state": change.state,
        "mergeable": standing.mergeable,
        "blockers": standing.blockers,
        "checks": [{"name": c.name, "state": c.state, "summary": c.summary} for c in standing.checks],
    }
    out.emit(payload, "\n".join(lines))


def handle_merge(out: Output, options: dict[str, Any]) -> None:
    change = requests.change_by_id(user=None, number=options["number"])
    who = actor(options)
    requests.change_merge(user=None, change=change, author=who, queue=False)
    requests.change_merge_run(change.pk, who)  # the command line waits for the merge
    change.refresh_from_db()
    if change.state != ChangeRequest.State.MERGED:
        raise ConflictError(change.error or f"change request #{change.pk} did not merge.")
    version = change.merged_version
    assert version is not None
    out.emit(
        {"id": change.pk, "state": change.state, "version": version.id, "semver": version.semver},
        f"Merged change request #{change.pk} as {change.dataset.name}@{version.semver} ({version.id[:12]})",
    )


def handle_close(out: Output, options: dict[str, Any]) -> None:
    change = requests.change_by_id(user=None, number=options["number"])
    change = requests.change_close(user=None, change=change, author=actor(options))
    out.emit({"id": change.pk, "state": change.state}, f"Closed change request #{change.pk}")


def handle_protect(out: Output, options: dict[str, Any]) -> None:
    dataset = selectors.dataset_get(options["dataset"])
    row = protection_set(
        user=None,
        dataset=dataset,
        pattern=options["pattern"],
        refuse_direct=not options["allow_direct"],
        required_checks=options["require_check"],
        required_approvals=options["approvals"],
        regression=options["regression"],
        actor=actor(options),
    )
    how = "changes only through change requests" if row.refuse_direct else "direct pushes allowed"
    out.emit(
        {
            "pattern": row.pattern,
            "refuse_direct": row.refuse_direct,
            "required_approvals": row.required_approvals,
        },
        f"Protected {dataset.name}:{row.pattern}: {how}, {row.required_approvals} approval(s) to merge",
    )


def handle_unprotect(out: Output, options: dict[str, Any]) -> None:
    dataset = selectors.dataset_get(options["dataset"])
    protection_delete(user=None, dataset=dataset, pattern=options["pattern"], actor=actor(options))
    out.emit(
        {"pattern": options["pattern"], "removed": True},
        f"Removed the protection of {dataset.name}:{options['pattern']}",
    )
