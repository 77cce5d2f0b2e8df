"""`strata push`, `pull` and `verify`: bytes in, bytes out, and every stored byte checked."""

from __future__ import annotations

from typing import Any

from catalog import selectors
from catalog.domain.formatting import code_line, human_bytes
from catalog.errors import StrataError, UserError
from catalog.services.pull import version_pull
from catalog.services.verify import VerifyReport, store_verify
from lineage.services.runs import version_push_recorded
from ops.cli.common import Output, actor, count, parse_date, progress_for, subcommand


class VerifyFailed(StrataError):
    """Raised after the report is printed, so the command exits 1."""


def register(subparsers: Any) -> None:
    _register_push(subparsers)
    _register_pull(subparsers)
    _register_verify(subparsers)


def _register_push(subparsers: Any) -> None:
    push = subcommand(subparsers, "push", help="store a file or folder as a new version", handler=handle_push)
    push.add_argument("path")
    push.add_argument("dataset")
    push.add_argument(
        "--branch", default=None, help="branch to commit on (default: the dataset's default branch)"
    )
    push.add_argument("--message", "-m", default="")
    push.add_argument("--stage", choices=["raw", "cleaned", "labelled", "split", "other"])
    push.add_argument("--semver", help="explicit semantic version, e.g. 2.0.0")
    push.add_argument(
        "--allow-semver-override",
        metavar="REASON",
        help="accept a --semver that understates the change, recording why in the audit log",
    )
    push.add_argument("--author", help="who pushes (default: $STRATA_USER or the login name)")
    push.add_argument(
        "--date",
        metavar="ISO-8601",
        help="date the version in the past, with its time zone (history brought from another tool)",
    )
    push.add_argument(
        "--code",
        default="",
        metavar="REPOSITORY#REF",
        help="the code that made this data: a git repository and a commit or branch",
    )
    push.add_argument("--step", metavar="NAME", help="record the step that made this version as a run")
    push.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="DATASET@REF",
        help="an input of --step (repeatable)",
    )
    push.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of --step (repeatable)",
    )


def _register_pull(subparsers: Any) -> None:
    pull = subcommand(subparsers, "pull", help="write a version's files into a folder", handler=handle_pull)
    pull.add_argument("spec", metavar="DATASET[@REF]")
    pull.add_argument("dest")
    pull.add_argument("--force", action="store_true", help="write into a non-empty folder")


def _register_verify(subparsers: Any) -> None:
    verify = subcommand(
        subparsers,
        "verify",
        help="re-hash every stored byte and file; clear old spool files",
        handler=handle_verify,
    )
    verify.add_argument("spec", nargs="?", metavar="DATASET[@REF]")
    verify.add_argument(
        "--keep-spool",
        action="store_true",
        help="list spool files older than a day instead of removing them",
    )


def handle_push(out: Output, options: dict[str, Any]) -> None:
    # The version and the run that made it (with --step) are committed together.
    recorded = version_push_recorded(
        user=None,
        path=options["path"],
        dataset_name=options["dataset"],
        author=actor(options),
        branch=options["branch"],
        message=options["message"],
        stage=options["stage"],
        semver=options["semver"],
        semver_override=options["allow_semver_override"],
        progress=progress_for(options, "push"),
        created=parse_date(options["date"]) if options["date"] else None,
        code=options["code"],
        step=options["step"],
        inputs=options["input"],
        params=options["param"],
    )
    result, version = recorded.push, recorded.push.version
    if result.created:
        text = (
            f"Pushed {result.dataset}@{version.semver} on {result.branch}: version {version.id}\n"
            f"  files {result.file_count:,}  logical {human_bytes(result.logical_bytes)}"
            f"  new {human_bytes(result.new_bytes)} (stored {human_bytes(result.stored_bytes)})"
            f"  reused {human_bytes(result.reused_bytes)}"
        )
        if version.code:
            text += f"\n  code {code_line(version.code_repo, version.code_ref)}"
    else:
        text = (
            f"No changes: {result.dataset}@{result.branch} already holds this content "
            f"as {version.semver} ({version.id[:12]}); no new version made."
        )
    payload = result.as_dict()
    if recorded.run is not None:
        payload["run"] = recorded.run.as_dict()
        text += (
            f"\n  recorded run {options['step']} ({len(options['input'])} inputs),"
            f" lineage node {recorded.run.run.node_id}"
        )
    elif options["step"]:
        text += "\n  No run recorded: the push made no new version."
    out.emit(payload, text)


