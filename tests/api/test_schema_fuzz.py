"""Schemathesis sends requests generated from the OpenAPI schema — valid ones, and
ones that break it — to every catalog endpoint, as a steward with data to find, and
fails on any 5xx. It runs in the app's process (WSGI), with a bounded number of
examples per endpoint so the whole run stays under a minute."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from catalog.services.versions import version_push


@pytest.fixture
def in_process_requests():
    """Requests served in this process must not close the test's database
    connection when they finish (Django's own test client does the same)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(personas, tokens, settings, tmp_path, in_process_requests):
    from config.wsgi import application

    settings.STRATA_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.STRATA_CACHE_DIR = tmp_path / "cache"
    source = tmp_path / "src"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "a.txt").write_text("alpha\n")
    (source / "b.csv").write_text("id,label\n1,cat\n")
    version_push(path=str(source), dataset_name="reviews", user=personas["alice"])
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema", application)
    # The catalog's endpoints; lineage's have their own owner and tests.
    return schema.include(path_regex=r"^/api/v1/(me|datasets|uploads)")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_schema_allows_or_forbids_makes_the_server_fail(case, tokens):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {tokens['alice']}"},
        checks=[not_a_server_error],
    )
