"""`python manage.py strata_demo`: build the demo catalog into an empty Strata.

`strata_setup` (run by `make run`) calls the same code on a fresh install; this
command is for building it on purpose, e.g. into a new database.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ops.demo import DemoError, demo_build


class Command(BaseCommand):
    help = "Build the demo catalog (digits, a label shift, a pending rollback) into an empty Strata."

    def handle(self, *args, **options) -> None:
        try:
            report = demo_build(
                password_file=Path(settings.VAR_DIR) / "demo-passwords.txt",
                say=lambda line: self.stdout.write(f"  demo: {line}"),
            )
        except DemoError as error:
            raise CommandError(str(error), returncode=2) from None
        self.stdout.write(f"Demo catalog built in {report.seconds:.1f} s.")
        for username, password in report.users.items():
            self.stdout.write(f"  {username:<9} {password}")
