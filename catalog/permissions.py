"""Who may do what. Every service calls these; views and the API never decide alone.

Roles are Django groups — viewer, steward, approver, admin — created by a migration.
Superusers and members of "admin" may do everything. Reading a dataset needs it to
be public, or the user to own it, belong to one of its groups, or be an admin; a
restricted dataset a user cannot read does not exist for them (404, never 403).
Writing (uploading versions, editing metadata, branches, tags) needs the steward
role and read access.

``user=None`` is the trusted local operator: ``manage.py`` runs with the
database's own credentials, so the command line is not asked for a role.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as Account
from django.db.models import Q, QuerySet

from catalog.errors import Forbidden, NotFound
from catalog.models import Dataset

VIEWER, STEWARD, APPROVER, ADMIN = "viewer", "steward", "approver", "admin"
ROLES = (VIEWER, STEWARD, APPROVER, ADMIN)

# Strata keeps Django's own user model (no AUTH_USER_MODEL of its own).
User = Account | AnonymousUser | None


def roles_of(user: User) -> frozenset[str]:
    """The roles a user holds (an admin holds every role)."""
    if user is None:
        return frozenset(ROLES)
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_strata_roles", None)
    if cached is None:
        names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser or ADMIN in names:
            names = set(ROLES)
        cached = frozenset(names)
        # Kept on the user object for the rest of the request: one query per request.
        user._strata_roles = cached  # type: ignore[attr-defined]
    return cached


def has_role(user: User, role: str) -> bool:
    return role in roles_of(user)


def is_admin(user: User) -> bool:
    return has_role(user, ADMIN)


def visible_datasets(user: User, queryset: QuerySet[Dataset] | None = None) -> QuerySet[Dataset]:
    """The datasets `user` may read.

    Written as semi-joins on the owner and group tables rather than outer joins and
    DISTINCT, which would cost a pass over every dataset in each query that uses it.
    """
    queryset = Dataset.objects.all() if queryset is None else queryset
    if user is None or is_admin(user):
        return queryset
    if not user.is_authenticated:
        return queryset.none()
    owned = Dataset.owners.through.objects.filter(user_id=user.pk).values("dataset_id")
    shared = Dataset.groups.through.objects.filter(group_id__in=user.groups.values("pk")).values("dataset_id")
    return queryset.filter(Q(visibility=Dataset.Visibility.PUBLIC) | Q(pk__in=owned) | Q(pk__in=shared))


def can_read(user: User, dataset: Dataset) -> bool:
    if user is None or is_admin(user):
        return True
    if not user.is_authenticated:
        return False
    if dataset.visibility == Dataset.Visibility.PUBLIC:
        return True
    return (
        dataset.owners.filter(pk=user.pk).exists()
        or dataset.groups.filter(pk__in=user.groups.values("pk")).exists()
    )


def require_read(user: User, dataset: Dataset) -> None:
    """Raise NotFound — not Forbidden — so a restricted dataset's existence stays hidden."""
    if not can_read(user, dataset):
        raise NotFound(f"there is no dataset named {dataset.name!r}.")


def require_write(user: User, dataset: Dataset) -> None:
    """Stewards (and admins) with read access may change a dataset."""
    require_read(user, dataset)
    if not has_role(user, STEWARD):
        raise Forbidden(f"you need the steward role to change {dataset.name}.")


def require_role(user: User, role: str, doing: str) -> None:
    if not has_role(user, role):
        raise Forbidden(f"you need the {role} role to {doing}.")
