"""Every write the dashboard offers, tried by every role (table-driven).

Each write is refused by the service for those without the steward role, whatever
the page showed them: the form pages answer 403, a posted form is refused with
nothing changed, and a restricted dataset stays invisible (404) to outsiders.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog.models import AuditEvent, Dataset, Version
from catalog.services.datasets import dataset_update
from tests.factories.datasets import push

pytestmark = pytest.mark.django_db

ALLOWED, FORBIDDEN, HIDDEN = "allowed", "forbidden", "hidden"


@pytest.fixture
def world(personas, settings, tmp_path):
    """'open' (public) and 'closed' (restricted to alice), both owned by alice; and
    frank, a steward who owns neither."""
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    frank = User.objects.create_user("frank", "frank@example.org", "frank-password")
    frank.groups.add(Group.objects.get(name="steward"))
    personas = dict(personas, frank=frank)
    for name in ("open", "closed"):
        push(tmp_path, name, {"a.txt": "a"}, user=personas["alice"], message="first")
    dataset_update(
        user=personas["alice"], dataset=Dataset.objects.get(name="closed"), visibility="restricted"
    )
    return personas


def _upload(client, dataset: str):
    return client.post(
        reverse("catalog:upload", args=[dataset]),
        {"branch": "main", "message": "by role", "stage": "", "files": [SimpleUploadedFile("b.txt", b"b")]},
    )


def _new(client, dataset: str):
    return client.post(
        reverse("catalog:dataset_new"),
        {
            "name": f"{dataset}-new",
            "message": "new",
            "stage": "raw",
            "files": [SimpleUploadedFile("c.txt", b"c")],
        },
    )


def _edit(client, dataset: str):
    return client.post(
        reverse("catalog:dataset_edit", args=[dataset]),
        {
            "description": "changed by role",
            "keywords": "x",
            "visibility": "public",
            "owners": "alice",
            "groups": "",
        },
    )


def _changed(action: str, dataset: str) -> bool:
    if action == "upload":
        return Version.objects.filter(dataset__name=dataset, message="by role").exists()
    if action == "new":
        return Dataset.objects.filter(name=f"{dataset}-new").exists()
    return Dataset.objects.get(name=dataset).description == "changed by role"


ACTIONS = {"upload": _upload, "new": _new, "edit": _edit}

# persona -> expected outcome on the public and the restricted dataset.
EXPECTED = {
    "alice": (ALLOWED, ALLOWED),  # steward, owner
    "frank": (ALLOWED, HIDDEN),  # steward, not an owner of the restricted one
    "bob": (FORBIDDEN, HIDDEN),  # viewer
    "carol": (FORBIDDEN, HIDDEN),  # approver
    "dave": (FORBIDDEN, HIDDEN),  # no role
    "erin": (ALLOWED, ALLOWED),  # admin
}

CASES = [
    (persona, action, dataset, outcome)
    for persona, outcomes in EXPECTED.items()
    for action in ACTIONS
    for dataset, outcome in zip(("open", "closed"), outcomes, strict=True)
    # Creating a dataset does not depend on another dataset's visibility.
    if not (action == "new" and dataset == "closed")
]


@pytest.mark.parametrize("persona, action, dataset, outcome", CASES)
def test_role_by_action(client, world, persona, action, dataset, outcome):
    client.force_login(world[persona])
    events = AuditEvent.objects.count()
    if action == "new" and outcome == HIDDEN:
        outcome = ALLOWED if persona == "frank" else FORBIDDEN
    response = ACTIONS[action](client, dataset)
    if outcome == ALLOWED:
        assert response.status_code == 302, response.content.decode()[:2000]
        assert _changed(action, dataset)
        assert AuditEvent.objects.count() > events
    else:
        assert response.status_code == (403 if outcome == FORBIDDEN else 404), response.content.decode()[
            :2000
        ]
        assert not _changed(action, dataset)
        assert AuditEvent.objects.count() == events
        if outcome == FORBIDDEN:
            assert "steward role" in response.content.decode()


FORM_PAGES = {
    "upload": lambda dataset: reverse("catalog:upload", args=[dataset]),
    "new": lambda dataset: reverse("catalog:dataset_new"),
    "edit": lambda dataset: reverse("catalog:dataset_edit", args=[dataset]),
}


@pytest.mark.parametrize("persona", sorted(EXPECTED))
@pytest.mark.parametrize("action", sorted(FORM_PAGES))
def test_write_forms_open_only_to_those_who_may_use_them(client, world, persona, action):
    client.force_login(world[persona])
    status = client.get(FORM_PAGES[action]("open")).status_code
    assert status == (200 if EXPECTED[persona][0] == ALLOWED else 403)


def test_a_steward_demoted_after_opening_the_form_is_refused_by_the_service(client, world):
    """The page offered the form; the role went away; the service still says no."""
    alice = world["alice"]
    client.force_login(alice)
    assert client.get(reverse("catalog:upload", args=["open"])).status_code == 200
    alice.groups.clear()
    response = _upload(client, "open")
    assert response.status_code == 403 and "steward role" in response.content.decode()
    assert not _changed("upload", "open")


def test_signed_out_writes_go_to_sign_in(client, world):
    for action in ACTIONS.values():
        response = action(client, "open")
        assert response.status_code == 302 and reverse("login") in response.url
    assert not _changed("upload", "open") and not _changed("edit", "open")
