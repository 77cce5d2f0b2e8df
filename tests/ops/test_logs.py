"""Structured logs: one JSON object per line, carrying the request id, the user, the
dataset and version a request is about, and the task a worker runs."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest
from django.urls import reverse

from lifecycle.models import RetentionRun
from ops.logging import JsonFormatter
from tests.factories.datasets import push
from tests.factories.files import ROOT
from tests.workers import wait_until


@pytest.fixture
def reviews(personas, settings, tmp_path):
    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    return push(tmp_path, "reviews", {"train.csv": "id,label\n1,good\n"}, user=personas["alice"])


def _request_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "strata.request"]


def test_logs_are_json_by_default():
    handlers = [handler for handler in logging.getLogger().handlers if type(handler) is logging.StreamHandler]
    assert any(isinstance(handler.formatter, JsonFormatter) for handler in handlers)


def test_a_dataset_page_logs_one_json_line_with_its_request_user_dataset_and_version(
    client, personas, reviews, json_log
):
    client.force_login(personas["alice"])
    url = reverse("catalog:version_detail", args=["reviews", reviews.semver])
    response = client.get(url)
    assert response.status_code == 200

    lines = json_log()  # every line parses
    [line] = _request_lines(lines)
    assert line["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert line["request_id"] == response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
    assert line["user"] == "alice"
    assert line["dataset"] == "reviews" and line["version"] == reviews.semver
    assert line["method"] == "GET" and line["path"] == url and line["status"] == 200
    assert line["view"] == "/datasets/<str:name>/versions/<str:version_id>/"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["message"].startswith(f"GET {url} 200 ")


def test_an_api_request_logs_the_token_user_and_the_version(personas, reviews, json_log):
    from django.test import Client

    from catalog.services.tokens import token_create

    _, secret = token_create(user=personas["alice"], name="logs")
    response = Client().get(
        f"/api/v1/datasets/reviews/versions/{reviews.semver}", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 200
    [line] = _request_lines(json_log())
    assert line["user"] == "alice" and line["dataset"] == "reviews" and line["version"] == reviews.semver
    assert line["view"] == "/api/v1/datasets/<name>/versions/<version>"


def test_a_model_version_is_not_logged_as_a_dataset_version(client, personas, json_log):
    client.force_login(personas["bob"])
    client.get("/models/classifier/versions/3/")
    [line] = _request_lines(json_log())
    assert "version" not in line and "dataset" not in line and line["user"] == "bob"


def test_a_valid_request_id_is_kept_and_echoed_and_a_bad_one_replaced(client, db, json_log):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a:01.2"})
    assert response["X-Request-ID"] == "lb-7f3a:01.2"
    for bad in ("x" * 129, "has space", 'quote"d', ""):
        replaced = client.get("/healthz", headers={"X-Request-ID": bad})["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    # Probes come every few seconds: logged, but at DEBUG.
    assert all(line["level"] == "DEBUG" for line in _request_lines(json_log()))


def test_exceptions_and_extras_are_written_as_json(json_log):
    try:
        raise ValueError("bad label")
    except ValueError:
        logging.getLogger("tests.ops").exception(
            "split failed", extra={"dataset": "reviews", "rows": 3, "handle": object()}
        )
    [line] = [line for line in json_log() if line["logger"] == "tests.ops"]
    assert line["level"] == "ERROR" and line["message"] == "split failed"
    assert line["dataset"] == "reviews" and line["rows"] == 3
    assert "handle" not in line  # not JSON: left out, not guessed at
    assert "ValueError: bad label" in line["exc_info"]


def test_text_format_keeps_the_plain_lines(tmp_path):
    env = dict(os.environ, STRATA_LOG_FORMAT="text", STRATA_VAR_DIR=str(tmp_path / "var"))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, logging; django.setup(); logging.getLogger('strata.x').warning('plain')",
        ],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING strata\.x plain\n", result.stderr)


def test_a_task_logs_with_the_id_of_the_request_that_queued_it(client, personas, worker):
    client.force_login(personas["erin"])
    response = client.post(reverse("lifecycle:retention_new"), headers={"X-Request-ID": "obs-retention-1"})
    assert response.status_code == 302
    run = RetentionRun.objects.get()

    def task_lines():
        return [
            line
            for line in worker.log_lines()
            if line.get("task") == "lifecycle.tasks.retention_apply"
            and line["message"].startswith("retention run")
        ]

    # The queued task's line comes first; a worker starting up may also resume the
    # approved run (a second, harmless run of the state machine) without a request.
    line = wait_until(task_lines, what="the retention task's log line")[0]
    assert line["message"] == f"retention run {run.pk}: done"
    assert line["request_id"] == "obs-retention-1"
    assert line["logger"] == "lifecycle.tasks" and line["level"] == "INFO"
    assert re.fullmatch(r"[0-9a-f-]{36}", line["task_id"])
