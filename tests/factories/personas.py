"""The people of the tests and what each may do:

- alice, steward: creates datasets, pushes versions, edits metadata, asks for rollbacks
- bob, viewer: reads public datasets
- carol, approver: approves what stewards ask for (and reads)
- dave, outsider: signed in, no role at all
- erin, admin: everything
"""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from catalog.permissions import ROLES

PERSONAS: list[tuple[str, str | None]] = [
    ("alice", "steward"),
    ("bob", "viewer"),
    ("carol", "approver"),
    ("dave", None),
    ("erin", "admin"),
]


def role_groups_ensure() -> None:
    """Make the role groups a migration makes, which a transactional or live-server
    test's flush removes with the rest of the tables."""
    for role in ROLES:
        Group.objects.get_or_create(name=role)


def personas_make() -> dict[str, User]:
    """Each persona as a user in their role's group; the password is `<name>-password`."""
    people = {}
    for name, role in PERSONAS:
        user = User.objects.create_user(name, f"{name}@example.org", f"{name}-password")
        if role:
            # get_or_create: a transactional test before this one flushed the roles.
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        people[name] = user
    return people
