"""`strata token create`: a personal API token, made on the server for a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from catalog.errors import UserError
from catalog.services.tokens import token_create
from ops.cli.common import Output, nested, subcommand


def register(subparsers: Any) -> None:
    token = subcommand(subparsers, "token", help="personal API tokens", json_flag=False)
    actions = nested(token, "token_command")
    create = subcommand(
        actions,
        "create",
        help="make a token for a user and print its secret, once",
        handler=handle_token_create,
    )
    create.add_argument("username")
    create.add_argument("--name", default="command line", help="what the token is for")
    create.add_argument(
        "--expires-days", type=int, default=None, help="days until it expires (default: never)"
    )


def handle_token_create(out: Output, options: dict[str, Any]) -> None:
    username = options["username"]
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise UserError(f"there is no user named {username!r}.")
    token, secret = token_create(user=user, name=options["name"], expires_in_days=options["expires_days"])
    expires = f", expires {token.expires:%Y-%m-%d}" if token.expires else ", never expires"
    out.emit(
        {
            "user": username,
            "name": token.name,
            "token": secret,
            "expires": token.expires.isoformat() if token.expires else None,
        },
        f"{secret}\n(token {token.name!r} for {username}{expires}; this is the only time it is shown)",
    )
