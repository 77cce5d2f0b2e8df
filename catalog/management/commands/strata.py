"""`python manage.py strata …`: Strata on the command line.

Each subcommand parses its arguments, calls one service or selector and prints the
result — as text for people, or as JSON with --json. A user error prints one sentence
on stderr and exits 2; damaged data or a conflict exits 1.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from catalog import selectors
from catalog.domain.formatting import human_bytes
from catalog.services.errors import StrataError, UserError
from catalog.services.pull import version_pull
from catalog.services.refs import branch_create, tag_create
from catalog.services.verify import store_verify
from catalog.services.versions import version_push


class TerminalProgress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.files = self.total_files = 0
        self.nbytes = self.total_bytes = 0
        self.started = self.drawn = 0.0

    def start(self, files: int, nbytes: int) -> None:
        self.total_files, self.total_bytes = files, nbytes
        self.started = time.monotonic()

    def advance(self, files: int, nbytes: int) -> None:
        self.files += files
        self.nbytes += nbytes
        now = time.monotonic()
        if self.enabled and now - self.drawn > 0.1 and now - self.started > 0.5:
            self.drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = self.nbytes / self.total_bytes if self.total_bytes else 1.0
        filled = int(fraction * 30)
        rate = self.nbytes / max(now - self.started, 1e-6)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} "
            f"{self.files:,}/{self.total_files:,} files {human_bytes(self.nbytes)}"
            f" {human_bytes(rate)}/s "
        )
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.drawn:
            self._draw(time.monotonic())
            sys.stderr.write("\n")


class OneLineParser(CommandParser):
    """Argument errors in one line, like every other error, instead of the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if self.called_from_command_line:
            self.exit(2, f"error: {message} (see `{self.prog} --help`).\n")
        super().error(message)


def _parse_date(value: str) -> datetime.datetime:
    """An ISO 8601 date with its time zone (a trailing Z is UTC)."""
    try:
        parsed = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{value!r} is not a date: write it as 2026-05-01T09:00:00+00:00.") from None
    if parsed.tzinfo is None:
        raise UserError(f"{value!r} has no time zone: add one, e.g. +00:00 or Z.")
    return parsed


def _count(number: int, one: str, many: str) -> str:
    return f"{number:,} {one if number == 1 else many}"


def _actor(options: dict[str, Any]) -> str:
    return options.get("author") or os.environ.get("STRATA_USER") or getpass.getuser()


