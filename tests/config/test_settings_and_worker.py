"""Settings come from the environment; a Celery worker starts on either broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.factories.files import ROOT
from tests.workers import database_url


def _django(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # DJANGO_ALLOW_ASYNC_UNSAFE is set by the browser tests' process; a deployment
    # has no such thing, and `check --deploy` rightly calls it an error.
    unset = ("SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )


def test_refuses_to_start_with_debug_off_and_no_secret_key():
    result = _django({"DEBUG": "0"}, "check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert _django({"DEBUG": "0", "SECRET_KEY": "k" * 50}, "check").returncode == 0


def test_storage_url_chooses_the_backend(tmp_path):
    from strata_store.backends import open_backend
    from strata_store.errors import ConfigurationError

    assert open_backend(f"file://{tmp_path}/objects").root == f"{tmp_path}/objects"
    assert open_backend(str(tmp_path / "plain")).root == str(tmp_path / "plain")
    with pytest.raises(ConfigurationError, match="not supported"):
        open_backend("ftp://example/x")
    with pytest.raises(ConfigurationError, match="no bucket"):
        open_backend("s3:///prefix")


@pytest.fixture(params=["filesystem", "redis"])
def broker_env(request, tmp_path, redis_url):
    env = dict(os.environ)
    env["STRATA_VAR_DIR"] = str(tmp_path / "var")
    env["STRATA_CACHE_DIR"] = str(tmp_path / "cache")
    env["STORAGE_URL"] = f"file://{tmp_path / 'store'}"
    if request.param == "filesystem":
        env["CELERY_BROKER_URL"] = "filesystem://"
    else:
        env["CELERY_BROKER_URL"] = redis_url
    return env


def test_a_worker_starts_on_either_broker_and_runs_a_task(broker_env, transactional_db, tmp_path):
    broker_env["DATABASE_URL"] = database_url()
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=broker_env,
        cwd=str(ROOT),
        stdout=log.open("wb"),  # noqa: SIM115 (the worker's own stdout)
        stderr=subprocess.STDOUT,
    )
    try:
        sent = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); from catalog.tasks import verify_store; verify_store.delay()",
            ],
            env={**broker_env, "DJANGO_SETTINGS_MODULE": "config.settings"},
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 60
        while "verify: 0 chunks in 0 packs OK" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            assert worker.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(20)


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k3J9-vQ2mZ8xR4tW7yB1nC6pL0sD5fG8hA3eU9iO2jK7qM4rT1wX6zV0bN5cY8uE",
    "ALLOWED_HOSTS": "strata.example.org",
}


def test_https_settings_come_from_the_environment():
    plain = _django(PRODUCTION, "check", "--deploy")
    for warning in ("security.W004", "security.W012", "security.W016"):
        assert warning in plain.stderr + plain.stdout
    secure = _django(
        PRODUCTION | {"STRATA_SECURE_COOKIES": "1", "SECURE_HSTS_SECONDS": "31536000"}, "check", "--deploy"
    )
    assert secure.returncode == 0, secure.stderr
    for warning in ("security.W004", "security.W012", "security.W016"):
        assert warning not in secure.stderr + secure.stdout

    forwarded = (
        "from django.test import RequestFactory;"
        "print(RequestFactory().get('/', HTTP_X_FORWARDED_PROTO='https').is_secure())"
    )
    assert _django(PRODUCTION, "shell", "-c", forwarded).stdout.strip().endswith("False")
    behind = _django(PRODUCTION | {"STRATA_BEHIND_TLS_PROXY": "1"}, "shell", "-c", forwarded)
    assert behind.stdout.strip().endswith("True"), behind.stderr


def test_mail_goes_to_the_smtp_server_the_environment_names():
    """A tiny SMTP server on loopback stands in for the mail relay."""
    import socketserver
    import threading

    received: list[str] = []

    class Smtp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220 test\r\n")
            while line := self.rfile.readline():
                command = line.decode().strip().upper()
                if command.startswith(("EHLO", "HELO")):
                    self.wfile.write(b"250 test\r\n")
                elif command == "DATA":
                    self.wfile.write(b"354 go on\r\n")
                    body = []
                    while (data := self.rfile.readline()) not in (b".\r\n", b""):
                        body.append(data.decode())
                    received.append("".join(body))
                    self.wfile.write(b"250 queued\r\n")
                elif command == "QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 ok\r\n")

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sent = _django(
            {
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(server.server_address[1]),
                "DEFAULT_FROM_EMAIL": "strata@example.org",
            },
            "shell",
            "-c",
            "from django.core.mail import send_mail; send_mail('Rollback approved', 'done', None, ['a@example.org'])",
        )
        server.shutdown()
    assert sent.returncode == 0, sent.stderr
    assert len(received) == 1
    assert "Subject: Rollback approved" in received[0] and "From: strata@example.org" in received[0]
