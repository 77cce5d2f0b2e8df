"""Branches and tags: creating the names that point at versions."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import permissions
from catalog.errors import NotFound, UserError
from catalog.models import AuditEvent, Branch, Dataset, Tag, Version
from catalog.services.datasets import actor_name
from catalog.services.versions import check_ref_name


def branch_create(
    *, dataset: Dataset, name: str, start: Version, actor: str = "", user: permissions.User = None
) -> Branch:
    """Create branch `name` of `dataset` pointing at `start`."""
    permissions.require_write(user, dataset)
    actor = actor_name(user, actor)
    check_ref_name(name, "branch")
    if start.dataset_id != dataset.pk:
        raise UserError(f"version {start.short_id} is not a version of {dataset.name}.")
    if Tag.objects.filter(dataset=dataset, name=name).exists():
        raise UserError(f"{dataset.name} already has a tag named {name}; choose another branch name.")
    now = timezone.now()
    try:
        with transaction.atomic():
            branch = Branch.objects.create(dataset=dataset, name=name, head=start, created=now, updated=now)
            AuditEvent.objects.create(
                actor=actor,
                action="branch.create",
                dataset=dataset,
                object_type="branch",
                object_id=name,
                after={"head": start.id},
            )
    except IntegrityError:
        raise UserError(f"{dataset.name} already has a branch named {name}.") from None
    return branch


def tag_create(
    *, dataset: Dataset, name: str, version: Version, actor: str = "", user: permissions.User = None
) -> Tag:
    """Give `version` the fixed name `name`. Tags never move."""
    permissions.require_write(user, dataset)
    actor = actor_name(user, actor)
    check_ref_name(name, "tag")
    if version.dataset_id != dataset.pk:
        raise UserError(f"version {version.short_id} is not a version of {dataset.name}.")
    if Branch.objects.filter(dataset=dataset, name=name).exists():
        raise UserError(f"{dataset.name} already has a branch named {name}; choose another tag name.")
    try:
        with transaction.atomic():
            tag = Tag.objects.create(dataset=dataset, name=name, version=version, created_by=actor)
            AuditEvent.objects.create(
                actor=actor,
                action="tag.create",
                dataset=dataset,
                object_type="tag",
                object_id=name,
                after={"version": version.id, "semver": version.semver},
            )
    except IntegrityError:
        existing = Tag.objects.filter(dataset=dataset, name=name).select_related("version").first()
        where = f" (on {existing.version.semver})" if existing else ""
        raise UserError(f"{dataset.name} already has a tag named {name}{where}; tags never move.") from None
    return tag


def branch_delete(*, dataset: Dataset, name: str, actor: str = "", user: permissions.User = None) -> None:
    """Delete branch `name` of `dataset`. The default branch cannot be deleted: it is
    what a dataset without a ref means. The versions stay (tags and other branches may
    name them); retention decides what becomes of versions no name reaches."""
    permissions.require_write(user, dataset)
    actor = actor_name(user, actor)
    if name == dataset.default_branch:
        raise UserError(f"{name} is the default branch of {dataset.name}; it cannot be deleted.")
    with transaction.atomic():
        branch = Branch.objects.select_for_update().filter(dataset=dataset, name=name).first()
        if branch is None:
            raise NotFound(f"{dataset.name} has no branch named {name}.")
        head_id = branch.head_id
        branch.delete()
        AuditEvent.objects.create(
            actor=actor,
            user=user if user is not None and user.is_authenticated else None,
            action="branch.delete",
            dataset=dataset,
            object_type="branch",
            object_id=name,
            before={"head": head_id},
        )
