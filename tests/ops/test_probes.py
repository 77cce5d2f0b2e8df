"""/healthz and /readyz: liveness touches nothing; readiness fails, naming the
dependency and why, while Redis, the broker's folders or the store are gone, and
recovers when they are back."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
from django.test import override_settings

from tests.workers import free_port, redis_answers, wait_until


@pytest.fixture
def local_store(settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    return tmp_path / "store"


class PrivateRedis:
    """A redis-server of this test's own, on a fixed port, that can be stopped and
    started again (never the shared one on 6379)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: redis_answers(self.url), timeout=20, what="redis-server starting")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def _ready(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def test_liveness_answers_without_touching_the_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readiness_fails_while_redis_is_stopped_and_recovers_when_it_is_back(
    client, db, local_store, private_redis
):
    with override_settings(CELERY_BROKER_URL=private_redis.url):
        status, body = _ready(client)
        assert status == 200, body
        assert body == {"status": "ready", "checks": {"database": "ok", "redis": "ok", "store": "ok"}}

        private_redis.stop()
        started = time.monotonic()
        status, body = _ready(client)
        assert time.monotonic() - started < 3  # a dead Redis answers quickly
        assert status == 503 and body["status"] == "unavailable"
        assert body["checks"]["redis"].startswith(f"Redis at 127.0.0.1:{private_redis.port} did not answer")
        assert body["checks"]["database"] == "ok" and body["checks"]["store"] == "ok"

        private_redis.start()  # the same port again

        def ready_again():
            status, body = _ready(client)
            return body if status == 200 else None

        body = wait_until(ready_again, timeout=10, what="readiness after Redis came back")
        assert body["checks"]["redis"] == "ok"


def test_readiness_checks_the_filesystem_brokers_folders(client, db, local_store, tmp_path):
    folders = {key: tmp_path / "broker" / key for key in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    options = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_TRANSPORT_OPTIONS=options):
        status, body = _ready(client)
        assert status == 200 and body["checks"]["broker"] == "ok" and "redis" not in body["checks"]
        folders["processed"].rmdir()
        status, body = _ready(client)
        missing = folders["processed"]
        assert status == 503
        assert body["checks"]["broker"] == f"the broker folder {missing} is missing or not writable."


def test_readiness_names_a_store_it_cannot_reach(client, db, store_url, tmp_path, settings):
    with override_settings(CELERY_BROKER_URL="memory://"):
        status, body = _ready(client)
        assert status == 200 and body["checks"]["store"] == "ok"
        if store_url.startswith("s3://"):
            settings.STRATA_STORAGE_URL = f"s3://strata-missing-{uuid.uuid4().hex[:8]}/x"
            expected = "the bucket strata-missing-"
        else:
            shutil.rmtree(store_url.removeprefix("file://"))
            expected = "the store folder "
        status, body = _ready(client)
        assert status == 503 and body["checks"]["store"].startswith(expected)
        assert body["checks"]["database"] == "ok"