class Command(BaseCommand):
    help = (
        "Version datasets: push, pull, log, ls, datasets, tag, branch, verify, import-dvc;"
        " models: record-training, lock, reproduce."
    )
    # Django's system checks load the URL configuration, and with it the API, the
    # lineage graph and Arrow: most of a second and 110 MiB on every command.
    # `manage.py migrate`, which every start runs, and `manage.py check` run them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        common = CommandParser(add_help=False)
        common.add_argument("--json", action="store_true", help="print machine-readable JSON")
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=OneLineParser)

        push = sub.add_parser("push", parents=[common], help="store a file or folder as a new version")
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

        pull = sub.add_parser("pull", parents=[common], help="write a version's files into a folder")
        pull.add_argument("spec", metavar="DATASET[@REF]")
        pull.add_argument("dest")
        pull.add_argument("--force", action="store_true", help="write into a non-empty folder")

        log = sub.add_parser("log", parents=[common], help="a branch's history, newest first")
        log.add_argument("dataset")
        log.add_argument("--branch", default=None)
        log.add_argument("--limit", type=int, default=1000)

        ls = sub.add_parser("ls", parents=[common], help="list a folder of a version")
        ls.add_argument("spec", metavar="DATASET[@REF]")
        ls.add_argument("path", nargs="?", default="")

        sub.add_parser("datasets", parents=[common], help="list datasets")

        tag = sub.add_parser("tag", parents=[common], help="name a version")
        tag.add_argument("spec", metavar="DATASET@REF")
        tag.add_argument("name")
        tag.add_argument("--author")

        split = sub.add_parser("split", parents=[common], help="split a version into train/val/test")
        split.add_argument("spec", metavar="DATASET@REF")
        split.add_argument("--id-column", required=True)
        split.add_argument("--label-column", default=None)
        split.add_argument("--ratios", default="train=0.8,val=0.1,test=0.1")
        split.add_argument("--method", default="hash", choices=["hash", "random"])
        split.add_argument("--seed", type=int, default=42)
        split.add_argument("--stratify", action="store_true")
        split.add_argument("--branch", default=None, help="branch to commit on (default: main)")
        split.add_argument("--file", default=None, help="the table to split, when there are several")
        split.add_argument("--author")

        card = sub.add_parser("card", help="dataset cards: export and import")
        card_sub = card.add_subparsers(dest="card_action", required=True, parser_class=OneLineParser)
        card_export_parser = card_sub.add_parser("export", parents=[common], help="write a card as README.md")
        card_export_parser.add_argument("spec", metavar="DATASET@REF")
        card_export_parser.add_argument("-o", "--output", default=None)
        card_import_parser = card_sub.add_parser("import", parents=[common], help="import a README.md card")
        card_import_parser.add_argument("dataset")
        card_import_parser.add_argument("readme", metavar="README.md")
        card_import_parser.add_argument("--branch", default=None)
        card_import_parser.add_argument("--author")

        golden = sub.add_parser("golden", parents=[common], help="mark a version golden")
        golden.add_argument("spec", metavar="DATASET@REF")
        golden.add_argument("--override-reason", default="")
        golden.add_argument("--author")

        branch = sub.add_parser("branch", parents=[common], help="create a branch")
        branch.add_argument("dataset")
        branch.add_argument("name")
        branch.add_argument("--from", dest="start", default=None, metavar="REF")
        branch.add_argument("--author")

        diff = sub.add_parser("diff", parents=[common], help="what changed between two versions")
        diff.add_argument("old", metavar="DATASET@A")
        diff.add_argument("new", metavar="DATASET@B")
        diff.add_argument("--key", help="key column for row diffs (default: detected)")
        diff.add_argument("--label", help="label column for the distribution shift (default: detected)")

        verify = sub.add_parser(
            "verify", parents=[common], help="re-hash every stored byte and file; clear old spool files"
        )
        verify.add_argument("spec", nargs="?", metavar="DATASET[@REF]")
        verify.add_argument(
            "--keep-spool",
            action="store_true",
            help="list spool files older than a day instead of removing them",
        )

        sub.add_parser(
            "cost", parents=[common], help="bytes and $/month per dataset, branch and tier; retention status"
        )
        retention = sub.add_parser("retention", parents=[common], help="tiering and garbage collection runs")
        retention.add_argument(
            "retention_action",
            choices=["plan", "run", "approve", "list"],
            help="plan: record a run; run: plan and apply it unless it needs approval;"
            " approve RUN_ID: approve a waiting run and apply it; list: the last 20 runs",
        )
        retention.add_argument("run_id", nargs="?", type=int, help="the run to approve")

        token = sub.add_parser("token", help="personal API tokens")
        token_sub = token.add_subparsers(dest="token_command", required=True, parser_class=OneLineParser)
        token_create_parser = token_sub.add_parser(
            "create", parents=[common], help="make a token for a user and print its secret, once"
        )
        token_create_parser.add_argument("username")
        token_create_parser.add_argument("--name", default="command line", help="what the token is for")
        token_create_parser.add_argument(
            "--expires-days", type=int, default=None, help="days until it expires (default: never)"
        )

        dvc = sub.add_parser(
            "import-dvc", parents=[common], help="import a DVC project's pipeline as lineage"
        )
        dvc.add_argument("path", metavar="PATH")
        dvc.add_argument(
            "--project", default="", help="the project's name in the graph (default: the folder's)"
        )
        dvc.add_argument("--author")

        record = sub.add_parser(
            "record-training",
            parents=[common],
            help="register a model version with the exact dataset versions it trained on",
        )
        record.add_argument("model", metavar="MODEL@VERSION")
        record.add_argument(
            "--dataset",
            action="append",
            default=[],
            metavar="ROLE=DATASET@REF",
            help="a dataset the model used, e.g. train=reviews@2.3.0 or eval=reviews-eval@main (repeatable)",
        )
        record.add_argument("--metric", action="append", default=[], metavar="NAME=NUMBER")
        record.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        record.add_argument("--code", default="", metavar="REPOSITORY#COMMIT")
        record.add_argument("--artifact", default="", metavar="URI", help="where the model's weights are")
        record.add_argument("--message", "-m", default="", help="a description of the model version")
        record.add_argument("--author")

        lock = sub.add_parser(
            "lock", parents=[common], help="write strata.lock: the exact versions of datasets or of a model"
        )
        lock.add_argument("specs", nargs="*", metavar="DATASET@REF")
        lock.add_argument("--model", metavar="MODEL@VERSION", help="lock every version the model pinned")
        lock.add_argument(
            "-o",
            "--output",
            default="strata.lock",
            help="where to write it (default strata.lock; - for stdout)",
        )

        reproduce = sub.add_parser(
            "reproduce",
            parents=[common],
            help="materialise every version of a lock (or of a model) into DEST, every byte verified",
        )
        reproduce.add_argument("paths", nargs="+", metavar="[LOCK] DEST")
        reproduce.add_argument(
            "--model", metavar="MODEL@VERSION", help="reproduce a model's data, no lock needed"
        )
        reproduce.add_argument(
            "--restore",
            action="store_true",
            help="restore data in cold storage first, waiting until readable",
        )
        reproduce.add_argument("--force", action="store_true", help="replace the folders it writes in DEST")
        reproduce.add_argument(
            "--poll",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="how often to check restores (default 60)",
        )
        reproduce.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="stop waiting for restores after this",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        # One sentence on stderr and the service's exit code, instead of a traceback.
        try:
            super().run_from_argv(argv)
        except StrataError as error:
            self.stderr.write(f"error: {error}")
            sys.exit(error.exit_code)

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        handler = getattr(self, "do_" + options["subcommand"].replace("-", "_"))
        handler(options)

    def emit(self, payload: object, text: str) -> None:
        if self.as_json:
            self.stdout.write(json.dumps(payload, indent=2, default=str))
        else:
            self.stdout.write(text)

    # -- subcommands ----------------------------------------------------------------

    def do_push(self, options: dict[str, Any]) -> None:
        from lineage.services.runs import push_step_prepare, push_step_record

        # Checked before the push, so a bad --input leaves no version without its run.
        step = push_step_prepare(
            user=None, name=options["step"], inputs=options["input"], params=options["param"]
        )
        created = _parse_date(options["date"]) if options["date"] else None
        progress = None if options["json"] else TerminalProgress("push")
        result = version_push(
            path=options["path"],
            dataset_name=options["dataset"],
            author=_actor(options),
            branch=options["branch"],
            message=options["message"],
            stage=options["stage"],
            semver=options["semver"],
            semver_override=options["allow_semver_override"],
            progress=progress,
            created=created,
        )
        version = result.version
        if result.created:
            text = (
                f"Pushed {result.dataset}@{version.semver} on {result.branch}: version {version.id}\n"
                f"  files {result.file_count:,}  logical {human_bytes(result.logical_bytes)}"
                f"  new {human_bytes(result.new_bytes)} (stored {human_bytes(result.stored_bytes)})"
                f"  reused {human_bytes(result.reused_bytes)}"
            )
        else:
            text = (
                f"No changes: {result.dataset}@{result.branch} already holds this content "
                f"as {version.semver} ({version.id[:12]}); no new version made."
            )
        payload = result.as_dict()
        if step is not None and result.created:
            recorded = push_step_record(user=None, prepared=step, version=version, actor=_actor(options))
            payload["run"] = recorded.as_dict()
            text += f"\n  recorded run {step.name} ({len(step.inputs)} inputs), lineage node {recorded.run.node_id}"
        elif step is not None:
            text += "\n  No run recorded: the push made no new version."
        self.emit(payload, text)

    def do_pull(self, options: dict[str, Any]) -> None:
        _, version = selectors.resolve_spec(options["spec"])
        progress = None if options["json"] else TerminalProgress("pull")
        result = version_pull(
            version=version, dest=options["dest"], force=options["force"], progress=progress
        )
        self.emit(
            result.as_dict(),
            f"Pulled {version.dataset.name}@{version.semver} ({version.id[:12]}) into {result.dest}: "
            f"{result.file_count:,} files, {human_bytes(result.bytes_written)}",
        )

    def do_log(self, options: dict[str, Any]) -> None:
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
            }
            for v in versions
        ]
        lines = [
            f"{v.id[:12]}  {v.semver:<10} {v.created:%Y-%m-%d %H:%M}  {v.stage:<9} {v.author:<12} "
            f"{human_bytes(v.logical_bytes):>10}  {v.message}"
            for v in versions
        ]
        self.emit(payload, "\n".join(lines))

    def do_ls(self, options: dict[str, Any]) -> None:
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
        self.emit(payload, "\n".join(lines) if lines else "(empty folder)")

    def do_datasets(self, options: dict[str, Any]) -> None:
        datasets = list(selectors.dataset_list())
        heads = selectors.default_heads(datasets)
        payload = []
        lines = []
        for dataset in datasets:
            head = heads.get(dataset.pk)
            payload.append(
                {
                    "name": dataset.name,
                    "default_branch": dataset.default_branch,
                    "versions": dataset.version_count,
                    "head": head.id if head else None,
                    "semver": head.semver if head else None,
                    "file_count": head.file_count if head else 0,
                    "logical_bytes": head.logical_bytes if head else 0,
                    "updated": dataset.updated.isoformat(),
                }
            )
            lines.append(
                f"{dataset.name:<30} {head.semver if head else '-':<10} {dataset.version_count:>6} versions"
                f"  {human_bytes(head.logical_bytes if head else 0):>10}"
            )
        self.emit(
            payload, "\n".join(lines) if lines else "No datasets yet: push one with `strata push PATH NAME`."
        )

    def do_tag(self, options: dict[str, Any]) -> None:
        name, ref = selectors.split_ref(options["spec"])
        if ref is None:
            raise UserError("give the version to tag as DATASET@REF.")
        dataset = selectors.dataset_get(name)
        version = selectors.resolve_ref(dataset, ref)
        tag = tag_create(dataset=dataset, name=options["name"], version=version, actor=_actor(options))
        self.emit(
            {"dataset": dataset.name, "tag": tag.name, "version": version.id, "semver": version.semver},
            f"Tagged {dataset.name}@{version.semver} ({version.id[:12]}) as {tag.name}",
        )

    def do_split(self, options: dict[str, Any]) -> None:
        from cards.services.splits import split_make

        dataset, source = selectors.resolve_spec(options["spec"])
        result = split_make(
            user=None,
            dataset=dataset,
            source=source,
            id_column=options["id_column"],
            ratios=options["ratios"],
            method=options["method"],
            seed=options["seed"],
            label_column=options["label_column"],
            stratify=options["stratify"],
            branch=options["branch"],
            file=options["file"],
            author=_actor(options),
        )
        report = result.report
        version = result.version
        lines = [
            (
                f"Split {dataset.name}@{source.semver} into {dataset.name}@{version.semver}: version {version.id}"
                if result.created
                else f"No changes: {dataset.name}@{version.semver} already holds this split."
            )
        ]
        for name, size in report.sizes.items():
            labels = report.labels.get(name)
            shown = ", ".join(f"{label} {count:,}" for label, count in labels.items()) if labels else ""
            lines.append(f"  {name:<10} {size:>10,}" + (f"  ({shown})" if shown else ""))
        lines.append(
            f"  leakage: {len(report.leakage)} groups of identical examples across splits"
            if report.leakage
            else "  leakage: none"
        )
        self.emit(result.as_dict(), "\n".join(lines))

    def do_card(self, options: dict[str, Any]) -> None:
        from cards.services.cards import card_export, card_import

        if options["card_action"] == "export":
            _, version = selectors.resolve_spec(options["spec"])
            text = card_export(version)
            if options["output"]:
                with open(options["output"], "w", encoding="utf-8") as handle:
                    handle.write(text)
                self.stdout.write(f"Wrote the card of {version} to {options['output']}")
            else:
                self.stdout.write(text, ending="")
            return
        dataset = selectors.dataset_get(options["dataset"])
        try:
            with open(options["readme"], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise UserError(f"cannot read {options['readme']}: {error.strerror}.") from None
        except UnicodeDecodeError:
            raise UserError(f"{options['readme']} is not UTF-8 text.") from None
        version = card_import(
            user=None, dataset=dataset, text=text, branch=options["branch"], author=_actor(options)
        )
        self.emit(
            {"dataset": dataset.name, "version": version.id, "semver": version.semver},
            f"Imported the card into {dataset.name}@{version.semver}: version {version.id}",
        )

    def do_golden(self, options: dict[str, Any]) -> None:
        from cards.services.cards import version_mark_golden

        _, version = selectors.resolve_spec(options["spec"])
        version = version_mark_golden(
            user=None, version=version, override_reason=options["override_reason"], author=_actor(options)
        )
        self.emit(
            {
                "dataset": version.dataset.name,
                "version": version.id,
                "semver": version.semver,
                "golden": True,
            },
            f"Marked {version} golden",
        )

    def do_branch(self, options: dict[str, Any]) -> None:
        dataset = selectors.dataset_get(options["dataset"])
        start = selectors.resolve_ref(dataset, options["start"])
        branch = branch_create(dataset=dataset, name=options["name"], start=start, actor=_actor(options))
        self.emit(
            {"dataset": dataset.name, "branch": branch.name, "head": start.id, "semver": start.semver},
            f"Created branch {branch.name} of {dataset.name} at {start.semver} ({start.id[:12]})",
        )

    def do_diff(self, options: dict[str, Any]) -> None:
        from catalog.selectors.changes import change_report

        _, old = selectors.resolve_spec(options["old"])
        _, new = selectors.resolve_spec(options["new"])
        report = change_report(old, new, key=options["key"], label=options["label"])
        key = options["key"]
        if key and report.tables and all(t.error and f"key column {key!r}" in t.error for t in report.tables):
            raise UserError(f"the key column {key!r} is in none of the changed tables.")
        files = report.files
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
        for table in report.tables:
            lines.append(f"table {table.path}:")
            if table.error:
                lines.append(f"  could not compare: {table.error}")
                continue
            schema, rows = table.schema, table.rows
            for column in schema.added:
                lines.append(f"  column added: {column}")
            for column in schema.removed:
                lines.append(f"  column removed: {column}")
            for old_name, new_name in schema.renamed:
                lines.append(f"  column renamed: {old_name} -> {new_name}")
            for column, before, after in schema.type_changed:
                lines.append(f"  column {column}: {before} -> {after}")
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
        self.emit(report.as_dict(), "\n".join(lines))

    def do_cost(self, options: dict[str, Any]) -> None:
        from lifecycle.services.costs import cost_report

        report = cost_report()
        data = report.as_dict()
        lines = [
            f"Storage as of {report.now:%Y-%m-%d}: logical {human_bytes(report.logical_bytes)}, "
            f"stored {human_bytes(report.stored_bytes)}, "
            f"dedup and compression save {human_bytes(max(report.logical_bytes - report.stored_bytes, 0))}.",
            "",
            f"{'tier':<6} {'stored':>10} {'billed':>10} {'$/month':>10}",
        ]
        for tier, row in data["tiers"].items():
            lines.append(
                f"{tier:<6} {human_bytes(row['stored_bytes']):>10} {human_bytes(row['billed_bytes']):>10}"
                f" {row['monthly_dollars']:>10}"
            )
        lines += [
            f"{'total':<6} {'':>10} {'':>10} {data['monthly_dollars']:>10}",
            f"minimum-size charges ${data['minimum_size_dollars']}/month; "
            f"minimum-duration charges due now ${data['minimum_duration_dollars']}",
            f"in 30 days ${data['projections']['30_days']}/month, in 90 days ${data['projections']['90_days']}/month"
            " under the current policies",
            "",
        ]
        for title, rows in (("dataset", report.datasets), ("branch", report.branches)):
            lines.append(f"{title:<28} {'logical':>10} {'stored':>10} {'saved':>10} {'$/month':>10}")
            for usage in rows:
                lines.append(
                    f"{usage.name:<28} {human_bytes(usage.logical_bytes):>10} {human_bytes(usage.stored_bytes):>10}"
                    f" {human_bytes(usage.saved_bytes):>10} {usage.as_dict()['monthly_dollars']:>10}"
                )
            lines.append("")
        for status in report.versions:
            why = "; ".join(status.protected_because) or "; ".join(status.kept_because)
            expires = f", expires on {status.expires_on:%Y-%m-%d}" if status.expires_on else ""
            restore = f", restorable in {status.restorable_in}" if status.restorable_in else ""
            lines.append(f"{status.label:<28} {status.tier:<5} {why}{expires}{restore}")
        self.emit(data, "\n".join(lines))

    def do_retention(self, options: dict[str, Any]) -> None:
        from lifecycle.models import RetentionRun
        from lifecycle.services.retention import retention_advance, retention_approve, retention_plan

        action = options["retention_action"]
        if action == "list":
            runs = list(RetentionRun.objects.all()[:20])
            payload = [{"id": r.pk, "state": r.state, "created": r.created, "report": r.report} for r in runs]
            text = "\n".join(
                f"#{r.pk} {r.created:%Y-%m-%d %H:%M} {r.get_state_display()} "
                f"({_count(r.report.get('versions_expired', 0), 'version expires', 'versions expire')}, "
                f"{_count(r.report.get('deletions', 0), 'pack deleted', 'packs deleted')})"
                for r in runs
            )
            self.emit(payload, text or "no retention runs yet")
            return
        if action == "approve":
            if not options["run_id"]:
                raise UserError("say which run to approve: strata retention approve RUN_ID.")
            run = RetentionRun.objects.filter(pk=options["run_id"]).first()
            if run is None:
                raise UserError(f"there is no retention run {options['run_id']}.")
            run = retention_approve(user=None, run=run)
            # Applied here and now, as `run` applies a run that needs no approval.
            run = retention_advance(run_id=run.pk)
        else:
            run = retention_plan(trigger="manual")
            if action == "run" and run.state == RetentionRun.State.APPROVED:
                run = retention_advance(run_id=run.pk)
        report = run.report
        freed = ", ".join(
            f"{tier} {human_bytes(size)}" for tier, size in report.get("freed_bytes", {}).items()
        )
        self.emit(
            {"id": run.pk, "state": run.state, "report": report, "error": run.error},
            f"retention run #{run.pk}: {run.get_state_display()}\n"
            f"  {_count(report.get('versions_expired', 0), 'version expires', 'versions expire')}, "
            f"{_count(report.get('moves', 0), 'pack moves tier', 'packs move tier')}, "
            f"{report.get('repacks', 0)} repacked, {report.get('deletions', 0)} deleted ({freed} freed); "
            f"early-deletion charges ${report.get('early_deletion_charges', '0.00')}"
            + (f"\n  error: {run.error}" if run.error else ""),
        )

    def do_verify(self, options: dict[str, Any]) -> None:
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
        lines = [
            f"Checked {report.versions:,} versions: {report.trees:,} trees, {report.files:,} files, "
            f"{report.chunks:,} chunks ({human_bytes(report.chunk_bytes)}) in {report.packs:,} packs."
        ]
        lines += [f"BROKEN: {problem}" for problem in report.broken]
        lines += [f"  {label} expired on {day:%Y-%m-%d}, not checked" for label, day in report.expired]
        if report.cold_packs:
            size = sum(size for _, size in report.cold_packs)
            lines.append(
                f"{len(report.cold_packs)} packs ({human_bytes(size)}) are cold, "
                "not checked (restore to verify):"
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
        removed = [spool for spool in report.spool_files if spool.removed]
        kept = [spool for spool in report.spool_files if not spool.removed]
        if removed:
            size = sum(spool.size for spool in removed)
            lines.append(
                f"removed {_count(len(removed), 'spool file', 'spool files')} ({human_bytes(size)}) "
                "left by interrupted pushes"
            )
        if kept:
            size = sum(spool.size for spool in kept)
            lines.append(
                f"{_count(len(kept), 'spool file', 'spool files')} ({human_bytes(size)}) left by "
                "interrupted pushes, older than a day, not removed:"
            )
            lines += [
                f"  spool {spool.path} {human_bytes(spool.size)}, {spool.age_seconds / 86400:.1f} days old"
                for spool in kept
            ]
        if report.ok:
            readable = "readable" if report.cold_packs else "reachable"
            lines.append(f"OK: every {readable} byte verified.")
        self.emit(report.as_dict(), "\n".join(lines))
        if not report.ok:
            raise VerifyFailed(f"verify found {len(report.broken)} broken objects (listed above).")

    def do_import_dvc(self, options: dict[str, Any]) -> None:
        from lineage.ingest.dvc import dvc_import

        report = dvc_import(
            user=None, path=options["path"], project=options["project"], actor=_actor(options)
        )
        lines = [
            f"Imported DVC project {report.project}: {len(report.added)} new runs, "
            f"{len(report.unchanged)} already recorded, {report.data_files} .dvc files."
        ]
        lines += [f"  added {stage}" for stage in report.added]
        lines += [f"  model version {spec}" for spec in report.models]
        lines += [f"  note: {note}" for note in report.notes]
        if report.not_run:
            lines.append(f"  not in dvc.lock yet (never run): {', '.join(report.not_run)}")
        self.emit(report.as_dict(), "\n".join(lines))

    def do_record_training(self, options: dict[str, Any]) -> None:
        from lineage.services.runs import parse_params
        from registry.services.training import split_model_spec, training_record

        name, version = split_model_spec(options["model"])
        datasets: dict[str, str] = {}
        for pair in options["dataset"]:
            role, sep, spec = pair.partition("=")
            if not sep or not role.strip() or not spec.strip():
                raise UserError(
                    f"{pair!r} is not a dataset: write ROLE=DATASET@REF, e.g. train=reviews@2.3.0."
                )
            if role.strip() in datasets:
                raise UserError(f"the role {role.strip()} is given twice: one dataset version per role.")
            datasets[role.strip()] = spec.strip()
        result = training_record(
            user=None,
            model=name,
            version=version,
            datasets=datasets,
            metrics=parse_params(options["metric"]),
            params=parse_params(options["param"]),
            code=options["code"],
            artifact=options["artifact"],
            description=options["message"],
            actor=_actor(options),
            origin="cli",
        )
        model = result.model
        verb = "Registered" if result.created else "Already registered, unchanged:"
        lines = [f"{verb} {model.spec} (lineage node {model.node_id})"]
        lines += [
            f"  {pin.role:<12} {pin.version.dataset.name}@{pin.version.semver}  {pin.version.id}"
            + (
                f"  (from {pin.requested})"
                if pin.requested != f"{pin.version.dataset.name}@{pin.version.semver}"
                else ""
            )
            for pin in result.pins
        ]
        for change in model.regressions:
            lines.append(
                f"  REGRESSION {change['metric']}: {change['before']} -> {change['after']}"
                f" ({change['better']} is better, tolerance {change['tolerance']})"
            )
        self.emit(result.as_dict(), "\n".join(lines))

    def do_lock(self, options: dict[str, Any]) -> None:
        from registry.services.locks import lock_build, lock_dump, lock_write

        lock = lock_build(user=None, specs=options["specs"], model=options["model"])
        output = options["output"]
        if output == "-":
            self.stdout.write(lock_dump(lock), ending="")
            return
        lock_write(lock, output)
        lines = [
            f"Wrote {output}: {len(lock.entries)} dataset versions"
            + (f" of {lock.model}" if lock.model else "")
        ]
        lines += [f"  {entry.folder:<14} {entry.label:<28} {entry.version}" for entry in lock.entries]
        self.emit({"path": output, **lock.as_dict()}, "\n".join(lines))

    def do_reproduce(self, options: dict[str, Any]) -> None:
        from registry.services.locks import DEFAULT_LOCK_NAME, lock_build, lock_read, lock_reproduce

        paths = options["paths"]
        if options["model"]:
            if len(paths) != 1:
                raise UserError("with --model, give only DEST: strata reproduce --model MODEL@VERSION DEST.")
            lock = lock_build(user=None, model=options["model"])
            name, dest = options["model"], paths[0]
        else:
            if len(paths) != 2:
                raise UserError("give the lock and a folder: strata reproduce strata.lock DEST (or --model).")
            name, dest = os.path.basename(paths[0]) or DEFAULT_LOCK_NAME, paths[1]
            lock = lock_read(paths[0])

        def notify(message: str) -> None:
            self.stderr.write(message)

        result = lock_reproduce(
            user=None,
            lock=lock,
            dest=dest,
            name=name,
            force=options["force"],
            restore=options["restore"],
            poll_seconds=max(options["poll"], 0.05),
            timeout_seconds=options["timeout"],
            notify=notify,
        )
        total = sum(pulled.bytes_written for _, pulled in result.pulled)
        lines = [
            f"Reproduced {len(result.pulled)} dataset versions into {result.dest} ({human_bytes(total)}), every byte verified:"
        ]
        lines += [
            f"  {entry.folder + '/':<15} {entry.label:<28} {pulled.file_count:,} files  {entry.version[:12]}"
            for entry, pulled in result.pulled
        ]
        self.emit(result.as_dict(), "\n".join(lines))

    def do_token(self, options: dict[str, Any]) -> None:
        from django.contrib.auth import get_user_model

        from catalog.services.tokens import token_create

        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise UserError(f"there is no user named {username!r}.")
        token, secret = token_create(user=user, name=options["name"], expires_in_days=options["expires_days"])
        expires = f", expires {token.expires:%Y-%m-%d}" if token.expires else ", never expires"
        self.emit(
            {
                "user": username,
                "name": token.name,
                "token": secret,
                "expires": token.expires.isoformat() if token.expires else None,
            },
            f"{secret}\n(token {token.name!r} for {username}{expires}; this is the only time it is shown)",
        )


class VerifyFailed(StrataError):
    """Raised after the report is printed, so the command exits 1."""
