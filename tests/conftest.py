"""Shared fixtures: both object backends, the CLI in and out of process, data makers.

Every test that touches the store runs on both backends: a local folder and a bucket
on a real S3 server (SeaweedFS). PostgreSQL is used when DATABASE_URL names it (CI),
SQLite otherwise.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from tests.services import SeaweedServer, start_redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def s3_endpoint():
    endpoint = os.environ.get("STRATA_TEST_S3_ENDPOINT")
    server = None
    if not endpoint:
        server = SeaweedServer()
        server.wait()
        endpoint = server.endpoint
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
    """A Redis database for the tests: the one given, the local one, or one started."""
    url, server = start_redis()
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
def personas(db):
    """The people of the tests and what each may do:

    - alice, steward: creates datasets, pushes versions, edits metadata, asks for rollbacks
    - bob, viewer: reads public datasets
    - carol, approver: approves what stewards ask for (and reads)
    - dave, outsider: signed in, no role at all
    - erin, admin: everything
    """
    from django.contrib.auth.models import Group, User

    people = {}
    for name, role in [
        ("alice", "steward"),
        ("bob", "viewer"),
        ("carol", "approver"),
        ("dave", None),
        ("erin", "admin"),
    ]:
        user = User.objects.create_user(name, f"{name}@example.org", f"{name}-password")
        if role:
            # get_or_create: a transactional test before this one flushed the roles.
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        people[name] = user
    return people


def worker_environment(*, settings, tmp_path, queue: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker process sharing this test's database, store,
    cache and Celery queue (on Redis); `extra` adds or overrides variables."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        STORAGE_URL=settings.STRATA_STORAGE_URL,
        STRATA_CACHE_DIR=str(settings.STRATA_CACHE_DIR),
        STRATA_VAR_DIR=str(tmp_path / "worker-var"),
        CELERY_BROKER_URL=redis_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        **extra,
    )
    return env


def database_url() -> str:
    """A URL for the test database, for subprocesses to share it."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{settings_dict.get('HOST') or '127.0.0.1'}:{settings_dict.get('PORT') or 5432}/{settings_dict['NAME']}"


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


def write_random(path: Path, size: int, seed: int) -> None:
    """Write `size` pseudo-random (incompressible) bytes, reproducibly."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            block = min(remaining, 8 << 20)
            handle.write(rng.randbytes(block))
            remaining -= block


def tree_digests(root: Path) -> dict[str, tuple[str, str]]:
    """Every file, link and folder below `root`, with a hash of its content."""
    from blake3 import blake3

    result: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                result[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                result[rel] = ("dir", "")
            else:
                hasher = blake3()
                with open(full, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        hasher.update(block)
                mode = "x" if os.access(full, os.X_OK) else "f"
                result[rel] = (mode, hasher.hexdigest())
    return result
