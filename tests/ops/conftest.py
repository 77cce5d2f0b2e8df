"""Fixtures for observability: the JSON log as written, a scrape of /metrics, and
a real Celery worker process that serves its own metrics."""

from __future__ import annotations

import io
import json
import logging
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.logging import JsonFormatter
from tests.conftest import worker_environment
from tests.services import CeleryWorker, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The personas' passwords are hashed with a cheap hasher: nothing here signs
    in with one, and five PBKDF2 hashes per test would be most of its time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a series not (yet) exposed."""
    return samples.get((name, frozenset(labels.items())), 0.0)


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


class Worker(CeleryWorker):
    """A real worker (solo pool) on this test's queue, with its metrics on a port of
    its own behind a token."""

    token = "worker-metrics-token"

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["STRATA_WORKER_METRICS_PORT"])
        super().__init__(env, log)

    def log_lines(self) -> list[dict]:
        """The worker's JSON log lines (its start-up banner goes to stdout as text)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def metrics(self, token: str | None = token) -> Samples:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return parse_metrics(response.read().decode())


@pytest.fixture
def worker(transactional_db, queue, redis_url, settings, tmp_path):
    """A real worker sharing the test database, a local store and a Redis queue of
    this test's own."""
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
        STRATA_METRICS_TOKEN=Worker.token,
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    started = Worker(env, tmp_path / "worker.log")
    yield started
    started.stop()


def wait_until(condition, timeout: float = 30, what: str = "the condition"):
    """Poll `condition` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.1)
