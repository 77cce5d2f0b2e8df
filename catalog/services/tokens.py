"""Personal API tokens: created (shown once), used, revoked."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from catalog import permissions
from catalog.errors import Forbidden, NotFound, UserError
from catalog.models import ApiToken, AuditEvent

_PREFIX = "strata_"
# Writing last_used on every request would make every API call a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user, name: str, expires_in_days: int | None = None, actor=None) -> tuple[ApiToken, str]:
    """Make a token for `user`; returns the row and the secret (shown only now).
    A user makes their own tokens; an admin (or the local CLI, actor None) any."""
    if actor is not None and actor.pk != user.pk and not permissions.is_admin(actor):
        raise Forbidden("you may only create tokens for yourself.")
    name = name.strip()
    if not name or len(name) > 100:
        raise UserError("a token needs a name of 1 to 100 characters.")
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise UserError("a token expires after 1 to 3650 days.")
    secret = _PREFIX + secrets.token_urlsafe(32)
    expires = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=secret[: len(_PREFIX) + 6],
            secret_hash=_hash(secret),
            expires=expires,
        )
        AuditEvent.objects.create(
            user=actor or user,
            actor=(actor or user).get_username(),
            action="token.create",
            object_type="token",
            object_id=str(token.pk),
            after={"name": name, "user": user.get_username()},
        )
    return token, secret


def token_revoke(*, token_id: int, actor) -> ApiToken:
    """Revoke a token: its owner or an admin may."""
    token = ApiToken.objects.filter(pk=token_id).select_related("user").first()
    if token is None or (token.user_id != actor.pk and not permissions.is_admin(actor)):
        raise NotFound(f"there is no token {token_id}.")
    if token.revoked is None:
        with transaction.atomic():
            token.revoked = timezone.now()
            token.save(update_fields=["revoked"])
            AuditEvent.objects.create(
                user=actor,
                actor=actor.get_username(),
                action="token.revoke",
                object_type="token",
                object_id=str(token.pk),
                before={"revoked": None},
                after={"revoked": token.revoked.isoformat()},
            )
    return token


def token_authenticate(secret: str):
    """The active user a token secret belongs to, or None (unknown, revoked, expired)."""
    if not secret.startswith(_PREFIX):
        return None
    token = ApiToken.objects.filter(secret_hash=_hash(secret)).select_related("user").first()
    now = timezone.now()
    if token is None or not token.is_active(now) or not token.user.is_active:
        return None
    if token.last_used is None or now - token.last_used > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user
