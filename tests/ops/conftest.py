"""Fixtures for observability: the JSON log as written, a scrape of /metrics, and
a real Celery worker process that serves its own metrics."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ops.logging import JsonFormatter
from tests.factories.metrics import Samples, parse_metrics
from tests.workers import MetricsWorker, free_port, worker_environment


@pytest.fixture(autouse=True)
def _fast_passwords(fast_passwords):
    """Nothing here signs in with a password: see `fast_passwords` in tests/conftest.py."""


@pytest.fixture
def scrape(client):
    """GET /metrics in process and parse it."""

    def run(**headers: str) -> Samples:
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"].startswith("text/plain")
        return parse_metrics(response.content.decode())

    return run


@pytest.fixture
def json_log():
    """The log lines written during the test, as the JSON formatter writes them;
    calling it parses every line with json.loads."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def worker(transactional_db, queue, redis_url, settings, tmp_path):
    """A real worker sharing the test database, a local store and a Redis queue of
    this test's own, with its metrics on a port of its own behind a token."""
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    env = worker_environment(
        settings=settings,
        tmp_path=tmp_path,
        queue=queue,
        redis_url=redis_url,
        STRATA_LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        STRATA_WORKER_METRICS_PORT=str(free_port()),
        STRATA_METRICS_TOKEN=MetricsWorker.token,
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    started = MetricsWorker(env, tmp_path / "worker.log")
    yield started
    started.stop()
