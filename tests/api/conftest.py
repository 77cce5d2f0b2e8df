"""Fixtures for the API: a token per persona, an in-process JSON client, and a real
server process on loopback for the client's push and pull."""

from __future__ import annotations

import os

import pytest

from tests.factories.api import Api
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
def api(tokens):
    """`api("alice").get("/datasets")`; `api(None)` is anonymous."""
    return lambda name: Api(tokens[name] if name else None)


@pytest.fixture
def strata_server(transactional_db, store_url, tmp_path, settings, queue, redis_url):
    """The web app and a Celery worker, each its own process, sharing the test's
    database, store and a Celery queue of its own on Redis: a remote push is
    verified by that worker, as in production."""
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
