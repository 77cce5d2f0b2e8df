"""Lineage fixtures: a local store (lineage never reads bytes, so one backend is
enough) and a maker of dataset versions, pushed for real by alice."""

from __future__ import annotations

import itertools

import pytest

_counter = itertools.count()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The personas' passwords are hashed once per test; the default hasher is
    built to be slow, which only slows the tests down."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def local_store(tmp_path, settings):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    return settings.STRATA_STORAGE_URL


@pytest.fixture
def make_version(personas, local_store, tmp_path):
    """make_version("reviews", stage="raw") -> a new catalog Version with unique content."""
    from catalog.services.versions import version_push

    def make(dataset: str, stage: str | None = None, content: str | None = None):
        folder = tmp_path / "pushes" / f"{dataset}-{next(_counter)}"
        folder.mkdir(parents=True)
        (folder / "data.jsonl").write_text(content if content is not None else f"{dataset} {folder.name}\n")
        return version_push(
            path=str(folder), dataset_name=dataset, user=personas["alice"], stage=stage
        ).version

    return make


@pytest.fixture
def api_client(client):
    """A Django test client that speaks JSON to /api/v1/ as a given persona."""

    def as_user(user):
        client.force_login(user)
        return client

    return as_user