def handle_pull(out: Output, options: dict[str, Any]) -> None:
    _, version = selectors.resolve_spec(options["spec"])
    result = version_pull(
        version=version, dest=options["dest"], force=options["force"], progress=progress_for(options, "pull")
    )
    out.emit(
        result.as_dict(),
        f"Pulled {version.dataset.name}@{version.semver} ({version.id[:12]}) into {result.dest}: "
        f"{result.file_count:,} files, {human_bytes(result.bytes_written)}",
    )


def handle_verify(out: Output, options: dict[str, Any]) -> None:
    versions = None
    if options["spec"]:
        name, ref = selectors.split_ref(options["spec"])
        dataset = selectors.dataset_get(name)
        versions = [selectors.resolve_ref(dataset, ref)] if ref else list(dataset.versions.all())
        if ref and versions[0].expired is not None:
            raise UserError(
                f"{versions[0]} expired under the retention policy on {versions[0].expired:%Y-%m-%d}; "
                "its data is gone, so there is nothing to verify."
            )
    report = store_verify(versions=versions, keep_spool=options["keep_spool"])
    out.emit(report.as_dict(), "\n".join(_verify_lines(report)))
    if not report.ok:
        raise VerifyFailed(f"verify found {len(report.broken)} broken objects (listed above).")


def _verify_lines(report: VerifyReport) -> list[str]:
    lines = [
        f"Checked {report.versions:,} versions: {report.trees:,} trees, {report.files:,} files, "
        f"{report.chunks:,} chunks ({human_bytes(report.chunk_bytes)}) in {report.packs:,} packs."
    ]
    lines += [f"BROKEN: {problem}" for problem in report.broken]
    lines += [f"  {label} expired on {day:%Y-%m-%d}, not checked" for label, day in report.expired]
    if report.cold_packs:
        size = sum(size for _, size in report.cold_packs)
        lines.append(
            f"{len(report.cold_packs)} packs ({human_bytes(size)}) are cold, not checked (restore to verify):"
        )
        lines += [f"  cold {pack_id} {human_bytes(size)}" for pack_id, size in report.cold_packs]
    if report.unreferenced_packs:
        size = sum(size for _, size in report.unreferenced_packs)
        lines.append(
            f"{len(report.unreferenced_packs)} unreferenced packs ({human_bytes(size)}), "
            "left by interrupted pushes; garbage collection removes them:"
        )
        lines += [
            f"  unreferenced {pack_id} {human_bytes(size)}" for pack_id, size in report.unreferenced_packs
        ]
    lines += _spool_lines(report)
    if report.ok:
        readable = "readable" if report.cold_packs else "reachable"
        lines.append(f"OK: every {readable} byte verified.")
    return lines


def _spool_lines(report: VerifyReport) -> list[str]:
    lines = []
    removed = [spool for spool in report.spool_files if spool.removed]
    kept = [spool for spool in report.spool_files if not spool.removed]
    if removed:
        size = sum(spool.size for spool in removed)
        lines.append(
            f"removed {count(len(removed), 'spool file', 'spool files')} ({human_bytes(size)}) "
            "left by interrupted pushes"
        )
    if kept:
        size = sum(spool.size for spool in kept)
        lines.append(
            f"{count(len(kept), 'spool file', 'spool files')} ({human_bytes(size)}) left by "
            "interrupted pushes, older than a day, not removed:"
        )
        lines += [
            f"  spool {spool.path} {human_bytes(spool.size)}, {spool.age_seconds / 86400:.1f} days old"
            for spool in kept
        ]
    return lines
