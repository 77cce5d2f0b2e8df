"""Roles and visibility are enforced by the services, whoever calls them."""

from __future__ import annotations

import pytest

from catalog import permissions, selectors
from catalog.errors import Forbidden, NotFound
from catalog.models import Dataset
from catalog.services.datasets import dataset_create, dataset_update
from catalog.services.refs import branch_create, tag_create
from catalog.services.versions import version_push


@pytest.fixture
def restricted(personas, store_url, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    version_push(path=str(tmp_path / "d"), dataset_name="secret", user=personas["alice"])
    dataset = Dataset.objects.get(name="secret")
    dataset_update(user=personas["alice"], dataset=dataset, visibility="restricted")
    return dataset


def test_roles_come_from_groups_and_admin_holds_all(personas):
    assert permissions.roles_of(personas["alice"]) == {"steward"}
    assert permissions.roles_of(personas["dave"]) == set()
    assert permissions.roles_of(personas["erin"]) == set(permissions.ROLES)


def test_only_stewards_create_datasets(personas):
    dataset_create(user=personas["alice"], name="made-by-alice", keywords=["NLP", "reviews"])
    for name in ("bob", "carol", "dave"):
        with pytest.raises(Forbidden, match="steward role"):
            dataset_create(user=personas[name], name=f"made-by-{name}")
    made = Dataset.objects.get(name="made-by-alice")
    assert list(made.owners.all()) == [personas["alice"]]
    assert sorted(made.keywords.values_list("name", flat=True)) == ["nlp", "reviews"]


def test_a_restricted_dataset_does_not_exist_for_outsiders(personas, restricted):
    for name in ("bob", "carol", "dave"):
        with pytest.raises(NotFound, match="no dataset named 'secret'"):
            selectors.dataset_get("secret", personas[name])
        assert "secret" not in [d.name for d in selectors.dataset_list(personas[name])]
    assert selectors.dataset_get("secret", personas["alice"]) == restricted
    assert selectors.dataset_get("secret", personas["erin"]) == restricted


def test_group_members_read_a_restricted_dataset(personas, restricted):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="vision-team")
    personas["bob"].groups.add(team)
    dataset_update(user=personas["alice"], dataset=restricted, groups=["vision-team"])
    assert selectors.dataset_get("secret", personas["bob"]) == restricted


def test_writes_need_the_steward_role(personas, store_url, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    version_push(path=str(tmp_path / "d"), dataset_name="open", user=personas["alice"])
    dataset = Dataset.objects.get(name="open")
    head = selectors.resolve_ref(dataset, None)
    (tmp_path / "d" / "y.txt").write_text("y")
    for name in ("bob", "carol", "dave"):
        user = personas[name]
        with pytest.raises(Forbidden):
            version_push(path=str(tmp_path / "d"), dataset_name="open", user=user)
        with pytest.raises(Forbidden):
            dataset_update(user=user, dataset=dataset, description="mine now")
        with pytest.raises(Forbidden):
            branch_create(user=user, dataset=dataset, name="exp/x", start=head)
        with pytest.raises(Forbidden):
            tag_create(user=user, dataset=dataset, name="t", version=head)
    assert dataset.versions.count() == 1
    assert version_push(path=str(tmp_path / "d"), dataset_name="open", user=personas["erin"]).created
