"""Create the first-run administrator login if it does not exist, and print it.

The generated password is kept in ``VAR_DIR/admin-login.txt`` (mode 600) so later runs can print
it again; it is a development convenience and production settings refuse to run this command.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create (or show) the development administrator login."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("ensure_admin is for development only (DEBUG is off).")
        username = options["username"]
        login_file = settings.VAR_DIR / "admin-login.txt"
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None or not login_file.exists():
            password = secrets.token_urlsafe(12)
            if user is None:
                user = user_model.objects.create_superuser(
                    username=username, email="", password=password
                )
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
            login_file.write_text(password)
            login_file.chmod(0o600)
        password = login_file.read_text().strip()
        self.stdout.write(f"Admin login: {username} / {password}")
