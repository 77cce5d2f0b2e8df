"""Datasets: creating them empty and editing what is said about them."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import permissions
from catalog.errors import UserError
from catalog.models import AuditEvent, Dataset, Keyword
from catalog.services.versions import check_dataset_name

_KEYWORD_RE = re.compile(r"^[a-z0-9][a-z0-9+._-]{0,49}$")


def actor_name(user: permissions.User, fallback: str = "") -> str:
    """The name an audit event records for `user` (the login, or the CLI's actor)."""
    if user is not None and user.is_authenticated:
        return user.get_username()
    return fallback or "local"


def _snapshot(dataset: Dataset) -> dict[str, object]:
    return {
        "description": dataset.description,
        "visibility": dataset.visibility,
        "keywords": sorted(dataset.keywords.values_list("name", flat=True)),
        "owners": sorted(dataset.owners.values_list("username", flat=True)),
        "groups": sorted(dataset.groups.values_list("name", flat=True)),
    }


def _keywords(names: list[str]) -> list[Keyword]:
    cleaned = []
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if not _KEYWORD_RE.match(name):
            raise UserError(
                f"{name!r} is not a valid keyword: use lowercase letters, digits, '+', '.', '_', '-'."
            )
        cleaned.append(name)
    return [Keyword.objects.get_or_create(name=name)[0] for name in dict.fromkeys(cleaned)]


def dataset_create(
    *,
    user: permissions.User,
    name: str,
    description: str = "",
    visibility: str = Dataset.Visibility.PUBLIC,
    keywords: list[str] | None = None,
    actor: str = "",
) -> Dataset:
    """Create an empty dataset (its first version comes with its first push).
    The creator becomes an owner. Needs the steward role."""
    permissions.require_role(user, permissions.STEWARD, "create datasets")
    check_dataset_name(name)
    if visibility not in Dataset.Visibility.values:
        raise UserError(f"{visibility!r} is not a visibility: use public or restricted.")
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(name=name, description=description, visibility=visibility)
            dataset.keywords.set(_keywords(keywords or []))
            account = user if user is not None and user.is_authenticated else None
            if account is not None:
                dataset.owners.add(account)
            AuditEvent.objects.create(
                actor=actor_name(user, actor),
                user=account,
                action="dataset.create",
                dataset=dataset,
                object_type="dataset",
                object_id=name,
                after=_snapshot(dataset),
            )
    except IntegrityError:
        raise UserError(f"a dataset named {name} already exists.") from None
    return dataset


def dataset_update(
    *,
    user: permissions.User,
    dataset: Dataset,
    description: str | None = None,
    visibility: str | None = None,
    keywords: list[str] | None = None,
    owners: list[str] | None = None,
    groups: list[str] | None = None,
    actor: str = "",
) -> Dataset:
    """Change a dataset's description, visibility, keywords, owners or groups.
    Fields left as None are kept. Needs the steward role and read access."""
    permissions.require_write(user, dataset)
    if visibility is not None and visibility not in Dataset.Visibility.values:
        raise UserError(f"{visibility!r} is not a visibility: use public or restricted.")
    users = get_user_model()
    owner_rows = None
    if owners is not None:
        owner_rows = list(users.objects.filter(username__in=owners))
        missing = set(owners) - {u.get_username() for u in owner_rows}
        if missing:
            raise UserError(f"there is no user named {sorted(missing)[0]!r}.")
    group_rows = None
    if groups is not None:
        group_rows = list(Group.objects.filter(name__in=groups))
        missing = set(groups) - {g.name for g in group_rows}
        if missing:
            raise UserError(f"there is no group named {sorted(missing)[0]!r}.")
    with transaction.atomic():
        before = _snapshot(dataset)
        if description is not None:
            dataset.description = description
        if visibility is not None:
            dataset.visibility = visibility
        dataset.updated = timezone.now()
        dataset.save(update_fields=["description", "visibility", "updated"])
        if keywords is not None:
            dataset.keywords.set(_keywords(keywords))
        if owner_rows is not None:
            dataset.owners.set(owner_rows)
        if group_rows is not None:
            dataset.groups.set(group_rows)
        after = _snapshot(dataset)
        AuditEvent.objects.create(
            actor=actor_name(user, actor),
            user=user if user is not None and user.is_authenticated else None,
            action="dataset.update",
            dataset=dataset,
            object_type="dataset",
            object_id=dataset.name,
            before=before,
            after=after,
        )
    return dataset
