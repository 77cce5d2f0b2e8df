"""`python manage.py strata …`: Strata on the command line.

Each subcommand parses its arguments, calls one service or selector and prints the
result — as text for people, or as JSON with --json. A user error prints one sentence
on stderr and exits 2; damaged data or a conflict exits 1. The subcommands live in
`ops/cli/`, one module a group; this command only builds the parser from them and
runs the handler the parsed subcommand names.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops.cli import access, cards, changes, datasets, lifecycle, lineage, merges, models, transfer
from ops.cli.common import OneLineParser, Output, exit_codes

# In the order `strata --help` lists them.
GROUPS = (transfer, datasets, merges, changes, cards, lifecycle, access, lineage, models)


class Command(BaseCommand):
    help = (
        "Version datasets: push, pull, log, ls, datasets, tag, branch, merge, verify, import-dvc;"
        " models: record-training, lock, reproduce."
    )
    # Django's system checks load the URL configuration, and with it the API, the
    # lineage graph and Arrow: most of a second and 110 MiB on every command.
    # `manage.py migrate`, which every start runs, and `manage.py check` run them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", required=True, parser_class=OneLineParser)
        for group in GROUPS:
            group.register(subparsers)

    def run_from_argv(self, argv: list[str]) -> None:
        with exit_codes(self.stderr):
            super().run_from_argv(argv)

    def handle(self, *args: Any, **options: Any) -> None:
        out = Output(self.stdout, self.stderr, as_json=options["json"])
        options["handler"](out, options)
