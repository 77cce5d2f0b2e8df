"""`python manage.py strata_setup`: first-run setup for the embedded defaults.

Creates an administrator account the first time (printing its password once and
keeping it in var/ so the next start can show it again) and makes sure the object
store and broker folders exist.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from catalog.services.store import get_backend


class Command(BaseCommand):
    help = "Prepare a fresh Strata: an admin account and the store folders."

    def handle(self, *args, **options) -> None:
        get_backend()  # a local store creates its folders on first use
        password_file = Path(settings.VAR_DIR) / "admin-password.txt"
        users = get_user_model()
        if not users.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            users.objects.create_superuser("admin", "admin@localhost", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        if password_file.exists():
            password = password_file.read_text().strip()
            self.stdout.write(f"Sign in as admin with password {password}")
