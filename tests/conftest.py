"""Shared fixtures: both object backends, the CLI in and out of process, the
personas, Redis and a Celery queue, data makers.

Every test that touches the store runs on both backends: a local folder and a bucket
on a real S3 server (SeaweedFS). PostgreSQL is used when DATABASE_URL names it (CI),
SQLite otherwise. In CI (CI=true) a test whose PostgreSQL, Redis or S3 server is
missing fails, naming the variable to set; elsewhere it is skipped. The functions
behind the fixtures are in tests/factories/ and tests/workers.py.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import uuid

import pytest
from django.core.management import call_command

from tests.factories.files import ROOT
from tests.factories.personas import personas_make, role_groups_ensure
from tests.factories.retention import cost_scenario_make, default_policies
from tests.workers import database_url, postgres_check, redis_get, s3_server_get

_versions = itertools.count()


@pytest.fixture(scope="session")
def django_db_setup(postgres_required, django_db_setup):
    """pytest-django's test databases, made once PostgreSQL is known to be there in CI."""
    return django_db_setup


@pytest.fixture(scope="session")
def postgres_required(django_db_blocker):
    """In CI, a database test fails unless DATABASE_URL names a PostgreSQL that answers."""
    with django_db_blocker.unblock():
        postgres_check()


@pytest.fixture(scope="session")
def s3_endpoint():
    """The S3 server given by STRATA_TEST_S3_ENDPOINT, or one started (not in CI)."""
    endpoint, server = s3_server_get()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "strata")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "strata")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    yield endpoint
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint):
    from strata_store.backends.s3 import S3Backend

    bucket = os.environ.get("STRATA_TEST_S3_BUCKET", "strata-test")
    S3Backend(bucket=bucket).ensure_bucket()
    return bucket


@pytest.fixture(scope="session")
def redis_url():
    """A Redis database for the tests: the one given by STRATA_TEST_REDIS_URL, or
    (not in CI) the local one or one started."""
    url, server = redis_get()
    yield url
    if server is not None:
        server.terminate()
        server.wait()


@pytest.fixture
def queue(redis_url):
    """Point this test process's Celery at Redis and a queue of this test's own, so
    that no worker or beat left from another test (or another test run sharing the
    Redis) can take its tasks."""
    from config.celery import app

    name = f"strata-test-{uuid.uuid4().hex[:8]}"
    # Read the configuration first: set before Celery loads it lazily from the
    # Django settings, these values would be overwritten by CELERY_BROKER_URL.
    assert app.conf.broker_url is not None
    app.conf.broker_url = redis_url
    app.conf.broker_write_url = redis_url
    app.conf.task_default_queue = name
    app.conf.broker_transport_options = {}
    return name


@pytest.fixture(params=["local", "s3"])
def store_url(request, tmp_path, settings):
    """Each test using it runs twice: on a local folder and on an S3 bucket."""
    if request.param == "local":
        url = f"file://{tmp_path / 'store'}"
    else:
        bucket = request.getfixturevalue("s3_bucket")
        url = f"s3://{bucket}/t-{uuid.uuid4().hex[:12]}"
    settings.STRATA_STORAGE_URL = url
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    return url


@pytest.fixture
def strata(db, store_url):
    """Run `manage.py strata …` in process; returns (stdout, stderr)."""

    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("strata", *args, stdout=out)
        return out.getvalue()

    return run


@pytest.fixture
def role_groups(db):
    """The role groups, which a transactional test's flush removes with the rest."""
    role_groups_ensure()


@pytest.fixture
def personas(db):
    """The people of the tests and what each may do (tests/factories/personas.py):
    alice, steward; bob, viewer; carol, approver; dave, no role; erin, admin."""
    return personas_make()


@pytest.fixture
def fast_passwords(settings):
    """The personas' passwords hashed with a cheap hasher: the default one is built
    to be slow, and five hashes per test would be most of a short test's time.
    A folder whose tests need it says so with an autouse fixture in its conftest."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def local_store(tmp_path, settings):
    """A store in a local folder, for tests that never need S3."""
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    return settings.STRATA_STORAGE_URL


@pytest.fixture
def retention_store(local_store, db, settings):
    """The local store with the default retention policies, restores that take an
    hour and no run large enough to wait for an approver."""
    default_policies()
    settings.STRATA_LOCAL_RESTORE_SECONDS = 3600
    settings.STRATA_RETENTION_APPROVAL_BYTES = 10**12
    return local_store


@pytest.fixture
def make_version(personas, local_store, tmp_path):
    """make_version("reviews", stage="raw") -> a new catalog Version with unique content."""
    from catalog.services.versions import version_push

    def make(dataset: str, stage: str | None = None, content: str | None = None):
        folder = tmp_path / "pushes" / f"{dataset}-{next(_versions)}"
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


@pytest.fixture
def cost_scenario(db, tmp_path, settings):
    """The cost scenario worked out by hand (tests/factories/retention.py)."""
    return cost_scenario_make(tmp_path=tmp_path, settings=settings)


@pytest.fixture
def cli(transactional_db, store_url, tmp_path, settings):
    """Run `python manage.py strata …` as a real process against the test database."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        STORAGE_URL=store_url,
        STRATA_CACHE_DIR=str(settings.STRATA_CACHE_DIR),
        STRATA_VAR_DIR=str(tmp_path / "var"),
        STRATA_USER="alice",
        STRATA_PACK_SIZE=str(settings.STRATA_PACK_SIZE),
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )

    def run(
        *args: str, check: bool = False, env_extra: dict[str, str] | None = None, **kwargs
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "strata", *args],
            env=env | (env_extra or {}),
            capture_output=True,
            text=True,
            cwd=str(ROOT),
            **kwargs,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"strata {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def popen(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "strata", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
        )

    run.popen = popen
    run.env = env
    return run
