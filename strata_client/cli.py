"""`strata-client push|pull|resolve|check|lock-check …`: the client on the command line.

The server and token come from STRATA_URL and STRATA_TOKEN (or --url, --token).
Output is text for people, or JSON with --json; a progress bar is drawn when stderr
is a terminal. Errors are one sentence on stderr; the exit code is 2 when the
request was wrong (bad input, unknown name, no permission, bad token) and 1 when it
could not be done (a branch moved, the network, damaged data). `lock-check`
exits 1 when the lock it checks has problems, for a CI job to fail on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from strata_client.client import Client
from strata_client.errors import ClientError, StrataClientError
from strata_client.locks import lock_check
from strata_client.progress import TerminalProgress, human_bytes


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, like every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`).\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="strata-client",
        description="Push, pull and resolve Strata dataset versions; report checks on change requests.",
    )
    parser.add_argument("--url", help="the Strata server (default: $STRATA_URL)")
    parser.add_argument("--token", help="a personal API token (default: $STRATA_TOKEN)")
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    push = sub.add_parser("push", parents=[common], help="store a file or folder as a new version")
    push.add_argument("path")
    push.add_argument("dataset")
    push.add_argument("--branch", help="branch to commit on (default: the dataset's default branch)")
    push.add_argument("--message", "-m", default="")
    push.add_argument("--stage", choices=["raw", "cleaned", "labelled", "split", "other"])
    push.add_argument("--semver", help="explicit semantic version, e.g. 2.0.0")
    push.add_argument(
        "--code",
        default="",
        metavar="REPOSITORY#REF",
        help="the code that made this data: a git repository and a commit or branch",
    )

    pull = sub.add_parser("pull", parents=[common], help="write a version's files into a folder")
    pull.add_argument("spec", metavar="DATASET[@REF]")
    pull.add_argument("dest")
    pull.add_argument("--force", action="store_true", help="write into a non-empty folder")

    resolve = sub.add_parser("resolve", parents=[common], help="print the version id a ref names")
    resolve.add_argument("spec", metavar="DATASET[@REF]")

    check = sub.add_parser("check", parents=[common], help="report a check on a change request's head")
    check.add_argument("change", type=int, metavar="CHANGE", help="the change request's number")
    check.add_argument("name", help="the check's name, e.g. train-and-evaluate")
    check.add_argument("state", choices=["pending", "running", "passed", "failed"])
    check.add_argument("--summary", default="")
    check.add_argument("--metric", action="append", default=[], metavar="NAME=NUMBER")
    check.add_argument("--url", default="", help="a link to the pipeline's run")
    check.add_argument("--head", help="the version id the check ran on (refused if the head moved)")
    check.add_argument("--model", help="the model the metrics are of")

    locked = sub.add_parser(
        "lock-check",
        parents=[common],
        help="check that every version a lock pins is merged into a branch and was not rolled back",
    )
    locked.add_argument("lock", metavar="LOCK", help="the lock file, e.g. strata.lock")
    locked.add_argument("--target", default="main", help="the branch each version must be on (default: main)")
    return parser


def _metrics(pairs: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            metrics[name] = float(value)
        except ValueError:
            raise ClientError(f"{pair!r} is not a metric: write NAME=NUMBER, e.g. accuracy=0.91.") from None
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        url = args.url or os.environ.get("STRATA_URL", "")
        token = args.token or os.environ.get("STRATA_TOKEN", "")
        if not url:
            raise ClientError(
                "set STRATA_URL to the Strata server's address, e.g. https://strata.example.org."
            )
        if not token:
            raise ClientError("set STRATA_TOKEN to a personal API token (made on your account's token page).")
        client = Client(url, token)
        if args.command == "push":
            progress = None if args.json else TerminalProgress("push")
            pushed = client.push(
                args.path,
                args.dataset,
                branch=args.branch,
                message=args.message,
                stage=args.stage,
                semver=args.semver,
                progress=progress,
                code=args.code,
            )
            if pushed.created:
                text = (
                    f"Pushed {pushed.dataset}@{pushed.semver} on {pushed.branch}: version {pushed.version}\n"
                    f"  files {pushed.file_count:,}  logical {human_bytes(pushed.logical_bytes)}"
                    f"  new {human_bytes(pushed.new_bytes)}"
                    f"  uploaded {pushed.uploaded_packs} packs ({human_bytes(pushed.uploaded_bytes)})"
                )
            else:
                text = (
                    f"No changes: {pushed.dataset}@{pushed.branch} already holds this content as "
                    f"{pushed.semver} ({pushed.version[:12]}); no new version made."
                )
            _emit(args.json, pushed.as_dict(), text)
        elif args.command == "pull":
            progress = None if args.json else TerminalProgress("pull")
            pulled = client.pull(args.spec, args.dest, force=args.force, progress=progress)
            _emit(
                args.json,
                pulled.as_dict(),
                f"Pulled {pulled.dataset}@{pulled.semver} ({pulled.version[:12]}) into {pulled.dest}: "
                f"{pulled.file_count:,} files, {human_bytes(pulled.bytes_written)}",
            )
        elif args.command == "check":
            reported = client.report_check(
                args.change,
                args.name,
                args.state,
                summary=args.summary,
                metrics=_metrics(args.metric),
                url=args.url,
                head=args.head,
                model=args.model,
            )
            _emit(args.json, reported, f"Reported {args.name}: {args.state} on change request #{args.change}")
        elif args.command == "lock-check":
            problems = lock_check(client, args.lock, target=args.target)
            if problems:
                text = f"{args.lock} fails against {args.target}:\n" + "\n".join(f"  {p}" for p in problems)
            else:
                text = f"OK: every version {args.lock} pins is on {args.target} and none was rolled back."
            _emit(args.json, {"lock": args.lock, "target": args.target, "problems": problems}, text)
            if problems:
                return 1
        else:
            version_id = client.resolve(args.spec)
            _emit(args.json, {"spec": args.spec, "version": version_id}, version_id)
    except StrataClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; nothing was committed or written.", file=sys.stderr)
        return 130
    return 0


def _emit(as_json: bool, payload: object, text: str) -> None:
    print(json.dumps(payload, indent=2) if as_json else text)


if __name__ == "__main__":
    sys.exit(main())
