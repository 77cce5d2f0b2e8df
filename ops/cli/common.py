"""What every group of `strata` subcommands shares: the parser pieces, who acts,
how results are printed, and the one rule that turns an error into an exit code.

A user error (`UserError`, `NotFound`, `Forbidden`) prints one sentence on stderr
and exits 2; damaged data or a conflict exits 1; data in cold storage exits 3.
Each error class carries its code (`catalog/errors.py`), so the rule is
written once, here.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.core.management.base import CommandParser, OutputWrapper

from catalog.domain.formatting import human_bytes
from catalog.errors import StrataError, UserError


class Output:
    """Where a subcommand writes: text for people, or JSON with --json."""

    def __init__(self, stdout: OutputWrapper, stderr: OutputWrapper, *, as_json: bool) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.as_json = as_json

    def emit(self, payload: object, text: str) -> None:
        """Print the result: `payload` as JSON with --json, `text` otherwise."""
        if self.as_json:
            self.stdout.write(json.dumps(payload, indent=2, default=str))
        else:
            self.stdout.write(text)

    def write(self, text: str, ending: str = "\n") -> None:
        """Print text as it is, whatever --json says (a card, a lock on stdout)."""
        self.stdout.write(text, ending=ending)

    def note(self, message: str) -> None:
        """A message for the person waiting, on stderr, so stdout stays the result."""
        self.stderr.write(message)


Handler = Callable[[Output, dict[str, Any]], None]


class OneLineParser(CommandParser):
    """Argument errors in one line, like every other error, instead of the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if self.called_from_command_line:
            self.exit(2, f"error: {message} (see `{self.prog} --help`).\n")
        super().error(message)


def _json_flag() -> CommandParser:
    parent = CommandParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parent


# The parent every leaf subcommand takes its --json from.
JSON_FLAG = _json_flag()


def subcommand(
    subparsers: Any, name: str, *, help: str, handler: Handler | None = None, json_flag: bool = True
) -> CommandParser:
    """Add one subcommand; `handler` is what runs it (none for a group of its own
    subcommands, such as `card` or `token`)."""
    parser: CommandParser = subparsers.add_parser(name, parents=[JSON_FLAG] if json_flag else [], help=help)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def nested(parser: CommandParser, dest: str) -> Any:
    """The subcommands of a subcommand (`card export`, `token create`)."""
    return parser.add_subparsers(dest=dest, required=True, parser_class=OneLineParser)


@contextlib.contextmanager
def exit_codes(stderr: OutputWrapper) -> Iterator[None]:
    """One sentence on stderr and the error's exit code, instead of a traceback."""
    try:
        yield
    except StrataError as error:
        stderr.write(f"error: {error}")
        sys.exit(error.exit_code)


def actor(options: dict[str, Any]) -> str:
    """Who acts: --author, else $STRATA_USER, else the login name."""
    return options.get("author") or os.environ.get("STRATA_USER") or getpass.getuser()


def parse_date(value: str) -> datetime.datetime:
    """An ISO 8601 date with its time zone (a trailing Z is UTC)."""
    try:
        parsed = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{value!r} is not a date: write it as 2026-05-01T09:00:00+00:00.") from None
    if parsed.tzinfo is None:
        raise UserError(f"{value!r} has no time zone: add one, e.g. +00:00 or Z.")
    return parsed


def count(number: int, one: str, many: str) -> str:
    """'1 version expires', '3 versions expire'."""
    return f"{number:,} {one if number == 1 else many}"


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


def progress_for(options: dict[str, Any], label: str) -> TerminalProgress | None:
    """A progress bar for people; none with --json, whose output is for programs."""
    return None if options["json"] else TerminalProgress(label)
