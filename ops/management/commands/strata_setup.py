"""`python manage.py strata_setup [--demo]`: first-run setup for the embedded defaults.

Creates an administrator account the first time (printing its password once and
keeping it in var/ so the next start can show it again) and makes sure the object
store and broker folders exist. With ``--demo`` (what ``make run`` passes unless
STRATA_DEMO=0) a catalog with no dataset gets the demo catalog and one user per
role (``ops.demo``); every start prints how to sign in.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from catalog.store import get_backend
from ops.demo import DEMO_USERS, catalog_is_empty, demo_build, demo_passwords_read, demo_users_create


class Command(BaseCommand):
    help = "Prepare a fresh Strata: an admin account, the store folders and, with --demo, the demo catalog."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--demo", action="store_true", help="build the demo catalog into an empty Strata (first start)"
        )

    def handle(self, *args, **options) -> None:
        get_backend()  # a local store creates its folders on first use
        var = Path(settings.VAR_DIR)
        password_file = var / "admin-password.txt"
        users = get_user_model()
        if not users.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            users.objects.create_superuser("admin", "admin@localhost", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)

        demo_passwords = var / "demo-passwords.txt"
        if options["demo"]:
            if catalog_is_empty():
                self.stdout.write("Building the demo catalog (digits, a label shift, a rollback to approve)…")
                report = demo_build(
                    password_file=demo_passwords, say=lambda line: self.stdout.write(f"  {line}")
                )
                self.stdout.write(f"Demo catalog built in {report.seconds:.0f} s.")
            elif demo_passwords.exists():
                demo_users_create(demo_passwords)  # users deleted since are made again

        lines = []
        if password_file.exists():
            lines.append(
                ("admin", password_file.read_text().strip(), "everything, and the back office at /admin/")
            )
        saved = demo_passwords_read(demo_passwords)
        lines += [(name, saved[name], what) for name, _, what in DEMO_USERS if name in saved]
        if lines:
            self.stdout.write("Sign in with one of these accounts (user, password, what it may do):")
            for name, password, what in lines:
                self.stdout.write(f"  {name:<9} {password:<18} {what}")
