"""The Django admin as a back office: open to Strata admins by role, every catalog
table listed with its filters and search, and dataset edits going through the
service (checked and audited)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from catalog.models import AuditEvent, Dataset
from tests.factories.datasets import reviews

pytestmark = pytest.mark.django_db

CATALOG_MODELS = [
    "keyword",
    "dataset",
    "tree",
    "filemanifest",
    "pack",
    "chunk",
    "version",
    "branch",
    "tag",
    "auditevent",
    "apitoken",
    "upload",
    "uploadlease",
    "uploadpart",
    "idempotencykey",
]


@pytest.fixture
def data(personas, settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    return reviews(tmp_path, personas)


def test_every_catalog_table_is_in_the_admin():
    registered = {
        model._meta.model_name for model in admin.site._registry if model._meta.app_label == "catalog"
    }
    assert set(CATALOG_MODELS) <= registered


def test_admins_by_role_use_every_list_with_search_and_filters(client, personas, data):
    erin = personas["erin"]
    assert not erin.is_staff  # the admin role is enough
    client.force_login(erin)
    assert client.get(reverse("admin:index")).status_code == 200
    for model in CATALOG_MODELS:
        url = reverse(f"admin:catalog_{model}_changelist")
        assert client.get(url).status_code == 200, url
        assert client.get(url + "?q=reviews").status_code == 200, url
    page = client.get(
        reverse("admin:catalog_version_changelist") + "?golden__exact=0&q=reviews"
    ).content.decode()
    assert "1.1.0" in page and "1.4 KiB" in page
    page = client.get(reverse("admin:auth_user_changelist") + "?q=alice").content.decode()
    assert "steward" in page
    for name in ("auth_user", "auth_group"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200


def test_admins_list_retention_policies_runs_restores_and_rollback_requests(client, personas, data):
    client.force_login(personas["erin"])
    for table in (
        "lifecycle_retentionpolicy",
        "lifecycle_retentionrun",
        "lifecycle_packrestore",
        "governance_rollbackrequest",
    ):
        assert client.get(reverse(f"admin:{table}_changelist")).status_code == 200, table


@pytest.mark.parametrize("persona", ["alice", "bob", "dave"])
def test_others_are_kept_out_of_the_admin(client, personas, persona):
    client.force_login(personas[persona])
    response = client.get(reverse("admin:catalog_dataset_changelist"))
    assert response.status_code == 302 and "login" in response.url


def test_approvers_enter_the_admin_for_rollbacks_only(client, personas):
    client.force_login(personas["carol"])
    assert client.get(reverse("admin:catalog_dataset_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:governance_rollbackrequest_changelist")).status_code == 200
    assert client.get(reverse("admin:lifecycle_retentionrun_changelist")).status_code == 200


def test_a_dataset_edited_in_the_admin_goes_through_the_service(client, personas, data):
    dataset = data[0]
    client.force_login(personas["erin"])
    url = reverse("admin:catalog_dataset_change", args=[dataset.pk])
    assert client.get(url).status_code == 200
    events = AuditEvent.objects.filter(action="dataset.update").count()
    response = client.post(
        url,
        {
            "description": "Edited in the back office.",
            "visibility": "restricted",
            "owners": [personas["alice"].pk, personas["carol"].pk],
            "keywords": list(dataset.keywords.values_list("pk", flat=True)),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    dataset = Dataset.objects.get(pk=dataset.pk)
    assert dataset.description == "Edited in the back office." and dataset.visibility == "restricted"
    assert sorted(dataset.owners.values_list("username", flat=True)) == ["alice", "carol"]
    event = AuditEvent.objects.filter(action="dataset.update").latest("created")
    assert AuditEvent.objects.filter(action="dataset.update").count() == events + 1
    assert event.actor == "erin" and event.after["visibility"] == "restricted"


def test_an_admin_revokes_a_token(client, personas):
    from catalog.models import ApiToken
    from catalog.services.tokens import token_create

    token, _ = token_create(user=personas["bob"], name="laptop")
    client.force_login(personas["erin"])
    response = client.post(
        reverse("admin:catalog_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked is not None
