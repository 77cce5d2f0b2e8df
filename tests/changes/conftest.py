"""Fixtures for change requests: the API's (a token per persona, the in-process
API client, and a real server process with a real Celery worker, where a change
request's checks and merge run as in production)."""

from __future__ import annotations

from tests.api.conftest import api, personas, strata_server, tokens

__all__ = ["api", "personas", "strata_server", "tokens"]
