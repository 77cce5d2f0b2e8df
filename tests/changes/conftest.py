"""Fixtures for change requests: a token per persona, and a real server process
with a real Celery worker, for the whole story as a CI system lives it."""

from __future__ import annotations

import os

import pytest

from tests.factories.files import ROOT
from tests.workers import CeleryWorker, LiveServer, database_url


@pytest.fixture
def personas(role_groups, personas):
    return personas


@pytest.fixture
def tokens(personas):
    """A personal API token secret for each persona."""
    from catalog.services.tokens import token_create

    return {name: token_create(user=user, name="tests")[1] for name, user in personas.items()}


@pytest.fixture
def strata_server(transactional_db, store_url, tmp_path, settings, queue, redis_url):
    """The web app and a Celery worker, each its own process, sharing the test's
    database, store and a Celery queue of its own on Redis: a change request's
    checks and its merge run in that worker, as in production."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        STORAGE_URL=store_url,
        STRATA_CACHE_DIR=str(tmp_path / "server-cache"),
        STRATA_VAR_DIR=str(tmp_path / "server-var"),
        STRATA_PACK_SIZE=str(settings.STRATA_PACK_SIZE),
        CELERY_BROKER_URL=redis_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    worker = CeleryWorker(dict(env, STRATA_VAR_DIR=str(tmp_path / "worker-var")), tmp_path / "worker.log")
    server = LiveServer(env, tmp_path / "server.log")
    server.worker = worker
    yield server
    server.stop()
    worker.stop()
