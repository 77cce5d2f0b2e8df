"""Telling people about change requests: opened, a check failed, approved,
merged (or the merge refused), by e-mail and the operator's webhook."""

from __future__ import annotations

from django.db import transaction

from catalog.services import notifications
from changes.models import ChangeRequest


def change_notify(change_id: int, event: str, detail: str = "") -> None:
    """Tell the approvers and the author once the current transaction commits;
    a message that cannot be delivered never stops the change request."""
    transaction.on_commit(lambda: _send(change_id, event, detail))


def _send(change_id: int, event: str, detail: str) -> None:
    change = ChangeRequest.objects.select_related("dataset", "author", "head").filter(pk=change_id).first()
    if change is None:
        return
    where = f"{change.dataset.name}: {change.source} → {change.target}"
    subject = f"[Strata] change request #{change.pk} {event}: {change.title}"
    body = (
        f"Change request #{change.pk} ({where}) by {change.author_name}: {event}.\n"
        + (f"{detail}\n" if detail else "")
        + f"Head: {change.head.semver} ({change.head_id[:12]})\nState: {change.get_state_display()}\n"
    )
    notifications.notify(
        what=f"change request {change.pk}",
        recipients=notifications.approvers_and(change.dataset, [change.author]),
        subject=subject,
        body=body,
        payload={
            "event": f"change.{event.replace(' ', '_')}",
            "change": change.pk,
            "dataset": change.dataset.name,
            "source": change.source,
            "target": change.target,
            "head": change.head_id,
            "state": change.state,
            "detail": detail,
        },
    )
