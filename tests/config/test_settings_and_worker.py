"""Settings come from the environment; a Celery worker starts on either broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, database_url


def _django(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
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
    from catalog.storage.backends import open_backend
    from catalog.storage.errors import ConfigurationError

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
