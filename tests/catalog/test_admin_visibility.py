"""The admin keeps restricted datasets out of sight of staff and approvers who
cannot read them, in every list of rows that belong to a dataset."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from catalog.models import Dataset
from catalog.services.datasets import dataset_update
from catalog.services.refs import tag_create
from catalog.services.remote import upload_open
from governance.services.rollback import rollback_request
from tests.factories.datasets import reviews

pytestmark = pytest.mark.django_db

DATASET_LISTS = [
    "catalog_dataset",
    "catalog_version",
    "catalog_branch",
    "catalog_tag",
    "catalog_auditevent",
    "governance_rollbackrequest",
    "catalog_upload",
    "catalog_uploadpart",
    "catalog_uploadlease",
    "lineage_node",
    "lineage_edge",
]


@pytest.fixture
def restricted(personas, settings, tmp_path):
    """'reviews', restricted to alice, with a tag, a pending rollback and an open upload."""
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    dataset, first, _ = reviews(tmp_path, personas)
    dataset_update(user=personas["alice"], dataset=dataset, visibility="restricted")
    tag_create(user=personas["alice"], dataset=dataset, name="v1", version=first)
    rollback_request(
        user=personas["alice"], dataset=dataset, branch="main", target=first, reason="bad labels"
    )
    upload_open(user=personas["alice"], dataset_name="reviews")
    return Dataset.objects.get(name="reviews")


@pytest.fixture
def staff(personas):
    """dave, made staff with permission to view every table, but no Strata role."""
    dave = personas["dave"]
    dave.is_staff = True
    dave.save()
    dave.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return dave


def _rows(client, table: str) -> list:
    page = client.get(reverse(f"admin:{table}_changelist"))
    assert page.status_code == 200, table
    return list(page.context["cl"].result_list)


def test_an_approver_who_cannot_read_a_dataset_does_not_see_its_rollbacks(client, personas, restricted):
    client.force_login(personas["carol"])
    assert _rows(client, "governance_rollbackrequest") == []
    client.force_login(personas["erin"])
    assert [str(row.dataset) for row in _rows(client, "governance_rollbackrequest")] == ["reviews"]


def test_staff_who_cannot_read_a_dataset_see_none_of_its_rows_in_the_admin(client, staff, restricted):
    client.force_login(staff)
    for table in DATASET_LISTS:
        assert _rows(client, table) == [], table


def test_staff_who_can_read_a_dataset_see_its_rows_in_the_admin(client, staff, restricted):
    restricted.owners.add(staff)
    client.force_login(staff)
    for table in ["catalog_dataset", "catalog_version", "governance_rollbackrequest", "catalog_upload"]:
        assert _rows(client, table), table
