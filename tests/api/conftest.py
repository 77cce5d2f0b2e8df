"""Fixtures for the API: a token per persona, an in-process JSON client, and a real
server process on loopback for the client's push and pull."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.test import Client as DjangoClient

from tests.conftest import ROOT, database_url
from tests.services import CeleryWorker, free_port


@pytest.fixture
def role_groups(db):
    """The role groups, which a transactional test's flush removes with the rest."""
    from django.contrib.auth.models import Group

    from catalog.permissions import ROLES

    for role in ROLES:
        Group.objects.get_or_create(name=role)


@pytest.fixture
def personas(role_groups, personas):
    return personas


@pytest.fixture
def tokens(personas):
    """A personal API token secret for each persona."""
    from catalog.services.tokens import token_create

    return {name: token_create(user=user, name="tests")[1] for name, user in personas.items()}


class Api:
    """The API in process, as one persona (or anonymous), speaking JSON."""

    def __init__(self, token: str | None) -> None:
        self.client = DjangoClient()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def _send(self, method: str, path: str, body=None, /, raw: bytes | None = None, headers=None, **params):
        url = "/api/v1" + path
        if method == "get":
            return self.client.get(url, params or None, headers=headers, **self.headers)
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return getattr(self.client, method)(
            url, data=data, content_type="application/json", headers=headers, **self.headers
        )

    def get(self, path: str, body=None, /, **params):
        return self._send("get", path, **params)

    def post(self, path: str, body=None, *, follow_verification: bool = True, **kwargs):
        response = self._send("post", path, body, **kwargs)
        if follow_verification and response.status_code == 202 and "poll" in response.json():
            return self.finish_verification(response.json()["upload"])
        return response

    def finish_verification(self, upload_id: str):
        """Do what the worker does for a commit answered 202, then answer as the
        commit would have: the commit body, or the refusal the client would get.

        In process, the test's transaction never commits, so the task queued on
        commit never runs; the worker's service is called in its place. That a
        real worker does this is shown through a live server in test_remote.py."""
        from catalog.services.remote.verification import upload_verify

        upload_verify(upload_id=upload_id)
        state = self.get(f"/uploads/{upload_id}")
        if state.status_code != 200:
            return state
        commit = state.json()["commit"]
        return _Answer(201 if commit["created"] else 200, commit)

    def patch(self, path: str, body=None, **kwargs):
        return self._send("patch", path, body, **kwargs)

    def delete(self, path: str, body=None, /, **kwargs):
        return self._send("delete", path, **kwargs)


class _Answer:
    """A commit's answer, made from the upload's state after verification."""

    def __init__(self, status_code: int, body: dict) -> None:
        self.status_code = status_code
        self._body = body

    def json(self) -> dict:
        return self._body


@pytest.fixture
def api(tokens):
    """`api("alice").get("/datasets")`; `api(None)` is anonymous."""
    return lambda name: Api(tokens[name] if name else None)


class LiveServer:
    """`manage.py runserver` in its own process, on a free loopback port, sharing
    the test database and the store."""

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
