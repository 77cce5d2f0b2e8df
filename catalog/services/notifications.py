"""Telling people: e-mail to those concerned, and the operator's webhook.

Delivery is outside Strata's walls: a message that cannot be delivered is
logged and never stops the flow that sent it. Only people who may read a
dataset hear of it: a restricted dataset does not exist for the others, not
even in their inbox.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from catalog import permissions
from catalog.models import Dataset

logger = logging.getLogger(__name__)


def approvers_and(dataset: Dataset, people: Iterable[Any]) -> set[str]:
    """The e-mail addresses of the approvers (and admins) and of `people` who
    may read `dataset`."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    concerned = list(users.filter(groups__name__in=[permissions.APPROVER, permissions.ADMIN]).distinct())
    concerned += [person for person in people if person is not None and person.email and person.is_active]
    return {user.email for user in concerned if permissions.can_read(user, dataset)}


def notify(*, what: str, recipients: set[str], subject: str, body: str, payload: dict[str, Any]) -> None:
    """Send `subject`/`body` to `recipients`, and `payload` to the webhook if one
    is configured (``STRATA_WEBHOOK_URL``). `what` names the flow in the log."""
    try:
        if recipients:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, sorted(recipients))
    except Exception:  # delivery is outside our walls: log, never fail the flow
        logger.exception("%s: could not send the e-mail %r", what, subject)
    url = getattr(settings, "STRATA_WEBHOOK_URL", "")
    if not url:
        return
    try:
        data = json.dumps(payload).encode()
        http = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        urllib.request.urlopen(http, timeout=5).close()  # noqa: S310 (an operator-configured URL)
    except Exception:
        logger.exception("%s: the webhook for %s failed", what, payload.get("event"))
